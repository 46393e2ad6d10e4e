"""Table model over the in-memory log ring buffer, fed live as lines arrive.

Lines can be logged from any thread (the database writer, MSAL's worker); they are handed to the
GUI thread through a queued signal so the model is only ever touched there.
"""

from __future__ import annotations

import collections
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal, Slot

from crmsync_desktop.logs import LogLine, RingBufferHandler

_Index = QModelIndex | QPersistentModelIndex


class LogTableModel(QAbstractTableModel):
    """Time, level, source and message of the last ``capacity`` log lines."""

    HEADERS = ("Time", "Level", "Source", "Message")
    _line_arrived = Signal(object)

    def __init__(self, ring: RingBufferHandler, capacity: int = 5000, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._capacity = capacity
        self._lines: collections.deque[LogLine] = collections.deque(ring.lines(), maxlen=capacity)
        self._line_arrived.connect(self._append, Qt.ConnectionType.QueuedConnection)
        self._unsubscribe = ring.subscribe(self._line_arrived.emit)
        self.destroyed.connect(lambda *_: self._unsubscribe())

    def detach(self) -> None:
        """Stop listening to the ring buffer (the model is going away)."""
        self._unsubscribe()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._lines)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        line = self._lines[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                line.at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                line.level,
                line.logger,
                line.message,
            )[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 3:
            return line.message
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    @Slot(object)
    def _append(self, line: LogLine) -> None:
        if len(self._lines) == self._capacity:
            self.beginRemoveRows(QModelIndex(), 0, 0)
            self._lines.popleft()
            self.endRemoveRows()
        row = len(self._lines)
        self.beginInsertRows(QModelIndex(), row, row)
        self._lines.append(line)
        self.endInsertRows()
