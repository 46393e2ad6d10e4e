"""The schema of the local store: typed SQLAlchemy 2 models, one ``DeclarativeBase``.

Nothing here leaves the store: repository functions translate rows into the plain values of
``crmsync_desktop.domain`` and ``store.values``. Design choices worth knowing:

* Every child row points at ``connection_profile.id`` (a surrogate key), so renaming a profile
  touches one row; ``ON DELETE CASCADE`` removes a profile's rows with it.
* No secret ever lands here: passwords, client secrets and tokens live in the OS keyring.
* Timestamps are stored as naive UTC text and read back as aware UTC (``coltypes.UtcDateTime``).
* ``record_state`` can hold millions of rows, so it is a ``WITHOUT ROWID`` table clustered on its
  natural key (profile, entity, record id): every access path is a prefix of that key and no
  second index is paid for on each upsert.
* ``offline_transaction.id`` is ``AUTOINCREMENT``: it is the delivery order and the keyset-paging
  cursor, so an id must never be reused after old rows are removed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crmsync_desktop.domain import (
    AuthKind,
    ConflictPolicy,
    ConnectionState,
    DeletionStrategy,
    RunStatus,
    RunTrigger,
    ServerKind,
    TransactionOperation,
    TransactionStatus,
)
from crmsync_desktop.store.coltypes import EnumText, UtcDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_NAME = 255  # profile names, entity and attribute logical names, user names
_ID = 64  # GUIDs and other record ids


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


def _profile_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("connection_profile.id", ondelete="CASCADE"), nullable=False)


class _Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConnectionProfileModel(_Timestamps, Base):
    """One server/client organization pair (``domain.ConnectionProfile``); no secrets column."""

    __tablename__ = "connection_profile"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(_NAME), unique=True)
    server_kind: Mapped[ServerKind] = mapped_column(EnumText(ServerKind, 16))
    server_url: Mapped[str] = mapped_column(Text, default="")
    server_auth_kind: Mapped[AuthKind] = mapped_column(EnumText(AuthKind, 32))
    tenant_id: Mapped[str] = mapped_column(String(_NAME), default="")
    client_id: Mapped[str] = mapped_column(String(_NAME), default="")
    server_user: Mapped[str] = mapped_column(String(_NAME), default="")
    client_url: Mapped[str] = mapped_column(Text, default="")
    client_user: Mapped[str] = mapped_column(String(_NAME), default="")
    state: Mapped[ConnectionState] = mapped_column(EnumText(ConnectionState, 16))
    metadata_updated_at: Mapped[datetime | None]
    verify_tls: Mapped[bool] = mapped_column(Boolean, default=True)
    # certificate sign-in: the file's path (never its content or passphrase: those are not stored here)
    certificate_path: Mapped[str] = mapped_column(Text, default="", server_default="")


class EntityConfigModel(_Timestamps, Base):
    """What the admin chose for one entity of a profile (``domain.EntityConfig``)."""

    __tablename__ = "entity_config"
    __table_args__ = (UniqueConstraint("profile_id", "logical_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = _profile_fk()
    logical_name: Mapped[str] = mapped_column(String(_NAME))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    sync_filter: Mapped[str] = mapped_column(Text, default="")  # FetchXML; "" = all records
    upload_filter: Mapped[str] = mapped_column(Text, default="")
    sync_deletion: Mapped[bool] = mapped_column(Boolean, default=False)
    deletion_strategy: Mapped[DeletionStrategy] = mapped_column(EnumText(DeletionStrategy, 32))
    conflict_policy: Mapped[ConflictPolicy] = mapped_column(EnumText(ConflictPolicy, 32))
    fields: Mapped[list[Any]] = mapped_column(default=list)  # empty: every client field


class MetadataEntityModel(_Timestamps, Base):
    """One entity of the server organization's metadata, as last replicated."""

    __tablename__ = "metadata_entity"
    __table_args__ = (UniqueConstraint("profile_id", "logical_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = _profile_fk()
    logical_name: Mapped[str] = mapped_column(String(_NAME))
    display_name: Mapped[str] = mapped_column(Text, default="")
    primary_id_attribute: Mapped[str] = mapped_column(String(_NAME), default="")
    primary_name_attribute: Mapped[str] = mapped_column(String(_NAME), default="")
    entity_set_name: Mapped[str] = mapped_column(String(_NAME), default="")
    change_tracking: Mapped[bool] = mapped_column(Boolean, default=False)
    is_intersect: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)


class MetadataFieldModel(Base):
    """One attribute of a replicated metadata entity."""

    __tablename__ = "metadata_field"
    __table_args__ = (UniqueConstraint("entity_id", "logical_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("metadata_entity.id", ondelete="CASCADE"))
    logical_name: Mapped[str] = mapped_column(String(_NAME))
    type: Mapped[str] = mapped_column(String(64), default="")
    label: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)


class MetadataRelationshipModel(Base):
    """One 1:N or N:N relationship of the server organization's metadata."""

    __tablename__ = "metadata_relationship"
    __table_args__ = (UniqueConstraint("profile_id", "schema_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = _profile_fk()
    schema_name: Mapped[str] = mapped_column(String(_NAME))
    kind: Mapped[str] = mapped_column(String(8))  # "1:N" or "N:N"
    entity1: Mapped[str] = mapped_column(String(_NAME))
    attribute1: Mapped[str] = mapped_column(String(_NAME), default="")
    entity2: Mapped[str] = mapped_column(String(_NAME))
    attribute2: Mapped[str] = mapped_column(String(_NAME), default="")
    intersect_entity: Mapped[str | None] = mapped_column(String(_NAME))
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SyncStateModel(_Timestamps, Base):
    """Where the last sync of one entity stopped: delta token or watermark, counts, row version."""

    __tablename__ = "sync_state"

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("connection_profile.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(_NAME), primary_key=True)
    token: Mapped[str | None] = mapped_column(Text)
    strategy: Mapped[str] = mapped_column(String(32), default="")
    last_full_sync_at: Mapped[datetime | None]
    last_sync_at: Mapped[datetime | None]
    server_count: Mapped[int | None]
    client_count: Mapped[int | None]
    last_client_row_version: Mapped[str | None] = mapped_column(Text)


class RecordStateModel(Base):
    """What the last sync saw of one record on each side (millions of rows: no extra index)."""

    __tablename__ = "record_state"
    __table_args__ = ({"sqlite_with_rowid": False},)

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("connection_profile.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(_NAME), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    server_row_version: Mapped[str | None] = mapped_column(Text)
    client_row_version: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(128))
    last_synced_at: Mapped[datetime]


class DownloadRetryModel(Base):
    """A server record whose download failed: retried by id so it never falls behind the cursor."""

    __tablename__ = "download_retry"
    __table_args__ = ({"sqlite_with_rowid": False},)

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("connection_profile.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(_NAME), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class UploadBaselineModel(Base):
    """The client's version of one record as change capture last saw it (per-field digests).

    Upload compares a changed client record with this to send only the fields that changed, and
    notices client deletions (a baseline whose record is gone). ``fields`` maps a field to a short
    digest of its value (intersect rows keep the two ids themselves, for Disassociate).
    """

    __tablename__ = "upload_baseline"
    __table_args__ = ({"sqlite_with_rowid": False},)

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("connection_profile.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(_NAME), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(128))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class OfflineTransactionModel(_Timestamps, Base):
    """A client change on its way to the server; ``id`` is the delivery order."""

    __tablename__ = "offline_transaction"
    __table_args__ = (
        # The status tabs and the delivery batch: one profile, one status, in id order.
        Index(None, "profile_id", "status", "id"),
        # The same, filtered to one entity.
        Index(None, "profile_id", "entity", "status", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    profile_id: Mapped[int] = _profile_fk()
    entity: Mapped[str] = mapped_column(String(_NAME))
    record_id: Mapped[str | None] = mapped_column(String(_ID))
    operation: Mapped[TransactionOperation] = mapped_column(EnumText(TransactionOperation, 16))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[TransactionStatus] = mapped_column(EnumText(TransactionStatus, 16))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]


class JobRunModel(_Timestamps, Base):
    """One sync run of a profile, for the history view."""

    __tablename__ = "job_run"
    __table_args__ = (Index(None, "profile_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = _profile_fk()
    trigger: Mapped[RunTrigger] = mapped_column(EnumText(RunTrigger, 32))
    status: Mapped[RunStatus] = mapped_column(EnumText(RunStatus, 16))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {entity: {counter: n}}
    error: Mapped[str | None] = mapped_column(Text)


class RunLogLineModel(Base):
    """One line of a run's log, shown in the run details."""

    __tablename__ = "run_log_line"
    __table_args__ = (Index(None, "run_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("job_run.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str | None] = mapped_column(String(_NAME))
    message: Mapped[str] = mapped_column(Text)


class ScheduleStateModel(_Timestamps, Base):
    """The periodic sync job of a profile: its settings and where it stands."""

    __tablename__ = "schedule_state"

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("connection_profile.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    interval_minutes: Mapped[int]
    daily_at: Mapped[str | None] = mapped_column(String(5))  # "HH:MM" local time: daily, not the interval
    last_started_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    paused_until: Mapped[datetime | None]
