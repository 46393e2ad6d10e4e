"""Table model of the Synchronization tab: one row per entity, editable, with unsaved changes tracked.

Rows come from ``SyncEngine.entity_statuses`` (configuration plus what the last syncs did) and the
replicated server schema (labels, N:N intersect entities, change tracking). The admin edits the
*current* configuration in place (enable, Sync Deletion, deletion strategy, conflict policy; filters
and fields through their dialogs); the model remembers the saved one, marks rows that differ and
hands the changed configurations to Save.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QFont, QGuiApplication, QPalette

from crmsync_desktop.domain import ConflictPolicy, DeletionStrategy, EntityConfig
from crmsync_desktop.errors import FilterError
from crmsync_desktop.sync.deletions import TRACKING_ENTITY
from crmsync_desktop.sync.engine import EntityStatus, resolve_deletion
from crmsync_desktop.sync.filters import parse_filter, summarize_filter
from crmsync_desktop.sync.metadata.schema import Schema
from crmsync_desktop.sync.upload.conflicts import POLICY_DESCRIPTIONS, POLICY_LABELS

__all__ = [
    "CHOICES_ROLE",
    "CHOICE_TIPS_ROLE",
    "CONFIG_ROLE",
    "CONFLICT_CHOICES",
    "SORT_ROLE",
    "Column",
    "DeletionChoice",
    "EntitiesModel",
    "EntityRow",
    "choice_of",
    "deletion_label",
]

_Index = QModelIndex | QPersistentModelIndex

CONFIG_ROLE = Qt.ItemDataRole.UserRole + 1
"""The row's current :class:`EntityConfig` (any column)."""
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
"""A plain sortable value (numbers as numbers, dates as timestamps, names without markers)."""
CHOICES_ROLE = Qt.ItemDataRole.UserRole + 3
"""The choices a combo cell offers, as ``[(choice, label)]``: ``DeletionChoice`` (deletion column) or
``ConflictPolicy`` (conflicts column); the edit role holds the current choice's ``value``."""
CHOICE_TIPS_ROLE = Qt.ItemDataRole.UserRole + 4
"""One line per choice of a combo cell, as ``{choice value: tip}``."""

DIRTY_MARK = "● "


class Column(enum.IntEnum):
    ENABLED = 0
    DISPLAY_NAME = 1
    LOGICAL_NAME = 2
    SYNC_FILTER = 3
    UPLOAD_FILTER = 4
    FIELDS = 5
    SYNC_DELETION = 6
    DELETION = 7
    CONFLICTS = 8
    CHANGE_DETECTION = 9
    RECORDS = 10
    LAST_SYNC = 11
    RETRIES = 12


HEADERS = {
    Column.ENABLED: "Sync",
    Column.DISPLAY_NAME: "Display Name",
    Column.LOGICAL_NAME: "Logical Name",
    Column.SYNC_FILTER: "Sync Filter",
    Column.UPLOAD_FILTER: "Upload Filter",
    Column.FIELDS: "Fields",
    Column.SYNC_DELETION: "Sync Deletion",
    Column.DELETION: "Deletion Strategy",
    Column.CONFLICTS: "Conflicts",
    Column.CHANGE_DETECTION: "Change Detection",
    Column.RECORDS: "Records",
    Column.LAST_SYNC: "Last Sync",
    Column.RETRIES: "Retries",
}

HEADER_TIPS = {
    Column.ENABLED: "Synchronize this entity",
    Column.SYNC_FILTER: "Which server records reach the client (FetchXML; double-click or Sync Filter to edit)",
    Column.UPLOAD_FILTER: "Which client changes are sent to the server (double-click or Upload Filter to edit)",
    Column.FIELDS: "Which fields travel (double-click or Fields to choose)",
    Column.SYNC_DELETION: "Also remove records deleted or reassigned on the server (slower on big tables)",
    Column.DELETION: "How deletions are found; Auto picks the cheapest available",
    Column.CONFLICTS: "Who wins when a record changed on both the client and the server since the last sync",
    Column.CHANGE_DETECTION: "How changes are found: the table's change tracking, or a row-version watermark",
    Column.RECORDS: "Records the client holds from the server",
    Column.LAST_SYNC: "When this entity was last synchronized",
    Column.RETRIES: "Records waiting for a retry after a failed write",
}


class DeletionChoice(enum.StrEnum):
    """What the Deletion Strategy combo offers (Sync Deletion plus an explicit strategy)."""

    AUTO = "auto"
    SWEEP = "sweep"
    TRACKING = "tracking"
    CHANGE_TRACKING = "change_tracking"
    OFF = "off"


_CHOICE_LABELS = {
    DeletionChoice.AUTO: "Auto",
    DeletionChoice.SWEEP: "Sweep",
    DeletionChoice.TRACKING: "Tracking records",
    DeletionChoice.CHANGE_TRACKING: "Change tracking",
    DeletionChoice.OFF: "Off",
}

_STRATEGY_LABELS = {
    DeletionStrategy.OFF: "off",
    DeletionStrategy.SWEEP: "sweep",
    DeletionStrategy.TRACKING: "tracking records",
    DeletionStrategy.CHANGE_TRACKING: "change tracking",
}

_CHOICE_TIPS = {
    DeletionChoice.AUTO: "Sync Deletion on; the cheapest way available for this entity is used",
    DeletionChoice.SWEEP: "Compare the ids of the filtered server set with what the client holds (slow on big tables)",
    DeletionChoice.TRACKING: "Read Resco's Mobile Tracking records (needs the Delete/Owner plugins on the server)",
    DeletionChoice.CHANGE_TRACKING: "Use the table's own change tracking (deleted records are reported)",
    DeletionChoice.OFF: "Deletions and owner changes on the server are not propagated (fastest)",
}


CONFLICT_CHOICES: tuple[ConflictPolicy, ...] = (
    ConflictPolicy.SERVER_WINS,
    ConflictPolicy.CLIENT_WINS,
    ConflictPolicy.CLIENT_WINS_FULL,
    ConflictPolicy.NEWER_WINS,
    ConflictPolicy.MANUAL,
)
"""The Conflicts combo, in the order of the documentation (the default first)."""

_NO_CONFLICTS_TIP = (
    "Intersect entity of an N:N relationship: its client changes are links added or removed, "
    "which never conflict, so no conflict policy applies."
)


def choice_of(config: EntityConfig) -> DeletionChoice:
    if not config.sync_deletion:
        return DeletionChoice.OFF
    if config.deletion_strategy is DeletionStrategy.OFF:
        return DeletionChoice.AUTO
    return DeletionChoice(config.deletion_strategy.value)


def apply_choice(config: EntityConfig, choice: DeletionChoice) -> EntityConfig:
    if choice is DeletionChoice.OFF:
        return replace(config, sync_deletion=False, deletion_strategy=DeletionStrategy.OFF)
    if choice is DeletionChoice.AUTO:
        return replace(config, sync_deletion=True, deletion_strategy=DeletionStrategy.OFF)
    return replace(config, sync_deletion=True, deletion_strategy=DeletionStrategy(choice.value))


def deletion_label(choice: DeletionChoice, resolved: DeletionStrategy) -> str:
    """``Auto → change tracking``, ``Sweep``, ``Off``."""
    if choice is DeletionChoice.AUTO:
        return f"Auto → {_STRATEGY_LABELS[resolved]}"
    return _CHOICE_LABELS[choice]


@dataclass(frozen=True, slots=True)
class EntityRow:
    """One entity: its status (saved configuration and sync facts), schema facts and current edits."""

    status: EntityStatus
    config: EntityConfig
    is_intersect: bool = False
    change_tracking: bool = False
    field_count: int = 0
    field_labels: Mapping[str, str] | None = None

    @property
    def name(self) -> str:
        return self.config.logical_name

    @property
    def saved(self) -> EntityConfig:
        return self.status.config

    @property
    def dirty(self) -> bool:
        return self.config != self.status.config


class EntitiesModel(QAbstractTableModel):
    """The entity grid. ``dirty_changed(bool)`` fires when the first change is made or the last undone."""

    dirty_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[EntityRow] = []
        self._tracking_available = False
        self._summaries: dict[tuple[str, str], tuple[str, bool]] = {}
        self._was_dirty = False

    # -- loading --------------------------------------------------------------------------

    def set_entities(self, statuses: Sequence[EntityStatus], schema: Schema | None = None) -> None:
        """Show ``statuses`` (saved state: no unsaved changes afterwards)."""
        by_name = {e.logical_name: e for e in schema.entities} if schema is not None else {}
        rows = []
        for status in statuses:
            meta = by_name.get(status.config.logical_name)
            rows.append(
                EntityRow(
                    status=status,
                    config=status.config,
                    is_intersect=bool(meta and meta.is_intersect),
                    change_tracking=status.change_detection == "change tracking",
                    field_count=len(meta.fields) if meta else 0,
                    field_labels={f.logical_name: f.label for f in meta.fields if f.label} if meta else None,
                )
            )
        self.beginResetModel()
        self._rows = rows
        self._tracking_available = TRACKING_ENTITY in by_name
        self._summaries.clear()
        self.endResetModel()
        self._emit_dirty()

    def clear(self) -> None:
        self.set_entities([])

    # -- reading --------------------------------------------------------------------------

    @property
    def tracking_available(self) -> bool:
        return self._tracking_available

    def row_at(self, row: int) -> EntityRow:
        return self._rows[row]

    def row_of(self, logical_name: str) -> int:
        for i, r in enumerate(self._rows):
            if r.name == logical_name:
                return i
        raise KeyError(logical_name)

    def configs(self) -> list[EntityConfig]:
        return [r.config for r in self._rows]

    def dirty_configs(self) -> list[EntityConfig]:
        return [r.config for r in self._rows if r.dirty]

    @property
    def is_dirty(self) -> bool:
        return any(r.dirty for r in self._rows)

    def choices(self, row: int) -> list[tuple[DeletionChoice, str]]:
        """The deletion choices that make sense for ``row`` (plus its current one, whatever it is)."""
        r = self._rows[row]
        offered = [DeletionChoice.AUTO, DeletionChoice.SWEEP]
        if self._tracking_available:
            offered.append(DeletionChoice.TRACKING)
        if r.change_tracking:
            offered.append(DeletionChoice.CHANGE_TRACKING)
        offered.append(DeletionChoice.OFF)
        current = choice_of(r.config)
        if current not in offered:
            offered.insert(-1, current)
        return [(c, _CHOICE_LABELS[c]) for c in offered]

    def conflicts_apply(self, row: int) -> bool:
        """Whether uploads of ``row`` can conflict (N:N links are only added and removed: they cannot)."""
        return not self._rows[row].is_intersect

    def resolved(self, row: int) -> DeletionStrategy:
        r = self._rows[row]
        return resolve_deletion(r.config, change_tracking=r.change_tracking, tracking_available=self._tracking_available)

    # -- editing --------------------------------------------------------------------------

    def update_config(self, logical_name: str, **changes: Any) -> None:
        row = self.row_of(logical_name)
        self._set_config(row, replace(self._rows[row].config, **changes))

    def set_deletion_choice(self, row: int, choice: DeletionChoice) -> None:
        self._set_config(row, apply_choice(self._rows[row].config, choice))

    def set_conflict_policy(self, row: int, policy: ConflictPolicy) -> None:
        self._set_config(row, replace(self._rows[row].config, conflict_policy=policy))

    def set_enabled(self, rows: Iterable[int], enabled: bool) -> None:
        changed = [row for row in rows if self._rows[row].config.enabled != enabled]
        for row in changed:
            r = self._rows[row]
            self._rows[row] = replace(r, config=replace(r.config, enabled=enabled))
        if changed:
            self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), len(Column) - 1))
            self._emit_dirty()

    def discard_changes(self) -> None:
        changed = [i for i, r in enumerate(self._rows) if r.dirty]
        for row in changed:
            self._rows[row] = replace(self._rows[row], config=self._rows[row].saved)
        if changed:
            self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), len(Column) - 1))
        self._emit_dirty()

    def _set_config(self, row: int, config: EntityConfig) -> None:
        r = self._rows[row]
        if config == r.config:
            return
        self._rows[row] = replace(r, config=config)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(Column) - 1))
        self._emit_dirty()

    def _emit_dirty(self) -> None:
        dirty = self.is_dirty
        if dirty != self._was_dirty:
            self._was_dirty = dirty
            self.dirty_changed.emit(dirty)

    # -- Qt model ---------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(Column):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[Column(section)]
        if role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(Column(section))
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        column = Column(index.column())
        if column in (Column.ENABLED, Column.SYNC_DELETION):
            return base | Qt.ItemFlag.ItemIsUserCheckable
        if column is Column.DELETION:
            return base | Qt.ItemFlag.ItemIsEditable
        if column is Column.CONFLICTS and self.conflicts_apply(index.row()):
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        r = self._rows[index.row()]
        column = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(index.row(), r, column)
        if role == Qt.ItemDataRole.CheckStateRole:
            if column is Column.ENABLED:
                return _check(r.config.enabled)
            if column is Column.SYNC_DELETION:
                return _check(r.config.sync_deletion)
            return None
        if role == Qt.ItemDataRole.EditRole:
            if column is Column.DELETION:
                return choice_of(r.config).value
            if column is Column.CONFLICTS:
                return r.config.conflict_policy.value
            return self._display(index.row(), r, column)
        if role == SORT_ROLE:
            return self._sort_value(index.row(), r, column)
        if role == CONFIG_ROLE:
            return r.config
        if role == CHOICES_ROLE:
            if column is Column.DELETION:
                return self.choices(index.row())
            if column is Column.CONFLICTS:
                return [(p, POLICY_LABELS[p]) for p in CONFLICT_CHOICES]
            return None
        if role == CHOICE_TIPS_ROLE:
            if column is Column.DELETION:
                return {c.value: _CHOICE_TIPS[c] for c, _ in self.choices(index.row())}
            if column is Column.CONFLICTS:
                return {p.value: POLICY_DESCRIPTIONS[p] for p in CONFLICT_CHOICES}
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if column is Column.CONFLICTS and not self.conflicts_apply(index.row()):
                return QBrush(QGuiApplication.palette().color(QPalette.ColorGroup.Disabled,
                                                             QPalette.ColorRole.Text))
            return None
        if role == Qt.ItemDataRole.FontRole:
            if r.dirty or (column is Column.DISPLAY_NAME and r.is_intersect):
                font = QFont()
                font.setBold(r.dirty)
                font.setItalic(column is Column.DISPLAY_NAME and r.is_intersect)
                return font
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(index.row(), r, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (Column.RECORDS, Column.RETRIES):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid():
            return False
        row, column = index.row(), Column(index.column())
        config = self._rows[row].config
        if role == Qt.ItemDataRole.CheckStateRole and column in (Column.ENABLED, Column.SYNC_DELETION):
            checked = _is_checked(value)
            if column is Column.ENABLED:
                self._set_config(row, replace(config, enabled=checked))
            else:
                self.set_deletion_choice(row, DeletionChoice.AUTO if checked else DeletionChoice.OFF)
            return True
        if role == Qt.ItemDataRole.EditRole and column is Column.DELETION:
            try:
                choice = DeletionChoice(value)
            except ValueError:
                return False
            self.set_deletion_choice(row, choice)
            return True
        if role == Qt.ItemDataRole.EditRole and column is Column.CONFLICTS:
            if not self.conflicts_apply(row):
                return False
            try:
                policy = ConflictPolicy(value)
            except ValueError:
                return False
            self.set_conflict_policy(row, policy)
            return True
        return False

    # -- presentation -------------------------------------------------------------------

    def summary(self, entity: str, xml: str, labels: Mapping[str, str] | None = None) -> tuple[str, bool]:
        """(one-line summary, valid) of a filter, cached by its text."""
        key = (entity, xml)
        if key not in self._summaries:
            try:
                self._summaries[key] = (summarize_filter(parse_filter(xml), display_names=labels), True)
            except FilterError as exc:
                self._summaries[key] = (f"⚠ Invalid filter: {exc.message}", False)
        return self._summaries[key]

    def _display(self, row: int, r: EntityRow, column: Column) -> Any:
        c = r.config
        match column:
            case Column.ENABLED | Column.SYNC_DELETION:
                return None
            case Column.DISPLAY_NAME:
                name = r.status.display_name + ("  · N:N" if r.is_intersect else "")
                return (DIRTY_MARK if r.dirty else "") + name
            case Column.LOGICAL_NAME:
                return r.name
            case Column.SYNC_FILTER:
                return self.summary(r.name, c.sync_filter, r.field_labels)[0]
            case Column.UPLOAD_FILTER:
                return self.summary(r.name, c.upload_filter, r.field_labels)[0]
            case Column.FIELDS:
                if not c.fields:
                    return f"All ({r.field_count})" if r.field_count else "All"
                return f"{len(c.fields)} of {r.field_count}" if r.field_count else f"{len(c.fields)} chosen"
            case Column.DELETION:
                return deletion_label(choice_of(c), self.resolved(row))
            case Column.CONFLICTS:
                return POLICY_LABELS.get(c.conflict_policy, str(c.conflict_policy))
            case Column.CHANGE_DETECTION:
                return r.status.change_detection.capitalize()
            case Column.RECORDS:
                return f"{r.status.records_held:,}"
            case Column.LAST_SYNC:
                return _when(r.status.last_sync_at)
            case Column.RETRIES:
                return f"{r.status.waiting_retries:,}" if r.status.waiting_retries else "—"
        return None  # pragma: no cover - every column is handled

    def _sort_value(self, row: int, r: EntityRow, column: Column) -> Any:
        match column:
            case Column.ENABLED:
                return int(r.config.enabled)
            case Column.SYNC_DELETION:
                return int(r.config.sync_deletion)
            case Column.DISPLAY_NAME:
                return r.status.display_name.casefold()
            case Column.RECORDS:
                return r.status.records_held
            case Column.RETRIES:
                return r.status.waiting_retries
            case Column.LAST_SYNC:
                return r.status.last_sync_at.timestamp() if r.status.last_sync_at else 0.0
            case Column.FIELDS:
                return len(r.config.fields) or r.field_count + 1
        value = self._display(row, r, column)
        return str(value or "").casefold()

    def _tooltip(self, row: int, r: EntityRow, column: Column) -> str | None:
        c = r.config
        if column is Column.DISPLAY_NAME:
            parts = [f"{r.status.display_name} ({r.name})"]
            if r.is_intersect:
                parts.append("Intersect entity of an N:N relationship: its rows link two records.")
            if r.dirty:
                parts.append("Unsaved changes: " + ", ".join(_changes(r.saved, c)) + ".")
            return "\n".join(parts)
        if column in (Column.SYNC_FILTER, Column.UPLOAD_FILTER):
            xml = c.sync_filter if column is Column.SYNC_FILTER else c.upload_filter
            text, _ = self.summary(r.name, xml, r.field_labels)
            return f"{text}\n\n{xml.strip()}" if xml.strip() else "No filter: every record."
        if column is Column.DELETION:
            choice = choice_of(c)
            tip = _CHOICE_TIPS[choice]
            if choice is DeletionChoice.AUTO:
                tip += f"; for this entity: {_STRATEGY_LABELS[self.resolved(row)]}"
            return tip
        if column is Column.CONFLICTS:
            if not self.conflicts_apply(row):
                return _NO_CONFLICTS_TIP
            return f"{POLICY_LABELS[c.conflict_policy]}: {POLICY_DESCRIPTIONS[c.conflict_policy]}."
        if column is Column.FIELDS and c.fields:
            return ", ".join(c.fields)
        if column is Column.LAST_SYNC and r.status.last_sync_at:
            return r.status.last_sync_at.astimezone().isoformat(sep=" ", timespec="seconds")
        return None


def _check(value: bool) -> Qt.CheckState:
    return Qt.CheckState.Checked if value else Qt.CheckState.Unchecked


def _is_checked(value: Any) -> bool:
    if isinstance(value, Qt.CheckState):
        return value == Qt.CheckState.Checked
    return int(value) == Qt.CheckState.Checked.value


def _when(at: datetime | None) -> str:
    """``Today 14:05``, ``26 Nov 14:05``, ``26 Nov 2025`` (the tooltip has the full time)."""
    if at is None:
        return "never"
    local, now = at.astimezone(), datetime.now().astimezone()
    if local.date() == now.date():
        return local.strftime("Today %H:%M")
    return local.strftime("%d %b %H:%M" if local.year == now.year else "%d %b %Y")


def _changes(old: EntityConfig, new: EntityConfig) -> list[str]:
    out = []
    if old.enabled != new.enabled:
        out.append("enabled" if new.enabled else "disabled")
    if old.sync_filter != new.sync_filter:
        out.append("sync filter")
    if old.upload_filter != new.upload_filter:
        out.append("upload filter")
    if (old.sync_deletion, old.deletion_strategy) != (new.sync_deletion, new.deletion_strategy):
        out.append("deletions")
    if old.fields != new.fields:
        out.append("fields")
    if old.conflict_policy != new.conflict_policy:
        out.append("conflict policy")
    return out
