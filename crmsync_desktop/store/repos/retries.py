"""The download retry set: server records that failed to reach the client, retried by id.

The change cursor moves past a page even when one of its records failed (the others must not
wait), so the failed ids are kept here durably and fetched again by id on the next sync until
they land; a record that keeps failing stays visible in the run log with its last error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session

from crmsync_desktop.store.coltypes import utcnow
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.models import DownloadRetryModel
from crmsync_desktop.store.repos._common import IN_CHUNK, chunked, profile_id

__all__ = ["add_download_retries", "clear_download_retries", "count_download_retries", "list_download_retries"]

_T = DownloadRetryModel.__table__


async def add_download_retries(db: Database, profile: str, entity: str, errors: Mapping[str, str]) -> None:
    """Remember failed record ids (id -> error); a record already there gets attempts + 1."""
    if not errors:
        return

    def work(session: Session) -> None:
        pid = profile_id(session, profile)
        now = utcnow()
        stmt = insert(_T)
        stmt = stmt.on_conflict_do_update(
            index_elements=["profile_id", "entity", "record_id"],
            set_={"attempts": _T.c.attempts + 1, "last_error": stmt.excluded.last_error, "updated_at": now},
        )
        session.execute(
            stmt,
            [
                {"profile_id": pid, "entity": entity, "record_id": rid, "attempts": 1, "last_error": err,
                 "updated_at": now}
                for rid, err in errors.items()
            ],
        )

    await db.run(work)


async def list_download_retries(db: Database, profile: str, entity: str, *, limit: int = 5000) -> dict[str, int]:
    """Record ids waiting for a retry, with their attempt counts."""

    def work(session: Session) -> dict[str, int]:
        pid = profile_id(session, profile)
        rows = session.execute(
            select(_T.c.record_id, _T.c.attempts)
            .where(_T.c.profile_id == pid, _T.c.entity == entity)
            .order_by(_T.c.record_id)
            .limit(limit)
        )
        return {r.record_id: r.attempts for r in rows}

    return await db.read(work)


async def clear_download_retries(db: Database, profile: str, entity: str, record_ids: Iterable[str]) -> None:
    ids = list(record_ids)
    if not ids:
        return

    def work(session: Session) -> None:
        pid = profile_id(session, profile)
        for chunk in chunked(ids, IN_CHUNK):
            session.execute(
                delete(_T).where(_T.c.profile_id == pid, _T.c.entity == entity, _T.c.record_id.in_(chunk))
            )

    await db.run(work)


async def count_download_retries(db: Database, profile: str) -> dict[str, int]:
    """Waiting retries per entity."""

    def work(session: Session) -> dict[str, int]:
        pid = profile_id(session, profile)
        rows = session.execute(
            select(_T.c.entity, func.count()).where(_T.c.profile_id == pid).group_by(_T.c.entity)
        )
        return {entity: n for entity, n in rows}

    return await db.read(work)
