"""Read-only tables of the Verify difference report and the Dry run plan.

``rows_for_verify`` and ``rows_for_dry_run`` turn the engine's values into plain rows; one small
:class:`ReportTableModel` shows either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from crmsync_desktop.sync.verify import VerifyReport

__all__ = [
    "DRY_RUN_HEADERS",
    "VERIFY_HEADERS",
    "ReportRow",
    "ReportTableModel",
    "rows_for_dry_run",
    "rows_for_verify",
]

_Index = QModelIndex | QPersistentModelIndex

VERIFY_HEADERS = ("Entity", "Result", "Server", "Client", "Missing on client", "Extra on client",
                  "Different", "Client only", "Examples")
DRY_RUN_HEADERS = ("Entity", "Would create", "Would update", "Would delete", "Unchanged", "Skipped",
                   "Failed", "Read", "Examples")
_DRY_RUN_COUNTERS = ("created", "updated", "deleted", "unchanged", "skipped", "failed", "read")


@dataclass(frozen=True, slots=True)
class ReportRow:
    cells: tuple[object, ...]  # str or int; ints are right-aligned and sorted as numbers
    problem: bool = False  # shown in the warning colour
    tooltip: str = ""


def rows_for_verify(report: VerifyReport) -> list[ReportRow]:
    rows = []
    for e in report.entities:
        diffs = e.missing_on_client + e.extra_on_client + e.different
        result = "In sync" if e.in_sync else f"{diffs:,} difference(s)"
        examples = ", ".join(e.examples)
        rows.append(ReportRow(
            (e.entity, result, e.server_count, e.client_count, e.missing_on_client, e.extra_on_client,
             e.different, e.client_only, examples),
            problem=not e.in_sync,
            tooltip="\n".join(e.examples),
        ))
    return rows


def rows_for_dry_run(
    counts: Mapping[str, Mapping[str, int]], examples: Mapping[tuple[str, str], Sequence[str]]
) -> list[ReportRow]:
    entities = sorted(set(counts) | {entity for entity, _ in examples})
    rows = []
    for entity in entities:
        c = counts.get(entity, {})
        samples = [f"{action}: {', '.join(ids)}" for (name, action), ids in sorted(examples.items())
                   if name == entity and ids]
        rows.append(ReportRow(
            (entity, *(int(c.get(k, 0)) for k in _DRY_RUN_COUNTERS), "; ".join(samples)),
            problem=bool(c.get("failed")),
            tooltip="\n".join(samples),
        ))
    return rows


class ReportTableModel(QAbstractTableModel):
    def __init__(self, headers: Sequence[str], rows: Sequence[ReportRow] = (), parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._headers = tuple(headers)
        self._rows = list(rows)

    def set_rows(self, rows: Sequence[ReportRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_at(self, row: int) -> ReportRow:
        return self._rows[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._headers)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal and 0 <= section < len(
            self._headers
        ):
            return self._headers[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        value = row.cells[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{value:,}" if isinstance(value, int) else str(value)
        if role == Qt.ItemDataRole.UserRole:
            return value
        if role == Qt.ItemDataRole.TextAlignmentRole and isinstance(value, int):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.tooltip or None
        if role == Qt.ItemDataRole.ForegroundRole and row.problem and index.column() in (0, 1):
            return QColor("#b3261e")
        return None
