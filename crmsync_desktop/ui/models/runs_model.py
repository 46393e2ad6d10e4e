"""Table models of the Jobs & Logs screen: the run history (``RunsTableModel``) and one run's log.

Both hold plain values handed over by the engine (``JobRun``, ``RunLogLine``) and are replaced
wholesale when the engine returns a fresh list; a live log line of the selected run is appended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from crmsync_desktop.domain import RunStatus

if TYPE_CHECKING:
    from crmsync_desktop.store.values import JobRun, RunLogLine

__all__ = [
    "CHANGE_COUNTERS",
    "LiveLogLine",
    "RunLogModel",
    "RunsTableModel",
    "format_duration",
    "run_duration",
    "run_totals",
]

_Index = QModelIndex | QPersistentModelIndex

CHANGE_COUNTERS = ("created", "updated", "deleted", "uploaded", "associated", "disassociated", "assigned")
"""Counters that are records written on the other side (what the chart's bars add up)."""

_STATUS_COLOURS = {
    RunStatus.FAILED: QColor("#b3261e"),
    RunStatus.SUCCEEDED: QColor("#1b6e2a"),
    RunStatus.RUNNING: QColor("#0b57d0"),
    RunStatus.CANCELLED: QColor("#6b6b6b"),
}
_LEVEL_COLOURS = {"ERROR": QColor("#b3261e"), "CRITICAL": QColor("#b3261e"), "WARNING": QColor("#8a5a00")}


@dataclass(frozen=True, slots=True)
class LiveLogLine:
    """A run's log line as it arrives live (``LogEmitted``), shaped like the stored ``RunLogLine``."""

    at: datetime
    level: str
    message: str
    entity: str | None = None


def run_totals(counts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Counters summed over every entity of a run."""
    totals: dict[str, int] = {}
    for per_entity in counts.values():
        for counter, n in per_entity.items():
            totals[counter] = totals.get(counter, 0) + int(n)
    return totals


def run_duration(run: JobRun, now: datetime | None = None) -> timedelta | None:
    """How long the run took (so far, while it runs)."""
    end = run.ended_at or (now if run.status is RunStatus.RUNNING else None)
    return end - run.started_at if end is not None else None


def format_duration(value: timedelta | None) -> str:
    if value is None:
        return ""
    seconds = max(0.0, value.total_seconds())
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


class RunsTableModel(QAbstractTableModel):
    """The run history of a profile, newest first."""

    HEADERS = ("#", "Trigger", "Started", "Duration", "Status", "Read", "Created", "Updated", "Deleted", "Failed",
               "Result")
    COL_ID, COL_TRIGGER, COL_STARTED, COL_DURATION, COL_STATUS = range(5)
    COUNTER_COLUMNS: ClassVar[dict[int, str]] = {5: "read", 6: "created", 7: "updated", 8: "deleted", 9: "failed"}
    COL_RESULT = 10

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runs: list[JobRun] = []
        self._totals: list[dict[str, int]] = []

    def set_runs(self, runs: Sequence[JobRun]) -> None:
        self.beginResetModel()
        self._runs = sorted(runs, key=lambda r: r.id, reverse=True)
        self._totals = [run_totals(r.counts) for r in self._runs]
        self.endResetModel()

    @property
    def runs(self) -> list[JobRun]:
        return list(self._runs)

    def run(self, row: int) -> JobRun:
        return self._runs[row]

    def row_of(self, run_id: int) -> int | None:
        for row, run in enumerate(self._runs):
            if run.id == run_id:
                return row
        return None

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._runs)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._runs):
            return None
        run, totals, col = self._runs[index.row()], self._totals[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_ID:
                return str(run.id)
            if col == self.COL_TRIGGER:
                return str(run.trigger.value).replace("_", " ").capitalize()
            if col == self.COL_STARTED:
                return _when(run.started_at)
            if col == self.COL_DURATION:
                return format_duration(run_duration(run))
            if col == self.COL_STATUS:
                return str(run.status.value).capitalize()
            if col in self.COUNTER_COLUMNS:
                n = totals.get(self.COUNTER_COLUMNS[col], 0)
                return f"{n:,}" if n else ""
            if col == self.COL_RESULT:
                return (run.error or "").splitlines()[0] if run.error else ""
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.COL_RESULT and run.error:
                return run.error
            if col in self.COUNTER_COLUMNS or col == self.COL_STATUS:
                lines = [f"{entity}: " + ", ".join(f"{n:,} {k}" for k, n in sorted(c.items()))
                         for entity, c in sorted(run.counts.items())]
                return "\n".join(lines) or None
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == self.COL_STATUS:
                colour = _STATUS_COLOURS.get(run.status)
                return QBrush(colour) if colour is not None else None
            if col == 9 and totals.get("failed"):
                return QBrush(_STATUS_COLOURS[RunStatus.FAILED])
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and (col in self.COUNTER_COLUMNS or col in (0, 3)):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return run.id
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None


class RunLogModel(QAbstractTableModel):
    """The log lines of one run: time, level, entity, message."""

    HEADERS = ("Time", "Level", "Entity", "Message")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lines: list[RunLogLine | LiveLogLine] = []
        self.run_id: int | None = None

    def set_lines(self, run_id: int | None, lines: Sequence[RunLogLine | LiveLogLine]) -> None:
        self.beginResetModel()
        self.run_id = run_id
        self._lines = list(lines)
        self.endResetModel()

    def append(self, line: RunLogLine | LiveLogLine) -> None:
        row = len(self._lines)
        self.beginInsertRows(QModelIndex(), row, row)
        self._lines.append(line)
        self.endInsertRows()

    def line(self, row: int) -> RunLogLine | LiveLogLine:
        return self._lines[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._lines)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._lines):
            return None
        line, col = self._lines[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (line.at.astimezone().strftime("%H:%M:%S"), line.level, line.entity or "", line.message)[col]
        if role == Qt.ItemDataRole.ToolTipRole and col == 3:
            return line.message
        if role == Qt.ItemDataRole.ForegroundRole and col in (1, 3):
            colour = _LEVEL_COLOURS.get(line.level)
            return QBrush(colour) if colour is not None else None
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None
