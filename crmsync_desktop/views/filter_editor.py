"""Edit Filter: build a sync or upload filter as a tree, or as FetchXML, and preview what it matches.

In the spirit of Woodford's Edit Filter (resco.md §3.2, §9.3) and XrmToolBox's FetchXML Builder:
the entity at the root; conditions as field / operator / value rows with pickers from the server's
metadata; AND/OR groups (Group AND, Group OR, Ungroup, And/Or); link-entities picked from the
entity's relationships; a FetchXML tab kept in sync both ways (a malformed edit is reported and
the tree keeps the last valid filter); validation against the replicated schema; Import/Export
XML; and Preview, which asks the server how many records match and shows a sample.

An entity with no condition means "All records" and is saved as the empty filter.
Host it with ``dialog.open()`` and connect ``accepted_xml``; never ``exec()`` it in a coroutine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QToolBar,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from crmsync_desktop.errors import CrmSyncError
from crmsync_desktop.sync.filters import (
    FetchFilter,
    FilterType,
    parse_filter,
    render_filter,
    summarize_filter,
    validate_filter,
)
from crmsync_desktop.sync.metadata.schema import Schema, filter_metadata
from crmsync_desktop.ui.models.filter_tree_model import (
    FieldCatalog,
    FilterTreeModel,
    GroupNode,
    LinkOption,
    Node,
)
from crmsync_desktop.ui.ops import run_op, show_error
from crmsync_desktop.views.filter_editor_delegate import FilterItemDelegate

if TYPE_CHECKING:
    from crmsync_desktop.sync.engine import FilterPreview

__all__ = ["FilterEditorDialog", "FilterEngine"]

XML_FILE_FILTER = "FetchXML (*.xml);;All files (*)"
_OK = "color: #1b6e2a;"
_BAD = "color: #b3261e;"


class FilterEngine(Protocol):
    """The part of ``SyncEngine`` the editor uses."""

    async def server_schema(self, profile: str) -> Schema: ...

    async def preview_filter(self, profile: str, entity: str, fetch_xml: str) -> FilterPreview: ...


class FilterEditorDialog(QDialog):
    """Edit the ``which`` filter ("sync" or "upload") of ``entity``; emits ``accepted_xml`` on Save.

    Args:
        engine: ``SyncEngine`` (``server_schema`` for the pickers, ``preview_filter`` for Preview).
        profile: the connection profile.
        entity: the entity the filter belongs to.
        which: "sync" or "upload" (only the title changes).
        xml: the current filter ("" for all records).

    Signals:
        accepted_xml(str): the saved filter, canonical FetchXML ("" for all records).
    """

    accepted_xml = Signal(str)

    def __init__(
        self,
        engine: FilterEngine,
        profile: str,
        entity: str,
        which: str = "sync",
        xml: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("filterEditor")
        self._engine = engine
        self._profile = profile
        self.entity = entity
        self.which = which
        self._syncing_xml = False
        self._xml_error: str | None = None
        self._problems: list[str] = []
        self._preview_task: asyncio.Task[Any] | None = None
        self.setWindowTitle(f"Edit {which.capitalize()} Filter — {entity}")
        self.resize(980, 680)

        self.model = FilterTreeModel(entity, parent=self)
        self.model.filter_changed.connect(self._tree_changed)

        # -- ribbon ------------------------------------------------------------------------------
        self.toolbar = QToolBar("Query")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.add_condition_action = self._action("Add Condition", self.add_condition, "Ctrl+N")
        self.add_link_button = QToolButton()
        self.add_link_button.setText("Add Link")
        self.add_link_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.link_menu = QMenu(self.add_link_button)
        self.link_menu.aboutToShow.connect(self._fill_link_menu)
        self.add_link_button.setMenu(self.link_menu)
        self.group_and_action = self._action("Group AND", lambda: self.group_selected(FilterType.AND))
        self.group_or_action = self._action("Group OR", lambda: self.group_selected(FilterType.OR))
        self.ungroup_action = self._action("Ungroup", self.ungroup_selected)
        self.and_or_action = self._action("And/Or", self.toggle_and_or)
        self.delete_action = self._action("Delete", self.delete_selected, QKeySequence.StandardKey.Delete)
        self.import_action = self._action("Import XML…", self._choose_import)
        self.export_action = self._action("Export XML…", self._choose_export)
        self.clear_action = self._action("All records", self.clear)
        self.clear_action.setToolTip("Remove every condition and link: the filter matches all records")
        self.toolbar.addAction(self.add_condition_action)
        self.toolbar.addWidget(self.add_link_button)
        self.toolbar.addSeparator()
        for action in (self.group_and_action, self.group_or_action, self.ungroup_action, self.and_or_action,
                       self.delete_action):
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        for action in (self.import_action, self.export_action, self.clear_action):
            self.toolbar.addAction(action)

        # -- tree --------------------------------------------------------------------------------
        self.tree = QTreeView()
        self.tree.setObjectName("filterTree")
        self.tree.setModel(self.model)
        self.tree.setItemDelegate(FilterItemDelegate(self.tree))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.AllEditTriggers
                                  & ~QAbstractItemView.EditTrigger.CurrentChanged)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.tree.header().setStretchLastSection(True)
        self.tree.setColumnWidth(0, 330)
        self.tree.setColumnWidth(1, 210)
        self.tree.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.model.modelReset.connect(self._after_reset)
        self.summary_label = QLabel()
        self.summary_label.setObjectName("filterSummary")
        self.summary_label.setWordWrap(True)
        tree_page = QWidget()
        tree_layout = QVBoxLayout(tree_page)
        tree_layout.setContentsMargins(0, 4, 0, 0)
        tree_layout.addWidget(self.tree, 1)
        tree_layout.addWidget(self.summary_label)

        # -- FetchXML ----------------------------------------------------------------------------
        self.xml_edit = QPlainTextEdit()
        self.xml_edit.setObjectName("fetchXml")
        mono = QFont("Monospace")
        mono.setStyleHint(QFont.StyleHint.TypeWriter)
        self.xml_edit.setFont(mono)
        self.xml_edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.xml_edit.setPlaceholderText("Empty: all records")
        self._xml_timer = QTimer(self)
        self._xml_timer.setSingleShot(True)
        self._xml_timer.setInterval(400)
        self._xml_timer.timeout.connect(self.apply_xml_text)
        self.xml_edit.textChanged.connect(self._xml_typed)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("filterTabs")
        self.tabs.addTab(tree_page, "Filter")
        self.tabs.addTab(self.xml_edit, "FetchXML")
        self.tabs.currentChanged.connect(lambda _i: self._xml_timer.isActive() and self.apply_xml_text())

        self.problems_label = QLabel()
        self.problems_label.setObjectName("filterProblems")
        self.problems_label.setWordWrap(True)
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        # -- preview -----------------------------------------------------------------------------
        self.preview_box = QGroupBox("Preview on the server")
        self.preview_button = QPushButton("Preview")
        self.preview_button.setObjectName("previewButton")
        self.preview_button.setToolTip("Count the server records this filter matches and show a few")
        self.preview_button.clicked.connect(self.preview)
        self.preview_busy = QProgressBar()
        self.preview_busy.setRange(0, 0)
        self.preview_busy.setMaximumHeight(12)
        self.preview_busy.setTextVisible(False)
        self.preview_busy.setVisible(False)
        self.preview_count = QLabel("Not previewed yet.")
        self.preview_count.setObjectName("previewCount")
        self.preview_count.setWordWrap(True)
        self.preview_sample = QListWidget()
        self.preview_sample.setObjectName("previewSample")
        preview_layout = QVBoxLayout(self.preview_box)
        head = QHBoxLayout()
        head.addWidget(self.preview_button)
        head.addWidget(self.preview_busy, 1)
        preview_layout.addLayout(head)
        preview_layout.addWidget(self.preview_count)
        preview_layout.addWidget(self.preview_sample, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.tabs)
        self.splitter.addWidget(self.preview_box)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([700, 280])

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.status_label = QLabel("Loading the server's metadata…")
        self.status_label.setObjectName("filterStatus")
        bottom = QHBoxLayout()
        bottom.addWidget(self.status_label, 1)
        bottom.addWidget(self.buttons)

        layout = QVBoxLayout(self)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.problems_label)
        layout.addLayout(bottom)

        # -- initial filter ------------------------------------------------------------------------
        try:
            initial = parse_filter(xml, entity=entity) if xml.strip() else FetchFilter(entity=entity)
        except CrmSyncError as exc:
            initial = FetchFilter(entity=entity)
            self.model.set_filter(initial, notify=False)
            self._set_xml(xml)
            self._xml_error = exc.message
        else:
            self.model.set_filter(initial, notify=False)
            self._set_xml(self.xml)
        self._revalidate()
        self._update_actions()
        self._schema_task = run_op(self, engine.server_schema(profile), on_success=self._schema_loaded,
                                   on_error=self._schema_failed)

    def _action(self, text: str, slot: Any, shortcut: Any = None) -> QAction:
        action = QAction(text, self)
        action.triggered.connect(lambda _checked=False: slot())
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        return action

    # -- state -----------------------------------------------------------------------------------

    @property
    def fetch_filter(self) -> FetchFilter:
        return self.model.fetch_filter()

    @property
    def xml(self) -> str:
        """The filter as canonical FetchXML; "" for all records."""
        f = self.model.fetch_filter()
        return "" if f.is_empty else render_filter(f)

    @property
    def problems(self) -> list[str]:
        return list(self._problems)

    @property
    def xml_error(self) -> str | None:
        return self._xml_error

    def selected_nodes(self) -> list[Node]:
        rows = self.tree.selectionModel().selectedRows(0)
        return [self.model.node(index) for index in rows]

    def select_node(self, node: Node) -> None:
        index = self.model.index_of(node, 0)
        self.tree.selectionModel().clearSelection()
        self.tree.setCurrentIndex(index)
        self.tree.selectionModel().select(
            index, self.tree.selectionModel().SelectionFlag.Select | self.tree.selectionModel().SelectionFlag.Rows
        )

    # -- editing commands ------------------------------------------------------------------------

    def add_condition(self, attribute: str = "") -> Node:
        selected = self.selected_nodes()
        node = self.model.add_condition(selected[-1] if selected else None, attribute)
        self.select_node(node)
        if not attribute:
            self.tree.edit(self.model.index_of(node, FilterTreeModel.COL_ITEM))
        return node

    def link_options(self) -> list[LinkOption]:
        selected = self.selected_nodes()
        scope = (selected[-1] if selected else self.model.root).scope()
        return self.model.catalog.links(scope.entity)

    def add_link(self, option: LinkOption) -> Node:
        selected = self.selected_nodes()
        node = self.model.add_link(selected[-1] if selected else None, option)
        self.select_node(node)
        return node

    def group_selected(self, kind: FilterType) -> GroupNode | None:
        group = self.model.group(self.selected_nodes(), kind)
        if group is not None:
            self.select_node(group)
        return group

    def ungroup_selected(self) -> None:
        selected = self.selected_nodes()
        if len(selected) == 1:
            self.model.ungroup(selected[0])

    def toggle_and_or(self) -> None:
        selected = self.selected_nodes()
        self.model.toggle_and_or(selected[0] if selected else self.model.root)

    def delete_selected(self) -> None:
        self.model.remove(self.selected_nodes())

    def clear(self) -> None:
        self.model.set_filter(FetchFilter(entity=self.entity))

    def _fill_link_menu(self) -> None:
        self.link_menu.clear()
        options = self.link_options()
        if not options:
            action = self.link_menu.addAction("No relationships (metadata not loaded?)")
            action.setEnabled(False)
            return
        for option in options:
            action = self.link_menu.addAction(option.description)
            action.triggered.connect(lambda _c=False, o=option: self.add_link(o))

    # -- tree <-> XML ----------------------------------------------------------------------------

    def _set_xml(self, text: str) -> None:
        self._syncing_xml = True
        try:
            self.xml_edit.setPlainText(text)
        finally:
            self._syncing_xml = False

    def _tree_changed(self) -> None:
        self._xml_error = None
        self._set_xml(self.xml)
        self._revalidate()
        self._update_actions()
        self._clear_preview("The filter changed; preview again.")

    def _xml_typed(self) -> None:
        if not self._syncing_xml:
            self._xml_timer.start()

    def apply_xml_text(self) -> bool:
        """Parse the FetchXML tab into the tree now; on an error keep the tree and say why."""
        self._xml_timer.stop()
        text = self.xml_edit.toPlainText()
        try:
            parsed = parse_filter(text, entity=self.entity) if text.strip() else FetchFilter(entity=self.entity)
        except CrmSyncError as exc:
            self._xml_error = exc.message
            self._revalidate()
            return False
        self._xml_error = None
        self.model.set_filter(parsed, notify=False)
        self._revalidate()
        self._update_actions()
        self._clear_preview("The filter changed; preview again.")
        return True

    def _after_reset(self) -> None:
        self.tree.expandAll()

    # -- validation ------------------------------------------------------------------------------

    def _revalidate(self) -> None:
        problems = self.model.incomplete()
        catalog = self.model.catalog
        if catalog.loaded:
            complete = self.model.fetch_filter(complete_only=True)
            problems += [str(p) for p in validate_filter(complete, filter_metadata(catalog.schema))]
        self._problems = problems
        if self._xml_error:
            text = f"FetchXML: {self._xml_error}\nThe tree keeps the last valid filter; fix the XML or edit the tree."
            self.problems_label.setStyleSheet(_BAD)
            self.problems_label.setText(text)
        elif problems:
            self.problems_label.setStyleSheet(_BAD)
            self.problems_label.setText("\n".join(f"• {p}" for p in problems[:8])
                                        + (f"\n… and {len(problems) - 8} more" if len(problems) > 8 else ""))
        else:
            self.problems_label.setStyleSheet(_OK)
            self.problems_label.setText("✓ The filter is valid." if catalog.loaded
                                        else "Checking needs the server's metadata (loading…).")
        names = {f.logical_name: f.label for f in catalog.fields(self.entity)} if catalog.loaded else {}
        try:
            summary = summarize_filter(self.model.fetch_filter(complete_only=True), display_names=names)
        except (KeyError, CrmSyncError):
            summary = ""
        self.summary_label.setText(f"<b>{catalog.entity_label(self.entity)}</b>: {_escape(summary)}")
        self.save_button.setEnabled(not problems and not self._xml_error)
        self.preview_button.setEnabled(not problems and not self._xml_error and self._preview_task is None)

    def _update_actions(self) -> None:
        selected = self.selected_nodes()
        one = selected[0] if len(selected) == 1 else None
        self.group_and_action.setEnabled(self.model.groupable(selected))
        self.group_or_action.setEnabled(self.model.groupable(selected))
        self.ungroup_action.setEnabled(isinstance(one, GroupNode))
        self.delete_action.setEnabled(bool(selected) and self.model.root not in selected)
        self.and_or_action.setEnabled(True)

    # -- metadata ----------------------------------------------------------------------------------

    def _schema_loaded(self, schema: Schema) -> None:
        if not schema.has(self.entity):
            self.status_label.setText(
                f"{self.entity} is not in the replicated server metadata: run Connect or Update Server."
            )
        else:
            self.status_label.setText(f"Metadata of {len(schema.entities)} server entities loaded.")
        self.model.set_catalog(FieldCatalog(schema))
        self.tree.expandAll()
        self.tree.resizeColumnToContents(0)
        self.tree.setColumnWidth(0, max(300, min(460, self.tree.columnWidth(0) + 16)))
        self._revalidate()

    def _schema_failed(self, exc: BaseException) -> None:
        self.status_label.setText("The server's metadata could not be loaded; pickers show logical names only.")
        show_error(self, exc)

    # -- preview ---------------------------------------------------------------------------------

    def _clear_preview(self, text: str) -> None:
        if self._preview_task is None and self.preview_count.text() != "Not previewed yet.":
            self.preview_count.setText(text)
            self.preview_sample.clear()

    def preview(self) -> None:
        if self._problems or self._xml_error or self._preview_task is not None:
            return
        xml = self.xml
        self.preview_busy.setVisible(True)
        self.preview_button.setEnabled(False)
        self.preview_count.setText("Asking the server…")
        self.preview_sample.clear()

        def shown(result: FilterPreview) -> None:
            self._preview_task = None
            self.preview_busy.setVisible(False)
            more = "at least " if result.count_is_lower_bound else ""
            what = "all records" if not xml else "this filter"
            self.preview_count.setText(
                f"<b>{more}{result.count:,}</b> server record{'s' if result.count != 1 else ''} match {what}."
                + (" A sample:" if result.sample else "")
            )
            for rid, name in result.sample:
                item = QListWidgetItem(f"{name or '(no name)'}  ({rid[:8]}…)")
                item.setToolTip(rid)
                item.setData(Qt.ItemDataRole.UserRole, rid)
                self.preview_sample.addItem(item)
            self._revalidate()

        def failed(exc: BaseException) -> None:
            self._preview_task = None
            self.preview_busy.setVisible(False)
            self.preview_count.setText("The preview failed.")
            self._revalidate()
            show_error(self, exc)

        self._preview_task = run_op(self, self._engine.preview_filter(self._profile, self.entity, xml),
                                    on_success=shown, on_error=failed)

    # -- files -----------------------------------------------------------------------------------

    def _choose_import(self) -> None:
        dialog = QFileDialog(self, "Import FetchXML", "", XML_FILE_FILTER)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(self.import_xml_file)
        dialog.open()

    def _choose_export(self) -> None:
        dialog = QFileDialog(self, "Export FetchXML", f"{self.entity}-{self.which}-filter.xml", XML_FILE_FILTER)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("xml")
        dialog.fileSelected.connect(self.export_xml_file)
        dialog.open()

    def import_xml_file(self, path: str | Path) -> asyncio.Task[str]:
        """Read ``path`` (off the GUI thread) into the FetchXML tab and the tree."""

        def loaded(text: str) -> None:
            self._set_xml(text)
            if self.apply_xml_text():
                self._set_xml(self.xml)
                self.status_label.setText(f"Imported {Path(path).name}.")
            else:
                self.tabs.setCurrentWidget(self.xml_edit)
                self.status_label.setText(f"{Path(path).name} is not a valid filter for {self.entity}.")

        return run_op(self, asyncio.to_thread(Path(path).read_text, encoding="utf-8"), on_success=loaded)

    def export_xml_file(self, path: str | Path) -> asyncio.Task[int]:
        """Write the filter as FetchXML to ``path`` (all records: the bare entity)."""
        text = render_filter(self.model.fetch_filter()) + "\n"
        return run_op(self, asyncio.to_thread(Path(path).write_text, text, encoding="utf-8"),
                      on_success=lambda _n: self.status_label.setText(f"Exported to {Path(path).name}."))

    # -- closing ---------------------------------------------------------------------------------

    def save(self) -> None:
        if self._xml_timer.isActive() and not self.apply_xml_text():
            return
        if self._problems or self._xml_error:
            return
        self.accepted_xml.emit(self.xml)
        self.accept()

    def done(self, result: int) -> None:
        if self._preview_task is not None:
            self._preview_task.cancel()
            self._preview_task = None
        super().done(result)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
