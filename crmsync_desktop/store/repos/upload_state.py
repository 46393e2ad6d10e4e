"""What upload needs beyond the plain queue: capture baselines, atomic capture and delivery commits.

* ``upload_baseline`` keeps, per client record, the per-field digests of the version change capture
  last saw, so a changed record is uploaded with only its changed fields and a record that
  disappeared from the client can be told apart from one the engine never saw.
* ``commit_capture`` stores a page of captured changes, their baselines and the client change token
  in ONE transaction: a change is durable before the token moves past it, and re-reading a page
  after a crash finds the baselines already equal (nothing is queued twice).
* ``next_delivery_batch`` is ``transactions.next_deliverable_batch`` plus hold-back: a transaction
  waits while an earlier transaction of the same record is in Error or waits for a retry, so the
  changes of one record always reach the server in the order they were made.
* ``finish_delivery`` marks transactions Processed (optionally with a note, e.g. a conflict that
  the server won) and updates or forgets record states in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session, aliased

from crmsync_desktop.domain import TransactionStatus
from crmsync_desktop.store.coltypes import utcnow
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.models import (
    OfflineTransactionModel,
    RecordStateModel,
    SyncStateModel,
    UploadBaselineModel,
)
from crmsync_desktop.store.repos._common import IN_CHUNK, bind_processor, chunked, profile_id, upsert_many
from crmsync_desktop.store.repos.sync_state import write_record_states
from crmsync_desktop.store.repos.transactions import _insert, _to_transaction
from crmsync_desktop.store.values import (
    NewTransaction,
    OfflineTransaction,
    RecordState,
    SyncState,
    UploadBaseline,
)

__all__ = [
    "commit_capture",
    "fail_transactions",
    "finish_delivery",
    "forget_upload_baselines",
    "get_upload_baselines",
    "list_upload_baseline_ids",
    "next_delivery_batch",
    "prune_processed_transactions",
    "record_client_writes",
    "retry_transactions",
    "supersede_transactions",
    "undelivered_records",
]

_B = UploadBaselineModel.__table__
_T = OfflineTransactionModel.__table__
_R = RecordStateModel.__table__
_S = SyncStateModel.__table__
_UNDELIVERED = (TransactionStatus.PENDING, TransactionStatus.ERROR)


# -- baselines ------------------------------------------------------------------------------------


async def get_upload_baselines(
    db: Database, profile: str, entity: str, record_ids: Iterable[str]
) -> dict[str, UploadBaseline]:
    """The baselines of the given records of ``entity`` by record id (unknown ids are absent)."""
    ids = list(record_ids)

    def work(session: Session) -> dict[str, UploadBaseline]:
        pid = profile_id(session, profile)
        found: dict[str, UploadBaseline] = {}
        for batch in chunked(ids, IN_CHUNK):
            rows = session.execute(
                select(_B.c.record_id, _B.c.content_hash, _B.c.fields).where(
                    _B.c.profile_id == pid, _B.c.entity == entity, _B.c.record_id.in_(batch)
                )
            )
            found.update((r.record_id, UploadBaseline(r.record_id, r.content_hash, r.fields or {})) for r in rows)
        return found

    return await db.read(work)


async def list_upload_baseline_ids(
    db: Database, profile: str, entity: str, *, after_record_id: str | None = None, limit: int = 10_000
) -> list[str]:
    """A page of the record ids of ``entity`` that have a baseline, in id order (keyset paging)."""

    def work(session: Session) -> list[str]:
        pid = profile_id(session, profile)
        query = select(_B.c.record_id).where(_B.c.profile_id == pid, _B.c.entity == entity)
        if after_record_id is not None:
            query = query.where(_B.c.record_id > after_record_id)
        return list(session.execute(query.order_by(_B.c.record_id).limit(limit)).scalars())

    return await db.read(work)


_BASELINE_KEY = ("profile_id", "entity", "record_id")
_BASELINE_COLUMNS = (*_BASELINE_KEY, "content_hash", "fields", "updated_at")


def _upsert_baselines(session: Session, pid: int, entity: str, items: Sequence[UploadBaseline]) -> None:
    if not items:
        return
    now = bind_processor(session, _B, "updated_at")(utcnow())
    as_json = bind_processor(session, _B, "fields")
    upsert_many(session, _B, _BASELINE_COLUMNS, _BASELINE_KEY, (
        (pid, entity, b.record_id, b.content_hash, as_json(dict(b.fields)), now) for b in items
    ))


def _forget_baselines(session: Session, pid: int, entity: str, ids: Sequence[str]) -> None:
    for batch in chunked(ids, IN_CHUNK):
        session.execute(delete(_B).where(_B.c.profile_id == pid, _B.c.entity == entity, _B.c.record_id.in_(batch)))


async def record_client_writes(
    db: Database,
    profile: str,
    entity: str,
    states: Sequence[RecordState],
    baselines: Sequence[UploadBaseline],
) -> None:
    """What the engine just wrote to the client, in one transaction: record states and upload baselines.

    The baseline lets change capture tell the engine's own write from a user's edit field by
    field, so an edit made right after a download sends only the fields the user changed.
    """

    def work(session: Session) -> None:
        pid = profile_id(session, profile)
        write_record_states(session, pid, entity, list(states))
        _upsert_baselines(session, pid, entity, baselines)

    await db.run(work)


async def forget_upload_baselines(db: Database, profile: str, entity: str, record_ids: Iterable[str]) -> None:
    """Drop the baselines of the given records (they are gone from the client)."""
    ids = list(record_ids)
    await db.run(lambda s: _forget_baselines(s, profile_id(s, profile), entity, ids))


async def commit_capture(
    db: Database,
    profile: str,
    entity: str,
    *,
    transactions: Sequence[NewTransaction] = (),
    baselines: Sequence[UploadBaseline] = (),
    forget: Sequence[str] = (),
    sync_state: SyncState | None = None,
) -> list[int]:
    """Queue captured changes, store/forget baselines and move the client token, in one transaction.

    Returns the ids of the new transactions in the given order.
    """
    items, keep, drop = list(transactions), list(baselines), list(forget)

    def work(session: Session) -> list[int]:
        pid = profile_id(session, profile)
        ids = _insert(session, pid, items) if items else []
        _upsert_baselines(session, pid, entity, keep)
        _forget_baselines(session, pid, entity, drop)
        if sync_state is not None:
            now = utcnow()
            values = {
                "token": sync_state.token,
                "strategy": sync_state.strategy,
                "last_full_sync_at": sync_state.last_full_sync_at,
                "last_sync_at": sync_state.last_sync_at,
                "server_count": sync_state.server_count,
                "client_count": sync_state.client_count,
                "last_client_row_version": sync_state.last_client_row_version,
            }
            stmt = insert(_S).values(profile_id=pid, entity=sync_state.entity, created_at=now, updated_at=now,
                                     **values)
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[_S.c.profile_id, _S.c.entity], set_={**values, "updated_at": now}
                )
            )
        return ids

    return await db.run(work)


# -- the delivery side ----------------------------------------------------------------------------


async def undelivered_records(db: Database, profile: str, entity: str, record_ids: Iterable[str]) -> set[str]:
    """Which of the given records of ``entity`` have a transaction in Pending or Error."""
    ids = list(record_ids)

    def work(session: Session) -> set[str]:
        pid = profile_id(session, profile)
        found: set[str] = set()
        for batch in chunked(ids, IN_CHUNK):
            rows = session.execute(
                select(_T.c.record_id).where(
                    _T.c.profile_id == pid, _T.c.entity == entity, _T.c.status.in_(_UNDELIVERED),
                    _T.c.record_id.in_(batch),
                )
            )
            found.update(rows.scalars())
        return found

    return await db.read(work)


async def next_delivery_batch(
    db: Database, profile: str, *, limit: int = 100, now: datetime | None = None
) -> list[OfflineTransaction]:
    """The first ``limit`` due Pending transactions in delivery order, holding back records that wait.

    A transaction is held back while an earlier transaction of the same record is in Error or is
    Pending but not due yet (waiting for a retry): a later change never overtakes an earlier one.
    """

    def work(session: Session) -> list[OfflineTransaction]:
        pid = profile_id(session, profile)
        due = now or utcnow()
        earlier = aliased(OfflineTransactionModel)
        waiting = exists().where(
            earlier.profile_id == _T.c.profile_id,
            earlier.entity == _T.c.entity,
            earlier.record_id == _T.c.record_id,
            earlier.id < _T.c.id,
            or_(
                earlier.status == TransactionStatus.ERROR,
                and_(earlier.status == TransactionStatus.PENDING, earlier.next_attempt_at > due),
            ),
        )
        rows = session.execute(
            select(_T)
            .where(
                _T.c.profile_id == pid,
                _T.c.status == TransactionStatus.PENDING,
                or_(_T.c.next_attempt_at.is_(None), _T.c.next_attempt_at <= due),
                ~waiting,
            )
            .order_by(_T.c.id)
            .limit(limit)
        ).all()
        return [_to_transaction(profile, row) for row in rows]

    return await db.read(work)


async def finish_delivery(
    db: Database,
    profile: str,
    *,
    processed: Mapping[int, str | None],
    at: datetime,
    record_states: Mapping[str, Sequence[RecordState]] | None = None,
    forget_record_states: Mapping[str, Sequence[str]] | None = None,
    forget_baselines: Mapping[str, Sequence[str]] | None = None,
) -> int:
    """Mark transactions Processed (``processed`` maps id -> note or None) and update record states.

    Everything happens in one transaction; returns how many transactions were marked.
    """
    notes = dict(processed)
    states = {k: list(v) for k, v in (record_states or {}).items()}
    gone = {k: list(v) for k, v in (forget_record_states or {}).items()}
    drop = {k: list(v) for k, v in (forget_baselines or {}).items()}

    def work(session: Session) -> int:
        pid = profile_id(session, profile)
        changed = 0
        stamp = utcnow()
        by_note: dict[str | None, list[int]] = {}
        for tid, note in notes.items():
            by_note.setdefault(note, []).append(tid)
        for note, ids in by_note.items():
            for batch in chunked(ids, IN_CHUNK):
                changed += session.execute(
                    update(_T)
                    .where(_T.c.profile_id == pid, _T.c.id.in_(batch))
                    .values(status=TransactionStatus.PROCESSED, attempts=_T.c.attempts + 1, last_error=note,
                            next_attempt_at=None, processed_at=at, updated_at=stamp)
                ).rowcount
        for entity, items in states.items():
            if not items:
                continue
            stmt = insert(_R)
            stmt = stmt.on_conflict_do_update(
                index_elements=[_R.c.profile_id, _R.c.entity, _R.c.record_id],
                set_={name: stmt.excluded[name] for name in
                      ("server_row_version", "client_row_version", "content_hash", "last_synced_at")},
            )
            session.execute(
                stmt,
                [
                    {"profile_id": pid, "entity": entity, "record_id": s.record_id,
                     "server_row_version": s.server_row_version, "client_row_version": s.client_row_version,
                     "content_hash": s.content_hash, "last_synced_at": s.last_synced_at}
                    for s in items
                ],
            )
        for entity, ids in gone.items():
            for batch in chunked(ids, IN_CHUNK):
                session.execute(
                    delete(_R).where(_R.c.profile_id == pid, _R.c.entity == entity, _R.c.record_id.in_(batch))
                )
        for entity, ids in drop.items():
            _forget_baselines(session, pid, entity, ids)
        return changed

    return await db.run(work)


async def retry_transactions(db: Database, profile: str, retries: Mapping[int, tuple[str, datetime]]) -> int:
    """Pending transactions that failed for a passing reason: attempts + 1, error, next attempt time."""
    items = dict(retries)

    def work(session: Session) -> int:
        pid = profile_id(session, profile)
        stamp = utcnow()
        changed = 0
        for tid, (error, when) in items.items():
            changed += session.execute(
                update(_T)
                .where(_T.c.profile_id == pid, _T.c.id == tid, _T.c.status == TransactionStatus.PENDING)
                .values(attempts=_T.c.attempts + 1, last_error=error, next_attempt_at=when, updated_at=stamp)
            ).rowcount
        return changed

    return await db.run(work)


async def fail_transactions(db: Database, profile: str, errors: Mapping[int, str]) -> int:
    """Pending transactions the server rejected for good: Error with its message, attempts + 1."""
    items = dict(errors)

    def work(session: Session) -> int:
        pid = profile_id(session, profile)
        stamp = utcnow()
        changed = 0
        for tid, error in items.items():
            changed += session.execute(
                update(_T)
                .where(_T.c.profile_id == pid, _T.c.id == tid, _T.c.status == TransactionStatus.PENDING)
                .values(status=TransactionStatus.ERROR, attempts=_T.c.attempts + 1, last_error=error,
                        next_attempt_at=None, updated_at=stamp)
            ).rowcount
        return changed

    return await db.run(work)


async def supersede_transactions(
    db: Database, profile: str, entity: str, record_id: str, *, after_id: int, note: str, at: datetime
) -> int:
    """Mark the undelivered transactions of one record after ``after_id`` Processed with ``note``.

    Used when the server's version of the record was kept (a conflict the server won): the client
    now has the server's version, so the client's later changes of that version are moot.
    """

    def work(session: Session) -> int:
        pid = profile_id(session, profile)
        return session.execute(
            update(_T)
            .where(_T.c.profile_id == pid, _T.c.entity == entity, _T.c.record_id == record_id,
                   _T.c.id > after_id, _T.c.status.in_(_UNDELIVERED))
            .values(status=TransactionStatus.PROCESSED, last_error=note, next_attempt_at=None, processed_at=at,
                    updated_at=utcnow())
        ).rowcount

    return await db.run(work)


async def prune_processed_transactions(db: Database, profile: str, *, older_than: datetime) -> int:
    """Delete Processed transactions delivered before ``older_than``; returns how many.

    Ids are never reused (``AUTOINCREMENT``), so keyset paging and delivery order stay sound.
    """

    def work(session: Session) -> int:
        pid = profile_id(session, profile)
        return session.execute(
            delete(_T).where(
                _T.c.profile_id == pid,
                _T.c.status == TransactionStatus.PROCESSED,
                _T.c.processed_at < older_than,
            )
        ).rowcount

    return await db.run(work)
