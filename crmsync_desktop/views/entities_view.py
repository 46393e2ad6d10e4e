"""The Synchronization tab: the entity grid (Woodford's "Resco CRM Synchronization" grid, extended).

Per entity: enable, display and logical name, sync and upload filter summaries, fields, Sync
Deletion with its strategy (and what Auto resolves to), the conflict policy, change detection,
records held, last sync, waiting retries. Search, "enabled only", select all/none act on the rows
shown. Edits stay in the grid (bold, ●) until Save, which validates every filter on the engine side
and reports the entities the next sync reads in full; filter problems are shown inline and nothing
is saved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmsync_desktop.domain import EntityConfig
from crmsync_desktop.errors import CrmSyncError, FilterError
from crmsync_desktop.sync.engine import EntityStatus, SyncEngine
from crmsync_desktop.sync.metadata import locked_fields
from crmsync_desktop.sync.metadata.schema import Schema
from crmsync_desktop.ui.models.entities_model import (
    CHOICE_TIPS_ROLE,
    CHOICES_ROLE,
    SORT_ROLE,
    Column,
    EntitiesModel,
    EntityRow,
)
from crmsync_desktop.ui.ops import run_op, show_error
from crmsync_desktop.ui.widgets.message import InlineMessage, MessageLevel
from crmsync_desktop.views.fields_dialog import FieldsDialog

__all__ = ["EntitiesView", "FilterEditorFactory"]

_Index = QModelIndex | QPersistentModelIndex


class _FilterEditor(Protocol):
    @property
    def accepted_xml(self) -> Any: ...  # Signal(str)

    def open(self) -> None: ...


FilterEditorFactory = Callable[[SyncEngine, str, str, str, str, QWidget], _FilterEditor]
"""``FilterEditorDialog(engine, profile, entity, which, xml, parent)``; ``which`` is "sync" or "upload"."""


class _EntityFilter(QSortFilterProxyModel):
    """Search by display or logical name; optionally only enabled entities."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._enabled_only = False
        self.setSortRole(SORT_ROLE)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().casefold()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_enabled_only(self, on: bool) -> None:
        self.beginFilterChange()
        self._enabled_only = on
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        model = self.sourceModel()
        assert isinstance(model, EntitiesModel)
        r = model.row_at(source_row)
        if self._enabled_only and not r.config.enabled:
            return False
        if not self._text:
            return True
        return self._text in r.name.casefold() or self._text in r.status.display_name.casefold()


class _ChoiceDelegate(QStyledItemDelegate):
    """A combo of the choices the cell offers (``CHOICES_ROLE``), each with its one-line tooltip.

    The choice applies as soon as it is picked (mouse, or the arrow keys on the closed combo);
    Enter or Tab then closes the editor, Escape closes it keeping what was picked.
    """

    def __init__(self, object_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._object_name = object_name

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: _Index) -> QWidget:
        combo = QComboBox(parent)
        combo.setObjectName(self._object_name)
        tips = index.data(CHOICE_TIPS_ROLE) or {}
        for choice, label in index.data(CHOICES_ROLE) or []:
            combo.addItem(label, choice.value)
            if choice.value in tips:
                combo.setItemData(combo.count() - 1, tips[choice.value], Qt.ItemDataRole.ToolTipRole)
        combo.activated.connect(lambda *_: self.commitData.emit(combo))
        combo.currentIndexChanged.connect(
            lambda i: combo.setToolTip(str(combo.itemData(i, Qt.ItemDataRole.ToolTipRole) or ""))
        )
        return combo

    def setEditorData(self, editor: QWidget, index: _Index) -> None:
        assert isinstance(editor, QComboBox)
        editor.setCurrentIndex(max(0, editor.findData(index.data(Qt.ItemDataRole.EditRole))))

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: _Index) -> None:
        assert isinstance(editor, QComboBox)
        model.setData(index, editor.currentData(), Qt.ItemDataRole.EditRole)


class EntitiesView(QWidget):
    """The grid of one profile. ``dirty_changed(bool)``, ``current_changed()``, ``loaded()`` for the shell."""

    dirty_changed = Signal(bool)
    current_changed = Signal()
    loaded = Signal()
    saved = Signal(list)  # entities the next sync reads in full

    def __init__(self, engine: SyncEngine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._engine = engine
        self.profile: str | None = None
        self.schema: Schema | None = None
        self.filter_editor: FilterEditorFactory | None = None
        self._load_task: asyncio.Task[Any] | None = None
        self._save_task: asyncio.Task[Any] | None = None

        self.model = EntitiesModel(self)
        self.model.dirty_changed.connect(self.dirty_changed)
        self.model.dirty_changed.connect(lambda *_: self._update_counts())
        self.model.dataChanged.connect(lambda *_: self._update_counts())
        self.proxy = _EntityFilter(self)
        self.proxy.setSourceModel(self.model)

        self.search = QLineEdit()
        self.search.setObjectName("entitySearch")
        self.search.setPlaceholderText("Search entities by display or logical name…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.set_text)
        self.enabled_only = QCheckBox("Enabled only")
        self.enabled_only.setToolTip("Show only the entities that are synchronized")
        self.enabled_only.toggled.connect(self.proxy.set_enabled_only)
        self.select_all_button = QPushButton("Select all")
        self.select_all_button.setToolTip("Enable every entity shown")
        self.select_all_button.clicked.connect(lambda: self.set_visible_enabled(True))
        self.select_none_button = QPushButton("Select none")
        self.select_none_button.setToolTip("Disable every entity shown")
        self.select_none_button.clicked.connect(lambda: self.set_visible_enabled(False))
        self.count_label = QLabel()
        self.count_label.setObjectName("entityCount")
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        bar.addWidget(self.enabled_only)
        bar.addWidget(self.select_all_button)
        bar.addWidget(self.select_none_button)
        bar.addSpacing(12)
        bar.addWidget(self.count_label)

        self.message = InlineMessage(self)

        self.table = QTableView()
        self.table.setObjectName("entityTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.DISPLAY_NAME, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.SelectedClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.DoubleClicked
        )
        self.table.setItemDelegateForColumn(Column.DELETION, _ChoiceDelegate("deletionCombo", self.table))
        self.table.setItemDelegateForColumn(Column.CONFLICTS, _ChoiceDelegate("conflictCombo", self.table))
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self.current_changed.emit())
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setHighlightSections(False)
        for column, width in _WIDTHS.items():
            self.table.setColumnWidth(column, width)

        self.empty_hint = QLabel()
        self.empty_hint.setObjectName("entitiesEmptyHint")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_hint)
        self.stack.addWidget(self.table)

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.message)
        layout.addWidget(self.stack, 1)
        self._show_empty("No connection profile yet. Click Connection to set one up, or Data ▸ Import a "
                         "configuration file.")
        self._update_counts()

    # -- loading --------------------------------------------------------------------------

    def load(self, profile: str | None, *, keep_message: bool = False) -> asyncio.Task[Any] | None:
        """Show ``profile``'s entities (discarding unsaved edits: the shell asks first)."""
        self.profile = profile
        if not keep_message:
            self.message.clear()
        if profile is None:
            self.model.clear()
            self.schema = None
            self._show_empty("No connection profile yet. Click Connection to set one up, or Data ▸ Import a "
                             "configuration file.")
            self.loaded.emit()
            return None
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()

        async def fetch() -> tuple[list[EntityStatus], Schema]:
            return await self._engine.entity_statuses(profile), await self._engine.server_schema(profile)

        self._load_task = run_op(self, fetch(), on_success=lambda value: self._show(profile, *value),
                                 on_error=self._load_failed)
        return self._load_task

    def _show(self, profile: str, statuses: list[EntityStatus], schema: Schema) -> None:
        if profile != self.profile:
            return
        current = self.current_row()
        self.schema = schema
        self.model.set_entities(statuses, schema)
        if statuses:
            self.stack.setCurrentWidget(self.table)
        else:
            self._show_empty(f"'{profile}' has no entities yet. Open Connection and click Connect: the server's "
                             "entities are then listed here to choose from.")
        if current is not None:
            self.select_entity(current.name)
        self._update_counts()
        self.loaded.emit()

    def _load_failed(self, exc: BaseException) -> None:
        if isinstance(exc, CrmSyncError):
            self.message.show_message(MessageLevel.ERROR, exc.title, exc.message)
        else:
            show_error(self, exc)
        self.loaded.emit()

    def _show_empty(self, text: str) -> None:
        self.empty_hint.setText(text)
        self.stack.setCurrentWidget(self.empty_hint)

    # -- selection ------------------------------------------------------------------------

    def visible_rows(self) -> list[int]:
        return [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]

    def set_visible_enabled(self, enabled: bool) -> None:
        self.model.set_enabled(self.visible_rows(), enabled)

    def current_row(self) -> EntityRow | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.model.row_at(self.proxy.mapToSource(index).row())

    def select_entity(self, logical_name: str) -> bool:
        try:
            source = self.model.index(self.model.row_of(logical_name), Column.DISPLAY_NAME)
        except KeyError:
            return False
        index = self.proxy.mapFromSource(source)
        if not index.isValid():
            return False
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)
        return True

    def _update_counts(self) -> None:
        total = self.model.rowCount()
        enabled = sum(1 for c in self.model.configs() if c.enabled)
        unsaved = len(self.model.dirty_configs())
        text = f"{enabled} of {total} entities enabled"
        if unsaved:
            text += f" · {unsaved} unsaved"
        self.count_label.setText(text)

    # -- saving ---------------------------------------------------------------------------

    @property
    def is_dirty(self) -> bool:
        return self.model.is_dirty

    def discard_changes(self) -> None:
        self.model.discard_changes()
        self.message.clear()

    def save(self, on_saved: Callable[[], None] | None = None) -> asyncio.Task[Any] | None:
        """Save the changed entities; ``on_saved`` runs once they are stored (not on failure)."""
        profile, configs = self.profile, self.model.dirty_configs()
        if profile is None or not configs:
            if on_saved is not None:
                on_saved()
            return None

        def done(resync: list[str]) -> None:
            self._saved(profile, configs, resync)
            if on_saved is not None:
                on_saved()

        self._save_task = run_op(self, self._engine.save_entity_configs(profile, configs), on_success=done,
                                 on_error=self._save_failed)
        return self._save_task

    def _saved(self, profile: str, configs: list[EntityConfig], resync: list[str]) -> None:
        names = ", ".join(sorted(resync))
        detail = (f"The next sync reads these entities in full: {names}." if resync
                  else "No entity needs a full sync: the next sync continues where the last one stopped.")
        self.message.show_message(MessageLevel.SUCCESS, f"Saved {len(configs)} entit{'y' if len(configs) == 1 else 'ies'}",
                                  detail)
        self.saved.emit(list(resync))
        self.reload_keeping_message(profile)

    def reload_keeping_message(self, profile: str) -> asyncio.Task[Any] | None:
        """Reload the rows (counts, last sync) without hiding the message that reports what just happened."""
        return self.load(profile, keep_message=True)

    def _save_failed(self, exc: BaseException) -> None:
        if isinstance(exc, FilterError):
            self.message.show_message(MessageLevel.ERROR, exc.title,
                                      exc.message + "\nFix the filters (Sync Filter / Upload Filter) and save again.")
        elif isinstance(exc, CrmSyncError):
            self.message.show_message(MessageLevel.ERROR, exc.title, exc.message)
        else:
            show_error(self, exc)

    # -- dialogs ------------------------------------------------------------------------

    def _double_clicked(self, index: QModelIndex) -> None:
        column = Column(index.column())
        if column is Column.FIELDS:
            self.open_fields_dialog()
        elif column is Column.SYNC_FILTER:
            self.open_filter_editor("sync")
        elif column is Column.UPLOAD_FILTER:
            self.open_filter_editor("upload")

    def open_fields_dialog(self) -> FieldsDialog | None:
        row = self.current_row()
        if row is None or self.schema is None:
            return None
        meta = self.schema.entity(row.name)
        if meta is None or not meta.fields:
            self.message.show_message(
                MessageLevel.WARNING, f"No field list for {row.name}",
                "The replicated metadata has no fields for this entity. Run Update Server, then try again.")
            return None
        filters = [x for c in self.model.configs() for x in (c.sync_filter, c.upload_filter) if x.strip()]
        try:
            locked = locked_fields(meta, filters)
        except FilterError as exc:
            self.message.show_message(MessageLevel.ERROR, exc.title,
                                      f"{exc.message}\nFix that filter first: the fields it reads cannot be worked out.")
            return None
        dialog = FieldsDialog(meta, row.config.fields, locked, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        name = row.name
        dialog.fields_chosen.connect(lambda fields: self.model.update_config(name, fields=tuple(fields)))
        dialog.open()
        return dialog

    def open_filter_editor(self, which: str) -> QWidget | None:
        row = self.current_row()
        if row is None or self.profile is None or self.filter_editor is None:
            return None
        xml = row.config.sync_filter if which == "sync" else row.config.upload_filter
        dialog = self.filter_editor(self._engine, self.profile, row.name, which, xml, self)
        name = row.name
        key = "sync_filter" if which == "sync" else "upload_filter"
        dialog.accepted_xml.connect(lambda text: self.model.update_config(name, **{key: str(text)}))
        dialog.open()
        return dialog  # type: ignore[return-value]


_WIDTHS = {
    Column.ENABLED: 40,
    Column.DISPLAY_NAME: 160,
    Column.LOGICAL_NAME: 130,
    Column.SYNC_FILTER: 190,
    Column.UPLOAD_FILTER: 110,
    Column.FIELDS: 70,
    Column.SYNC_DELETION: 96,
    Column.DELETION: 170,
    Column.CONFLICTS: 120,
    Column.CHANGE_DETECTION: 118,
    Column.RECORDS: 70,
    Column.LAST_SYNC: 100,
    Column.RETRIES: 56,
}
