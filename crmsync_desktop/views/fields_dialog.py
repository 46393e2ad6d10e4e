"""The field picker of one entity: which fields travel from the server to the client.

Search, select all/none (of the fields shown), each field's display name, logical name and type;
the fields the sync cannot work without (primary key, primary name, owner, columns a filter reads)
are checked and locked, with the reason. OK emits ``fields_chosen`` with the choice (``()`` means
every field, the configuration's default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import QSortFilterProxyModel, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmsync_desktop.sync.connectors.types import EntityMeta
from crmsync_desktop.ui.models.fields_model import FieldColumn, FieldsModel

__all__ = ["FieldsDialog"]


class _FieldFilter(QSortFilterProxyModel):
    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:  # type: ignore[no-untyped-def,override]
        text = self.filterRegularExpression().pattern().casefold()
        if not text:
            return True
        model = self.sourceModel()
        assert isinstance(model, FieldsModel)
        f = model.field_at(source_row)
        return text in f.logical_name.casefold() or text in (f.label or "").casefold()


class FieldsDialog(QDialog):
    fields_chosen = Signal(tuple)  # tuple[str, ...]; () = every field

    def __init__(
        self,
        entity: EntityMeta,
        selected: Sequence[str],
        locked: Mapping[str, str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("fieldsDialog")
        self.entity = entity
        self.setWindowTitle(f"Fields of {entity.label or entity.logical_name}")
        self.resize(980, 600)

        intro = QLabel(
            f"Choose the fields of <b>{entity.label or entity.logical_name}</b> ({entity.logical_name}) that are "
            "synchronized. Locked fields (padlock) are needed by the sync and always travel; the note says why. "
            "Changing the fields makes the next sync read this entity in full."
        )
        intro.setWordWrap(True)

        self.model = FieldsModel(entity.fields, selected, locked, self)
        self.proxy = _FieldFilter(self)
        self.proxy.setSourceModel(self.model)

        self.search = QLineEdit()
        self.search.setObjectName("fieldSearch")
        self.search.setPlaceholderText("Search fields by name…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._search)
        self.select_all_button = QPushButton("Select all")
        self.select_all_button.setToolTip("Select every field shown")
        self.select_all_button.clicked.connect(lambda: self._check_visible(True))
        self.select_none_button = QPushButton("Select none")
        self.select_none_button.setToolTip("Clear every field shown (locked fields stay)")
        self.select_none_button.clicked.connect(lambda: self._check_visible(False))
        self.count_label = QLabel()
        self.count_label.setObjectName("fieldCount")
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.select_all_button)
        top.addWidget(self.select_none_button)
        top.addWidget(self.count_label)

        self.table = QTableView()
        self.table.setObjectName("fieldsTable")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(FieldColumn.CHECK, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(FieldColumn.LABEL, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(FieldColumn.LOGICAL_NAME, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(FieldColumn.TYPE, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.resizeColumnsToContents()
        for column, cap in ((FieldColumn.LABEL, 220), (FieldColumn.LOGICAL_NAME, 200), (FieldColumn.TYPE, 200)):
            self.table.setColumnWidth(column, min(max(self.table.columnWidth(column), 110), cap))

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)

        self.model.selection_changed.connect(self._update_count)
        self._update_count()

    def _search(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())

    def visible_rows(self) -> list[int]:
        return [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]

    def _check_visible(self, checked: bool) -> None:
        self.model.set_checked(self.visible_rows(), checked)

    def _update_count(self, *_: object) -> None:
        total = self.model.rowCount()
        count = self.model.selected_count
        self.count_label.setText(f"{count} of {total} selected")
        self.ok_button.setEnabled(count > 0)

    def accept(self) -> None:
        self.fields_chosen.emit(self.model.selected())
        super().accept()
