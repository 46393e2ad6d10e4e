"""Where each entity's sync stopped (``sync_state``) and what it saw of each record (``record_state``).

``record_state`` can hold millions of rows, so it is written with ``INSERT … ON CONFLICT DO UPDATE``
executemany in batches (about ten times faster than ORM ``add_all``, stack-recipes §8; and as plain
rows, ``_common.upsert_many``, without Core's per-row parameter work: about half the CPU of the
download's bookkeeping) and read by primary-key prefix: (profile, entity) then record id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Row, delete, func, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session

from crmsync_desktop.store.coltypes import utcnow
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.models import RecordStateModel, SyncStateModel
from crmsync_desktop.store.repos._common import IN_CHUNK, bind_processor, chunked, profile_id, upsert_many
from crmsync_desktop.store.values import RecordState, SyncState

__all__ = [
    "count_record_states",
    "delete_record_states",
    "get_record_states",
    "get_sync_state",
    "list_record_states",
    "list_sync_states",
    "put_sync_state",
    "reset_entity_state",
    "upsert_record_states",
]

_S = SyncStateModel.__table__
_R = RecordStateModel.__table__
_SYNC_COLUMNS = (
    "token",
    "strategy",
    "last_full_sync_at",
    "last_sync_at",
    "server_count",
    "client_count",
    "last_client_row_version",
)
_RECORD_COLUMNS = ("server_row_version", "client_row_version", "content_hash", "last_synced_at")


def _to_sync_state(row: Row[Any]) -> SyncState:
    return SyncState(entity=row.entity, **{name: getattr(row, name) for name in _SYNC_COLUMNS})


def _to_record_state(row: Row[Any]) -> RecordState:
    return RecordState(row.record_id, row.last_synced_at, row.server_row_version, row.client_row_version,
                       row.content_hash)


async def get_sync_state(db: Database, profile: str, entity: str) -> SyncState | None:
    """Where the last sync of ``entity`` stopped; None if it never ran."""

    def work(session: Session) -> SyncState | None:
        pid = profile_id(session, profile)
        row = session.execute(select(_S).where(_S.c.profile_id == pid, _S.c.entity == entity)).first()
        return None if row is None else _to_sync_state(row)

    return await db.read(work)


async def list_sync_states(db: Database, profile: str) -> list[SyncState]:
    """The sync state of every entity of ``profile`` that ever synced, sorted by entity."""

    def work(session: Session) -> list[SyncState]:
        pid = profile_id(session, profile)
        rows = session.execute(select(_S).where(_S.c.profile_id == pid).order_by(_S.c.entity))
        return [_to_sync_state(row) for row in rows]

    return await db.read(work)


async def put_sync_state(db: Database, profile: str, state: SyncState) -> None:
    """Store the sync state of one entity (insert or replace)."""

    def work(session: Session) -> None:
        now = utcnow()
        values = {name: getattr(state, name) for name in _SYNC_COLUMNS}
        stmt = insert(_S).values(
            profile_id=profile_id(session, profile),
            entity=state.entity,
            created_at=now,
            updated_at=now,
            **values,
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[_S.c.profile_id, _S.c.entity], set_={**values, "updated_at": now}
            )
        )

    await db.run(work)


async def reset_entity_state(db: Database, profile: str, entity: str) -> None:
    """Forget the sync state and every record state of ``entity``: the next sync is a full one."""

    def work(session: Session) -> None:
        pid = profile_id(session, profile)
        session.execute(delete(_S).where(_S.c.profile_id == pid, _S.c.entity == entity))
        session.execute(delete(_R).where(_R.c.profile_id == pid, _R.c.entity == entity))

    await db.run(work)


async def upsert_record_states(db: Database, profile: str, entity: str, states: Iterable[RecordState]) -> int:
    """Insert or update the state of many records of ``entity`` in one transaction; returns how many."""
    items = list(states)
    return await db.run(lambda session: write_record_states(session, profile_id(session, profile), entity, items))


_RECORD_KEY = ("profile_id", "entity", "record_id")


def write_record_states(session: Session, pid: int, entity: str, items: list[RecordState]) -> int:
    """The upsert itself, for repository functions that write record states with other rows atomically."""
    stored = bind_processor(session, _R, "last_synced_at")
    moments: dict[Any, Any] = {}  # a slice's states share one timestamp: convert it once

    def when(moment: Any) -> Any:
        found = moments.get(moment)
        if found is None:
            found = moments[moment] = stored(moment)
        return found

    upsert_many(session, _R, (*_RECORD_KEY, *_RECORD_COLUMNS), _RECORD_KEY, (
        (pid, entity, item.record_id, item.server_row_version, item.client_row_version, item.content_hash,
         when(item.last_synced_at))
        for item in items
    ))
    return len(items)


async def get_record_states(
    db: Database, profile: str, entity: str, record_ids: Iterable[str]
) -> dict[str, RecordState]:
    """The stored state of the given records of ``entity``, by record id (unknown ids are absent)."""
    ids = list(record_ids)

    def work(session: Session) -> dict[str, RecordState]:
        pid = profile_id(session, profile)
        found: dict[str, RecordState] = {}
        for batch in chunked(ids, IN_CHUNK):
            rows = session.execute(
                select(_R).where(_R.c.profile_id == pid, _R.c.entity == entity, _R.c.record_id.in_(batch))
            )
            found.update((row.record_id, _to_record_state(row)) for row in rows)
        return found

    return await db.read(work)


async def list_record_states(
    db: Database, profile: str, entity: str, *, after_record_id: str | None = None, limit: int = 10_000
) -> list[RecordState]:
    """A page of the record states of ``entity`` in record-id order (keyset: pass the last id)."""

    def work(session: Session) -> list[RecordState]:
        pid = profile_id(session, profile)
        query = select(_R).where(_R.c.profile_id == pid, _R.c.entity == entity)
        if after_record_id is not None:
            query = query.where(_R.c.record_id > after_record_id)
        rows = session.execute(query.order_by(_R.c.record_id).limit(limit))
        return [_to_record_state(row) for row in rows]

    return await db.read(work)


async def count_record_states(db: Database, profile: str) -> Mapping[str, int]:
    """How many records of each entity of ``profile`` have a stored state."""

    def work(session: Session) -> dict[str, int]:
        pid = profile_id(session, profile)
        rows = session.execute(
            select(_R.c.entity, func.count()).where(_R.c.profile_id == pid).group_by(_R.c.entity)
        )
        return {entity: n for entity, n in rows}

    return await db.read(work)


async def delete_record_states(db: Database, profile: str, entity: str, record_ids: Iterable[str]) -> int:
    """Forget the given records of ``entity`` (deleted on both sides); returns how many were known."""
    ids = list(record_ids)

    def work(session: Session) -> int:
        pid = profile_id(session, profile)
        deleted = 0
        for batch in chunked(ids, IN_CHUNK):
            result = session.execute(
                delete(_R).where(_R.c.profile_id == pid, _R.c.entity == entity, _R.c.record_id.in_(batch))
            )
            deleted += result.rowcount
        return deleted

    return await db.run(work)
