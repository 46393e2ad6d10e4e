"""Table model of the field picker: every field of one entity, checkable, some locked with a reason."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal

from crmsync_desktop.sync.connectors.types import FieldMeta, FieldType
from crmsync_desktop.ui.widgets.ribbon import toolbar_icon

__all__ = ["FieldColumn", "FieldsModel", "type_label"]

_Index = QModelIndex | QPersistentModelIndex

_TYPE_LABELS = {
    FieldType.UNIQUEIDENTIFIER: "Unique identifier",
    FieldType.STRING: "Text",
    FieldType.MEMO: "Multiline text",
    FieldType.INTEGER: "Whole number",
    FieldType.BIGINT: "Big integer",
    FieldType.DECIMAL: "Decimal",
    FieldType.DOUBLE: "Floating point",
    FieldType.MONEY: "Currency",
    FieldType.BOOLEAN: "Yes/No",
    FieldType.DATETIME: "Date and time",
    FieldType.PICKLIST: "Choice",
    FieldType.MULTI_PICKLIST: "Choices",
    FieldType.STATE: "Status",
    FieldType.STATUS: "Status reason",
    FieldType.LOOKUP: "Lookup",
    FieldType.OWNER: "Owner",
    FieldType.ROWVERSION: "Row version",
    FieldType.BINARY: "Binary",
    FieldType.OTHER: "Other (not copied)",
}


def type_label(field: FieldMeta) -> str:
    label = _TYPE_LABELS.get(field.type, field.type.value)
    if field.type in (FieldType.LOOKUP, FieldType.OWNER) and field.targets:
        label += f" → {', '.join(field.targets)}"
    return label


class FieldColumn(enum.IntEnum):
    CHECK = 0
    LABEL = 1
    LOGICAL_NAME = 2
    TYPE = 3
    NOTE = 4


_HEADERS = ("", "Display Name", "Logical Name", "Type", "Note")


class FieldsModel(QAbstractTableModel):
    """``selection_changed(int)`` carries how many fields are selected."""

    selection_changed = Signal(int)

    def __init__(
        self,
        fields: Sequence[FieldMeta],
        selected: Iterable[str],
        locked: Mapping[str, str],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._fields = sorted(fields, key=lambda f: ((f.label or f.logical_name).casefold(), f.logical_name))
        self._locked = dict(locked)
        chosen = set(selected) or {f.logical_name for f in fields}  # empty: every field
        self._checked = chosen | set(self._locked)

    def field_at(self, row: int) -> FieldMeta:
        return self._fields[row]

    def is_locked(self, row: int) -> bool:
        return self._fields[row].logical_name in self._locked

    def selected(self) -> tuple[str, ...]:
        """The chosen fields in display order; ``()`` when every field is chosen (the config's "all")."""
        names = [f.logical_name for f in self._fields if f.logical_name in self._checked]
        return () if len(names) == len(self._fields) else tuple(sorted(names))

    @property
    def selected_count(self) -> int:
        return sum(1 for f in self._fields if f.logical_name in self._checked)

    def set_checked(self, rows: Iterable[int], checked: bool) -> None:
        changed = []
        for row in rows:
            name = self._fields[row].logical_name
            if name in self._locked or (name in self._checked) == checked:
                continue
            (self._checked.add if checked else self._checked.discard)(name)
            changed.append(row)
        if changed:
            self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), 0))
            self.selection_changed.emit(self.selected_count)

    # -- Qt model -----------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._fields)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(_HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal and 0 <= section < len(
            _HEADERS
        ):
            return _HEADERS[section]
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == FieldColumn.CHECK and not self.is_locked(index.row()):
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._fields):
            return None
        f = self._fields[index.row()]
        column = FieldColumn(index.column())
        locked = self._locked.get(f.logical_name)
        if role == Qt.ItemDataRole.CheckStateRole and column is FieldColumn.CHECK:
            return Qt.CheckState.Checked if f.logical_name in self._checked else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DisplayRole:
            match column:
                case FieldColumn.CHECK:
                    return None
                case FieldColumn.LABEL:
                    return f.label or f.logical_name
                case FieldColumn.LOGICAL_NAME:
                    return f.logical_name
                case FieldColumn.TYPE:
                    return type_label(f)
                case FieldColumn.NOTE:
                    if locked:
                        return f"Always synced: {locked}"
                    if f.type is FieldType.OTHER:
                        return "Not copied by the sync (unsupported type)"
                    return "Required" if f.required else ""
        if role == Qt.ItemDataRole.DecorationRole and column is FieldColumn.CHECK and locked:
            return toolbar_icon("lock")
        if role == Qt.ItemDataRole.ToolTipRole:
            if locked:
                return f"{f.label or f.logical_name} cannot be left out: {locked}."
            return f"{f.label or f.logical_name} ({f.logical_name}), {type_label(f)}"
        return None

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.CheckStateRole or index.column() != FieldColumn.CHECK:
            return False
        if self.is_locked(index.row()):
            return False
        checked = value == Qt.CheckState.Checked or value == Qt.CheckState.Checked.value
        self.set_checked([index.row()], bool(checked))
        return True
