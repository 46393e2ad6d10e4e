"""Table model over connection profiles (plain ``ConnectionProfile`` values, never ORM rows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from crmsync_desktop.domain import ConnectionProfile, ServerKind

_Index = QModelIndex | QPersistentModelIndex

_SERVER_KIND_LABELS = {ServerKind.DATAVERSE: "Dynamics 365 / Dataverse", ServerKind.RESCO: "Resco Cloud (experimental)"}


class ProfilesTableModel(QAbstractTableModel):
    HEADERS = ("Profile", "Server", "Server URL", "Client URL", "State")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._profiles: list[ConnectionProfile] = []

    def set_profiles(self, profiles: Sequence[ConnectionProfile]) -> None:
        self.beginResetModel()
        self._profiles = list(profiles)
        self.endResetModel()

    def profile_at(self, row: int) -> ConnectionProfile:
        return self._profiles[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._profiles)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        p = self._profiles[index.row()]
        return (
            p.name,
            _SERVER_KIND_LABELS[p.server_kind],
            p.server_url or "—",
            p.client_url or "—",
            p.state.value.capitalize(),
        )[index.column()]

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None
