"""The Tracking dialog: what the server organization tracks, like Woodford's Plugins screen.

Tabs **N:N Relationships** (removed links), **Delete** (deleted records) and **Owner** (owner
changes) list the server's tables and N:N relationships with a checkbox for what Resco's plugins
track; the Delete and Owner tabs also have a **Dataverse change tracking** column (one state,
shown on both). Save applies the changes as one "tracking" run; switching on Dataverse change
tracking cannot be undone, so it is confirmed first in a box that says so. Nothing is ``exec()``-ed.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from crmsync_desktop.domain import RunStatus
from crmsync_desktop.sync.engine import RunResult, SyncEngine
from crmsync_desktop.sync.tracking_config import TrackingChanges, TrackingOverview, TrackingResult
from crmsync_desktop.ui.ops import run_op
from crmsync_desktop.ui.widgets.message import InlineMessage, MessageLevel

__all__ = ["TrackingDialog", "TrackingTab"]

NAME_ROLE = Qt.ItemDataRole.UserRole + 1  # the logical / schema name behind a row
SYNCED_ROLE = Qt.ItemDataRole.UserRole + 2  # bool: the profile synchronizes it


class TrackingTab(enum.IntEnum):
    RELATIONSHIPS = 0
    DELETE = 1
    OWNER = 2


class _Filter(QSortFilterProxyModel):
    """Search text over every column, and optionally only what the profile synchronizes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.only_synchronized = False
        self.text = ""

    def set(self, text: str, only_synchronized: bool) -> None:
        self.beginFilterChange()
        self.text, self.only_synchronized = text.casefold(), only_synchronized
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Any) -> bool:  # type: ignore[override]
        model = self.sourceModel()
        first = model.index(source_row, 0, source_parent)
        if self.only_synchronized and not model.data(first, SYNCED_ROLE):
            return False
        if not self.text:
            return True
        return any(self.text in str(model.data(model.index(source_row, c, source_parent)) or "").casefold()
                   for c in range(model.columnCount()))


def _check_item(checked: bool, *, enabled: bool = True, tip: str = "") -> QStandardItem:
    item = QStandardItem()
    item.setCheckable(True)
    item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
    item.setEditable(False)
    item.setEnabled(enabled)
    if tip:
        item.setToolTip(tip)
    return item


def _text_item(text: str, tip: str = "") -> QStandardItem:
    item = QStandardItem(text)
    item.setEditable(False)
    if tip:
        item.setToolTip(tip)
    return item


class TrackingDialog(QDialog):
    """Open with ``TrackingDialog(engine, profile, parent).open()``; it loads the overview itself."""

    saved = Signal(object)  # TrackingResult
    loaded = Signal()

    CT_COLUMN = 3  # Dataverse change tracking, on the Delete and Owner tabs

    def __init__(self, engine: SyncEngine, profile: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trackingDialog")
        self.setWindowTitle(f"Tracking — {profile}")
        self.resize(900, 600)
        self._engine = engine
        self._profile = profile
        self.overview: TrackingOverview | None = None
        self.confirm_box: QMessageBox | None = None
        self._task: asyncio.Task[Any] | None = None
        self._syncing_ct = False

        intro = QLabel(
            "What the server records so that deletions, owner changes and removed N:N links reach the client "
            "(Resco's Dynamics plugins, as on Woodford's Plugins screen). <b>Dataverse change tracking</b> makes "
            "deletions visible without the plugins; once switched on it <b>cannot be switched off</b>. "
            "Only what happens after Save is tracked."
        )
        intro.setWordWrap(True)
        intro.setObjectName("trackingIntro")
        self.message = InlineMessage(self)

        self.search = QLineEdit()
        self.search.setObjectName("trackingSearch")
        self.search.setPlaceholderText("Search tables and relationships…")
        self.search.setClearButtonEnabled(True)
        self.only_synced = QCheckBox("Only synchronized tables")
        self.only_synced.setObjectName("onlySynchronized")
        self.only_synced.setToolTip("Hide the tables (and relationships) this profile does not synchronize")
        self.only_synced.setChecked(True)
        self.reload_button = QPushButton("Reload")
        self.reload_button.setToolTip("Read the server's tracking setup again")
        self.reload_button.clicked.connect(self.load)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.only_synced)
        top.addWidget(self.reload_button)

        self.models: dict[TrackingTab, QStandardItemModel] = {}
        self.proxies: dict[TrackingTab, _Filter] = {}
        self.tables: dict[TrackingTab, QTableView] = {}
        self.tabs = QTabWidget()
        self.tabs.setObjectName("trackingTabs")
        headers = {
            TrackingTab.RELATIONSHIPS: ["Track removed links", "Relationship", "Table 1", "Table 2", "Link table"],
            TrackingTab.DELETE: ["Track deletions", "Table", "Logical name", "Dataverse change tracking",
                                 "Synchronized"],
            TrackingTab.OWNER: ["Track owner changes", "Table", "Logical name", "Dataverse change tracking",
                                "Synchronized"],
        }
        titles = {TrackingTab.RELATIONSHIPS: "N:N Relationships", TrackingTab.DELETE: "Delete",
                  TrackingTab.OWNER: "Owner"}
        for tab in TrackingTab:
            model = QStandardItemModel(0, len(headers[tab]), self)
            model.setHorizontalHeaderLabels(headers[tab])
            model.itemChanged.connect(lambda item, t=tab: self._item_changed(t, item))
            proxy = _Filter(self)
            proxy.setSourceModel(model)
            table = QTableView()
            table.setObjectName(f"tracking{titles[tab].replace(' ', '').replace(':', '')}Table")
            table.setModel(proxy)
            table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
            table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
            table.verticalHeader().setVisible(False)
            table.setAlternatingRowColors(True)
            table.setWordWrap(False)
            table.setSortingEnabled(True)
            header = table.horizontalHeader()
            header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
            header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)  # the table / relationship name
            header.setStretchLastSection(False)
            self.models[tab], self.proxies[tab], self.tables[tab] = model, proxy, table
            self.tabs.addTab(table, titles[tab])
        self.search.textChanged.connect(self._refilter)
        self.only_synced.toggled.connect(self._refilter)

        self.pending_label = QLabel()
        self.pending_label.setObjectName("trackingPending")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setToolTip("Apply the changes to the server (recorded in Jobs & Logs)")
        self.save_button.clicked.connect(self.save)
        buttons.rejected.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.pending_label, 1)
        bottom.addWidget(buttons)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.message)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(bottom)
        self.tabs.setCurrentIndex(TrackingTab.DELETE)
        self._update_pending()
        self.load()

    # -- loading ------------------------------------------------------------------------------
    def load(self) -> asyncio.Task[Any]:
        self._set_busy(True, "Reading the server's tracking setup…")
        task = run_op(self, self._engine.tracking_overview(self._profile), on_success=self.show_overview,
                      on_error=self._load_failed)
        self._task = task
        return task

    def _load_failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        title, text = (getattr(exc, "title", "Could not read the tracking setup"),
                       getattr(exc, "message", f"{type(exc).__name__}: {exc}"))
        self.message.show_message(MessageLevel.ERROR, title, text)
        self.save_button.setEnabled(False)

    def show_overview(self, overview: TrackingOverview) -> None:
        self.overview = overview
        for model in self.models.values():
            model.removeRows(0, model.rowCount())
        plugins = overview.plugins_installed
        no_plugins = "" if plugins else "The Resco plugins are not installed on the server"
        for r in overview.relationships:
            row = [_check_item(r.track_removals, enabled=plugins, tip=no_plugins or
                               f"Record links of {r.schema_name} removed on the server"),
                   _text_item(r.schema_name), _text_item(r.entity1), _text_item(r.entity2),
                   _text_item(r.intersect_entity)]
            self._add_row(TrackingTab.RELATIONSHIPS, row, r.schema_name, r.synchronized)
        for e in overview.entities:
            for tab, on in ((TrackingTab.DELETE, e.track_delete), (TrackingTab.OWNER, e.track_owner)):
                if tab is TrackingTab.OWNER and not e.user_owned:
                    continue  # no owner to change
                what = "deletions" if tab is TrackingTab.DELETE else "owner changes"
                row = [_check_item(on, enabled=plugins, tip=no_plugins or f"Record {what} of {e.label}"),
                       _text_item(e.label), _text_item(e.logical_name), self._ct_item(e.change_tracking),
                       _text_item("Yes" if e.synchronized else "No")]
                self._add_row(tab, row, e.logical_name, e.synchronized)
        for tab, model in self.models.items():
            table = self.tables[tab]
            table.sortByColumn(1, Qt.SortOrder.AscendingOrder)
            table.resizeColumnsToContents()
            for column in range(model.columnCount()):
                if column != 1:
                    table.setColumnWidth(column, min(max(table.columnWidth(column), 90), 260))
        self._set_busy(False)
        if not plugins:
            self.message.show_message(
                MessageLevel.WARNING, "Resco plugins not installed",
                "The server has no Resco tracking configuration (resco_mobiletrackingconfig), so deletions, owner "
                "changes and N:N removals cannot be tracked by Resco. Install Resco's Dynamics plugins, or use "
                "Dataverse change tracking for deletions.")
        elif not overview.mobile_tracking_synchronized and self._anything_tracked():
            self.message.show_message(
                MessageLevel.INFO, "Mobile Tracking is not synchronized",
                "Resco applies tracking records only when Mobile Tracking (resco_mobiletracking) is synchronized; "
                "Save enables it.")
        self._refilter()
        self._update_pending()
        self.loaded.emit()

    def _ct_item(self, on: bool) -> QStandardItem:
        if on:
            item = _check_item(True, enabled=False, tip="Change tracking is on (it cannot be switched off)")
            item.setText("On")
        else:
            item = _check_item(False, tip="Switch on Dataverse change tracking for this table (cannot be undone)")
            item.setText("Off")
        return item

    def _add_row(self, tab: TrackingTab, items: list[QStandardItem], name: str, synchronized: bool) -> None:
        items[0].setData(name, NAME_ROLE)
        items[0].setData(synchronized, SYNCED_ROLE)
        self.models[tab].appendRow(items)

    def _anything_tracked(self) -> bool:
        o = self.overview
        return o is not None and (any(e.track_delete or e.track_owner for e in o.entities)
                                  or any(r.track_removals for r in o.relationships))

    # -- editing -------------------------------------------------------------------------------
    def _refilter(self, *_: object) -> None:
        for proxy in self.proxies.values():
            proxy.set(self.search.text().strip(), self.only_synced.isChecked())

    def _item_changed(self, tab: TrackingTab, item: QStandardItem) -> None:
        if tab is not TrackingTab.RELATIONSHIPS and item.column() == self.CT_COLUMN and item.isEnabled():
            text = "Switch on at Save" if item.checkState() == Qt.CheckState.Checked else "Off"
            if item.text() != text:
                item.setText(text)  # re-enters with the same state, then stops here
                return
        if tab is not TrackingTab.RELATIONSHIPS and item.column() == self.CT_COLUMN and not self._syncing_ct:
            # one state shown on two tabs
            name = self.models[tab].item(item.row(), 0).data(NAME_ROLE)
            other = TrackingTab.OWNER if tab is TrackingTab.DELETE else TrackingTab.DELETE
            row = self._row_of(other, name)
            if row is not None:
                self._syncing_ct = True
                try:
                    self.models[other].item(row, self.CT_COLUMN).setCheckState(item.checkState())
                finally:
                    self._syncing_ct = False
        self._update_pending()

    def _row_of(self, tab: TrackingTab, name: str) -> int | None:
        model = self.models[tab]
        for row in range(model.rowCount()):
            if model.item(row, 0).data(NAME_ROLE) == name:
                return row
        return None

    def _checked(self, tab: TrackingTab, column: int) -> dict[str, bool]:
        model = self.models[tab]
        return {model.item(r, 0).data(NAME_ROLE): model.item(r, column).checkState() == Qt.CheckState.Checked
                for r in range(model.rowCount())}

    def set_checked(self, tab: TrackingTab, name: str, checked: bool, *, change_tracking: bool = False) -> None:
        """Tick or clear a row's tracking checkbox (or its change-tracking one); for tests and scripts."""
        row = self._row_of(tab, name)
        if row is None:
            raise KeyError(name)
        item = self.models[tab].item(row, self.CT_COLUMN if change_tracking else 0)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def is_checked(self, tab: TrackingTab, name: str, *, change_tracking: bool = False) -> bool:
        row = self._row_of(tab, name)
        if row is None:
            raise KeyError(name)
        item = self.models[tab].item(row, self.CT_COLUMN if change_tracking else 0)
        return item.checkState() == Qt.CheckState.Checked

    def visible_names(self, tab: TrackingTab) -> list[str]:
        proxy = self.proxies[tab]
        return [proxy.data(proxy.index(r, 0), NAME_ROLE) for r in range(proxy.rowCount())]

    def pending_changes(self) -> TrackingChanges:
        if self.overview is None:
            return TrackingChanges()
        ct = {n for tab in (TrackingTab.DELETE, TrackingTab.OWNER)
              for n, on in self._checked(tab, self.CT_COLUMN).items() if on}
        return self.overview.changes(
            change_tracking=ct,
            delete=self._checked(TrackingTab.DELETE, 0),
            owner=self._checked(TrackingTab.OWNER, 0),
            relationships=self._checked(TrackingTab.RELATIONSHIPS, 0),
        )

    def _update_pending(self) -> None:
        changes = self.pending_changes()
        count = len(changes.change_tracking) + len(changes.delete) + len(changes.owner) + len(changes.relationships)
        text = "No changes" if not count else f"{count} change{'s' if count != 1 else ''} to save"
        if changes.change_tracking:
            text += f" — {len(changes.change_tracking)} cannot be undone"
        self.pending_label.setText(text)
        self.save_button.setEnabled(bool(count) and not self._busy())

    def _busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def _set_busy(self, busy: bool, note: str = "") -> None:
        self.tabs.setEnabled(not busy)
        self.reload_button.setEnabled(not busy)
        if busy:
            self.save_button.setEnabled(False)
            self.pending_label.setText(note)

    # -- saving --------------------------------------------------------------------------------
    def save(self) -> QMessageBox | asyncio.Task[Any] | None:
        """Apply the changes; irreversible ones (Dataverse change tracking) are confirmed first."""
        changes = self.pending_changes()
        if changes.is_empty or self._busy():
            return None
        if not changes.change_tracking:
            return self._apply(changes)
        tables = ", ".join(sorted(changes.change_tracking))
        box = QMessageBox(
            QMessageBox.Icon.Warning, "Switch on Dataverse change tracking?",
            f"Dataverse change tracking will be switched on for: {tables}.\n\n"
            "This cannot be undone: change tracking cannot be switched off again, by crmsync or in Power Apps.",
            QMessageBox.StandardButton.Cancel, self,
        )
        box.setObjectName("confirmIrreversible")
        box.setInformativeText("The other changes are saved together with it.")
        self.confirm_button = box.addButton("Switch on and save", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def answered(button: Any) -> None:
            if button is self.confirm_button:
                self._apply(changes)

        box.buttonClicked.connect(answered)
        self.confirm_box = box
        box.open()
        return box

    def _apply(self, changes: TrackingChanges) -> asyncio.Task[Any]:
        self._set_busy(True, "Saving…")
        self.message.clear()
        task = run_op(self, self._engine.apply_tracking(self._profile, changes), on_success=self._applied,
                      on_error=self._load_failed)
        self._task = task
        return task

    def _applied(self, value: tuple[RunResult, TrackingResult | None]) -> None:
        result, outcome = value
        if outcome is not None and result.status is RunStatus.SUCCEEDED:
            self.message.show_message(MessageLevel.SUCCESS, "Tracking saved", "\n".join(outcome.lines()[:12]))
        else:
            lines = outcome.lines() if outcome is not None else []
            self.message.show_message(MessageLevel.ERROR, "Tracking not fully saved",
                                      "\n".join([result.error or result.summary, *lines][:12])
                                      + "\nThe run log in Jobs & Logs has every step.")
        if outcome is not None:
            self.saved.emit(outcome)
        self.load()
