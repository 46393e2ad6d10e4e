"""The offline transaction queue: client changes waiting to be delivered to the server.

``id`` is the delivery order. Status tabs page with keysets (``id < after_id`` newest first,
``id > after_id`` oldest first) over the (profile, status, id) index, so page 10,000 costs what
page 1 costs, whatever the queue holds; ``OFFSET`` would read and drop every earlier row.
Enqueueing commits before it returns: once ``enqueue_transaction`` is done, the change survives a
crash of the app.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from crmsync_desktop.domain import TransactionStatus
from crmsync_desktop.store.coltypes import utcnow
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.models import OfflineTransactionModel
from crmsync_desktop.store.repos._common import IN_CHUNK, WRITE_CHUNK, chunked, profile_id
from crmsync_desktop.store.values import NewTransaction, OfflineTransaction, TransactionPage

__all__ = [
    "count_transactions",
    "enqueue_transaction",
    "enqueue_transactions",
    "get_transaction",
    "list_transactions",
    "mark_error",
    "mark_processed",
    "next_deliverable_batch",
    "retry_later",
    "set_all_error_to_pending",
    "set_transaction_status",
]

_T = OfflineTransactionModel.__table__
_C = _T.c


def _to_transaction(profile: str, row: Row[Any]) -> OfflineTransaction:
    return OfflineTransaction(
        id=row.id,
        profile=profile,
        entity=row.entity,
        record_id=row.record_id,
        operation=row.operation,
        payload=row.payload,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        processed_at=row.processed_at,
    )


def _counts(session: Session, pid: int) -> dict[TransactionStatus, int]:
    counts = dict.fromkeys(TransactionStatus, 0)
    rows = session.execute(select(_C.status, func.count()).where(_C.profile_id == pid).group_by(_C.status))
    for status, n in rows:
        counts[status] = n
    return counts


def _insert(session: Session, pid: int, items: Sequence[NewTransaction]) -> list[int]:
    now = utcnow()
    ids: list[int] = []
    for batch in chunked(items, WRITE_CHUNK):
        rows = [
            {
                "profile_id": pid,
                "entity": item.entity,
                "record_id": item.record_id,
                "operation": item.operation,
                "payload": dict(item.payload),
                "status": TransactionStatus.PENDING,
                "attempts": 0,
                "last_error": None,
                "next_attempt_at": None,
                "processed_at": None,
                "created_at": now,
                "updated_at": now,
            }
            for item in batch
        ]
        stmt = insert(_T).returning(_C.id, sort_by_parameter_order=True)
        ids.extend(session.execute(stmt, rows).scalars())
    return ids


async def enqueue_transaction(db: Database, profile: str, item: NewTransaction) -> int:
    """Queue one change as Pending; returns its id once it is committed."""
    ids = await enqueue_transactions(db, profile, [item])
    return ids[0]


async def enqueue_transactions(db: Database, profile: str, items: Iterable[NewTransaction]) -> list[int]:
    """Queue several changes as Pending in one transaction; returns their ids in the given order."""
    batch = list(items)
    return await db.run(lambda s: _insert(s, profile_id(s, profile), batch))


async def get_transaction(db: Database, profile: str, transaction_id: int) -> OfflineTransaction | None:
    """One transaction of ``profile`` by id, or None."""

    def work(session: Session) -> OfflineTransaction | None:
        pid = profile_id(session, profile)
        row = session.execute(select(_T).where(_C.id == transaction_id, _C.profile_id == pid)).first()
        return None if row is None else _to_transaction(profile, row)

    return await db.read(work)


async def count_transactions(db: Database, profile: str) -> dict[TransactionStatus, int]:
    """Transactions per status for ``profile`` (every status present), in one query."""
    return await db.read(lambda s: _counts(s, profile_id(s, profile)))


async def list_transactions(
    db: Database,
    profile: str,
    status: TransactionStatus,
    *,
    after_id: int | None = None,
    limit: int = 100,
    newest_first: bool = True,
    entity: str | None = None,
    with_counts: bool = False,
) -> TransactionPage:
    """One page of a status tab, by keyset.

    Args:
        after_id: the ``next_after_id`` of the previous page; None for the first page.
        limit: at most this many transactions (>= 1).
        newest_first: highest ids first (the default), else delivery order.
        entity: only transactions of this entity.
        with_counts: also count every status of the profile, in the same snapshot.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")

    def work(session: Session) -> TransactionPage:
        pid = profile_id(session, profile)
        query = select(_T).where(_C.profile_id == pid, _C.status == status)
        if entity is not None:
            query = query.where(_C.entity == entity)
        if after_id is not None:
            query = query.where(_C.id < after_id if newest_first else _C.id > after_id)
        query = query.order_by(_C.id.desc() if newest_first else _C.id.asc()).limit(limit + 1)
        rows = session.execute(query).all()
        items = tuple(_to_transaction(profile, row) for row in rows[:limit])
        next_after_id = items[-1].id if len(rows) > limit else None
        counts = _counts(session, pid) if with_counts else {}
        return TransactionPage(items=items, next_after_id=next_after_id, counts=counts)

    return await db.read(work)


async def set_transaction_status(
    db: Database,
    profile: str,
    transaction_ids: Iterable[int],
    status: TransactionStatus,
    *,
    only_from: Iterable[TransactionStatus] | None = None,
) -> int:
    """Set to Pending or Set to Archived for the selected transactions; returns how many changed.

    Set to Pending makes them deliverable again at once: attempts restart at 0 and any retry
    delay is cleared (the last error is kept for reference: a conflict kept for the admin is
    resolved "client wins" that way). With ``only_from``, only transactions now in one of those
    statuses change (the console's rules: archive only Pending/Error, retry only Error/Archived).
    """
    if status not in (TransactionStatus.PENDING, TransactionStatus.ARCHIVED):
        raise ValueError(f"transactions can be set to Pending or Archived by hand, not {status}")
    ids = list(transaction_ids)
    sources = list(only_from) if only_from is not None else None

    def work(session: Session) -> int:
        pid = profile_id(session, profile)
        values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
        if status is TransactionStatus.PENDING:
            values |= {"attempts": 0, "next_attempt_at": None}
        changed = 0
        for batch in chunked(ids, IN_CHUNK):
            query = update(_T).where(_C.profile_id == pid, _C.id.in_(batch))
            if sources is not None:
                query = query.where(_C.status.in_(sources))
            changed += session.execute(query.values(**values)).rowcount
        return changed

    return await db.run(work)


async def set_all_error_to_pending(db: Database, profile: str) -> int:
    """Set every transaction in Error back to Pending; returns how many."""

    def work(session: Session) -> int:
        pid = profile_id(session, profile)
        result = session.execute(
            update(_T)
            .where(_C.profile_id == pid, _C.status == TransactionStatus.ERROR)
            .values(status=TransactionStatus.PENDING, attempts=0, next_attempt_at=None, updated_at=utcnow())
        )
        return result.rowcount

    return await db.run(work)


async def next_deliverable_batch(
    db: Database, profile: str, *, limit: int = 100, now: datetime | None = None
) -> list[OfflineTransaction]:
    """The first ``limit`` Pending transactions due by ``now`` (default: now), in delivery order."""

    def work(session: Session) -> list[OfflineTransaction]:
        pid = profile_id(session, profile)
        due = now or utcnow()
        rows = session.execute(
            select(_T)
            .where(
                _C.profile_id == pid,
                _C.status == TransactionStatus.PENDING,
                or_(_C.next_attempt_at.is_(None), _C.next_attempt_at <= due),
            )
            .order_by(_C.id)
            .limit(limit)
        ).all()
        return [_to_transaction(profile, row) for row in rows]

    return await db.read(work)


async def mark_processed(db: Database, transaction_ids: Iterable[int], *, at: datetime | None = None) -> int:
    """The server accepted these transactions; returns how many were marked Processed."""
    ids = list(transaction_ids)

    def work(session: Session) -> int:
        when = at or utcnow()
        changed = 0
        for batch in chunked(ids, IN_CHUNK):
            result = session.execute(
                update(_T)
                .where(_C.id.in_(batch))
                .values(
                    status=TransactionStatus.PROCESSED,
                    attempts=_C.attempts + 1,
                    last_error=None,
                    next_attempt_at=None,
                    processed_at=when,
                    updated_at=utcnow(),
                )
            )
            changed += result.rowcount
        return changed

    return await db.run(work)


async def mark_error(db: Database, transaction_id: int, error: str) -> None:
    """The server rejected this transaction for good: it waits in Error for the admin."""
    await db.run(
        lambda s: (
            s.execute(
                update(_T)
                .where(_C.id == transaction_id)
                .values(
                    status=TransactionStatus.ERROR,
                    attempts=_C.attempts + 1,
                    last_error=error,
                    next_attempt_at=None,
                    updated_at=utcnow(),
                )
            ).rowcount
        )
    )


async def retry_later(db: Database, transaction_id: int, error: str, next_attempt_at: datetime) -> None:
    """Delivery failed for a passing reason: stay Pending, but not before ``next_attempt_at``."""
    await db.run(
        lambda s: (
            s.execute(
                update(_T)
                .where(and_(_C.id == transaction_id, _C.status == TransactionStatus.PENDING))
                .values(
                    attempts=_C.attempts + 1,
                    last_error=error,
                    next_attempt_at=next_attempt_at,
                    updated_at=utcnow(),
                )
            ).rowcount
        )
    )
