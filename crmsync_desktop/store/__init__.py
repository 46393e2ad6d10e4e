"""The local store: SQLite through SQLAlchemy 2, migrated by Alembic, used off the event loop.

Start-up calls ``upgrade(path, backups_dir)`` then ``open_database(path)`` (or ``open_store`` for
both); the engine then talks to the store only through ``crmsync_desktop.store.repos``, which
returns the plain values of ``crmsync_desktop.domain`` and ``crmsync_desktop.store.values``.
No Qt and no HTTP here; importing this package opens nothing.
"""

from __future__ import annotations

from crmsync_desktop.store.db import Database, open_database
from crmsync_desktop.store.migrate import open_store, upgrade
from crmsync_desktop.store.values import (
    JobRun,
    MetadataEntity,
    MetadataField,
    MetadataRelationship,
    MetadataSnapshot,
    NewTransaction,
    OfflineTransaction,
    RecordState,
    RelationshipKind,
    RunLogLine,
    ScheduleState,
    SyncState,
    TransactionPage,
    UploadBaseline,
)

__all__ = [
    "Database",
    "JobRun",
    "MetadataEntity",
    "MetadataField",
    "MetadataRelationship",
    "MetadataSnapshot",
    "NewTransaction",
    "OfflineTransaction",
    "RecordState",
    "RelationshipKind",
    "RunLogLine",
    "ScheduleState",
    "SyncState",
    "TransactionPage",
    "UploadBaseline",
    "open_database",
    "open_store",
    "upgrade",
]
