"""Plain values the store hands out besides those of ``crmsync_desktop.domain``.

Repository functions return these frozen dataclasses and never ORM objects, so a row can cross
threads, reach the engine or be turned into a view model without a session behind it. Timestamps
are aware UTC datetimes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmsync_desktop.domain import (
    DEFAULT_SYNC_INTERVAL_MINUTES,
    RunStatus,
    RunTrigger,
    ScheduleConfig,
    TransactionOperation,
    TransactionStatus,
)


@dataclass(frozen=True, slots=True)
class NewTransaction:
    """An offline transaction to enqueue: a client change to deliver to the server."""

    entity: str
    operation: TransactionOperation
    payload: Mapping[str, Any] = field(default_factory=dict)
    record_id: str | None = None


@dataclass(frozen=True, slots=True)
class OfflineTransaction:
    """A queued client change; ``id`` is its place in the delivery order."""

    id: int
    profile: str
    entity: str
    record_id: str | None
    operation: TransactionOperation
    payload: Mapping[str, Any]
    status: TransactionStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    processed_at: datetime | None


@dataclass(frozen=True, slots=True)
class TransactionPage:
    """One page of a status tab.

    Attributes:
        items: the transactions, in the order asked for.
        next_after_id: pass as ``after_id`` to get the next page; None on the last page.
        counts: transactions per status for the whole profile (every status present, 0 if none),
            read in the same snapshot as the page; empty when not asked for.
    """

    items: tuple[OfflineTransaction, ...]
    next_after_id: int | None
    counts: Mapping[TransactionStatus, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SyncState:
    """Where the last sync of one entity stopped.

    ``token`` is a Dataverse delta token or a watermark, whatever ``strategy`` says it is.
    """

    entity: str
    token: str | None = None
    strategy: str = ""
    last_full_sync_at: datetime | None = None
    last_sync_at: datetime | None = None
    server_count: int | None = None
    client_count: int | None = None
    last_client_row_version: str | None = None


@dataclass(frozen=True, slots=True)
class RecordState:
    """What the last sync saw of one record on each side, to detect changes and conflicts."""

    record_id: str
    last_synced_at: datetime
    server_row_version: str | None = None
    client_row_version: str | None = None
    content_hash: str | None = None


@dataclass(frozen=True, slots=True)
class UploadBaseline:
    """The client's version of one record as upload's change capture last saw it.

    ``fields`` maps a field to a short digest of its value (intersect rows: the linked ids).
    """

    record_id: str
    content_hash: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobRun:
    """One sync run. ``counts`` maps an entity to its counters (``{"account": {"uploaded": 3}}``)."""

    id: int
    profile: str
    trigger: RunTrigger
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None
    counts: Mapping[str, Mapping[str, int]]
    error: str | None


@dataclass(frozen=True, slots=True)
class RunLogLine:
    """One line of a run's log; ``id`` is None until stored."""

    at: datetime
    level: str
    message: str
    entity: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """The periodic sync job of a profile: its settings (``config``) and where it stands."""

    enabled: bool = True
    interval_minutes: int = DEFAULT_SYNC_INTERVAL_MINUTES
    last_started_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    paused_until: datetime | None = None
    daily_at: str | None = None  # "HH:MM" local time: runs daily then, not every interval_minutes

    @property
    def config(self) -> ScheduleConfig:
        return ScheduleConfig(
            enabled=self.enabled, interval_minutes=self.interval_minutes, daily_at=self.daily_at
        )


class RelationshipKind(enum.StrEnum):
    ONE_TO_MANY = "1:N"
    MANY_TO_MANY = "N:N"


@dataclass(frozen=True, slots=True)
class MetadataField:
    """One attribute of a server entity; ``raw`` is the metadata document as replicated."""

    logical_name: str
    type: str = ""
    label: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetadataEntity:
    """One server entity as last replicated, with its fields."""

    logical_name: str
    display_name: str = ""
    primary_id_attribute: str = ""
    primary_name_attribute: str = ""
    entity_set_name: str = ""
    change_tracking: bool = False
    is_intersect: bool = False
    fields: tuple[MetadataField, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetadataRelationship:
    """A relationship between two entities.

    For 1:N, ``entity1``/``attribute1`` are the referenced (one) side and its key and
    ``entity2``/``attribute2`` the referencing (many) side and its lookup. For N:N they are the two
    entities and their attributes in ``intersect_entity``.
    """

    schema_name: str
    kind: RelationshipKind
    entity1: str
    entity2: str
    attribute1: str = ""
    attribute2: str = ""
    intersect_entity: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetadataSnapshot:
    """The server organization's metadata for a profile, as last replicated."""

    entities: tuple[MetadataEntity, ...] = ()
    relationships: tuple[MetadataRelationship, ...] = ()
    updated_at: datetime | None = None
