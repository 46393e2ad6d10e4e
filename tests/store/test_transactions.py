"""The offline transaction queue: enqueue, status tabs with keyset paging, delivery bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmsync_desktop.domain import TransactionOperation, TransactionStatus
from crmsync_desktop.store import Database, NewTransaction
from crmsync_desktop.store.repos import (
    count_transactions,
    enqueue_transaction,
    enqueue_transactions,
    get_transaction,
    list_transactions,
    mark_error,
    mark_processed,
    next_deliverable_batch,
    retry_later,
    save_profile,
    set_all_error_to_pending,
    set_transaction_status,
)
from tests.store.conftest import sample_profile

P, E, A = TransactionStatus.PENDING, TransactionStatus.ERROR, TransactionStatus.ARCHIVED


def _new(i: int, entity: str = "account") -> NewTransaction:
    return NewTransaction(
        entity=entity,
        operation=TransactionOperation.UPDATE,
        payload={"name": f"Account {i}", "revenue": i},
        record_id=f"00000000-0000-0000-0000-{i:012d}",
    )


@pytest.mark.asyncio
async def test_enqueue_returns_ids_in_delivery_order_and_stores_everything(
    db: Database, profile: str
) -> None:
    first = await enqueue_transaction(db, profile, _new(1))
    more = await enqueue_transactions(db, profile, [_new(2), _new(3, "contact")])
    assert more == [first + 1, first + 2]

    tx = await get_transaction(db, profile, more[1])
    assert tx is not None
    assert (tx.profile, tx.entity, tx.record_id, tx.operation) == (
        profile,
        "contact",
        "00000000-0000-0000-0000-000000000003",
        TransactionOperation.UPDATE,
    )
    assert tx.payload == {"name": "Account 3", "revenue": 3}
    assert (tx.status, tx.attempts, tx.last_error, tx.next_attempt_at, tx.processed_at) == (
        P,
        0,
        None,
        None,
        None,
    )
    assert tx.created_at.tzinfo is UTC
    assert await get_transaction(db, profile, 9999) is None
    assert await enqueue_transactions(db, profile, []) == []


@pytest.mark.asyncio
async def test_ids_are_never_reused(db: Database, profile: str) -> None:
    """AUTOINCREMENT: a cursor or a delivery order must never see an old id come back."""
    ids = await enqueue_transactions(db, profile, [_new(i) for i in range(3)])
    await set_transaction_status(db, profile, ids, A)
    await db.run(lambda s: s.connection().exec_driver_sql("DELETE FROM offline_transaction"))
    assert await enqueue_transaction(db, profile, _new(9)) == ids[-1] + 1


@pytest.mark.asyncio
async def test_transactions_belong_to_their_profile(db: Database, profile: str) -> None:
    await save_profile(db, sample_profile("Other"))
    mine = await enqueue_transaction(db, profile, _new(1))
    theirs = await enqueue_transaction(db, "Other", _new(2))
    assert [t.id for t in (await list_transactions(db, profile, P)).items] == [mine]
    assert await get_transaction(db, profile, theirs) is None
    assert await set_transaction_status(db, profile, [theirs], A) == 0
    assert (await count_transactions(db, "Other"))[P] == 1


@pytest.mark.asyncio
async def test_counts_cover_every_status(db: Database, profile: str) -> None:
    assert await count_transactions(db, profile) == {s: 0 for s in TransactionStatus}
    ids = await enqueue_transactions(db, profile, [_new(i) for i in range(10)])
    await mark_processed(db, ids[:3])
    await mark_error(db, ids[3], "400: bad")
    await set_transaction_status(db, profile, ids[4:6], A)
    assert await count_transactions(db, profile) == {P: 4, TransactionStatus.PROCESSED: 3, E: 1, A: 2}
    page = await list_transactions(db, profile, P, with_counts=True)
    assert page.counts == {P: 4, TransactionStatus.PROCESSED: 3, E: 1, A: 2}
    assert (await list_transactions(db, profile, P)).counts == {}


@pytest.mark.asyncio
async def test_entity_filter(db: Database, profile: str) -> None:
    ids = await enqueue_transactions(
        db, profile, [_new(i, "account" if i % 2 else "contact") for i in range(10)]
    )
    page = await list_transactions(db, profile, P, entity="contact", newest_first=False)
    assert [t.id for t in page.items] == ids[0::2]


@pytest.mark.asyncio
async def test_set_to_pending_and_archived(db: Database, profile: str) -> None:
    ids = await enqueue_transactions(db, profile, [_new(i) for i in range(4)])
    await mark_error(db, ids[0], "boom")
    await mark_error(db, ids[1], "boom")
    assert await set_transaction_status(db, profile, [ids[0]], P) == 1
    tx = await get_transaction(db, profile, ids[0])
    assert tx is not None and (tx.status, tx.attempts, tx.last_error) == (P, 0, "boom")
    assert await set_transaction_status(db, profile, ids[2:], A) == 2
    assert await set_transaction_status(db, profile, [], A) == 0
    with pytest.raises(ValueError, match="Pending or Archived"):
        await set_transaction_status(db, profile, ids, TransactionStatus.PROCESSED)


@pytest.mark.asyncio
async def test_set_all_error_to_pending(db: Database, profile: str) -> None:
    ids = await enqueue_transactions(db, profile, [_new(i) for i in range(5)])
    for tx_id in ids[:3]:
        await mark_error(db, tx_id, "403: missing privilege")
    assert await set_all_error_to_pending(db, profile) == 3
    assert await count_transactions(db, profile) == {P: 5, TransactionStatus.PROCESSED: 0, E: 0, A: 0}
    assert await set_all_error_to_pending(db, profile) == 0


@pytest.mark.asyncio
async def test_delivery_batch_processed_error_and_retry_later(db: Database, profile: str) -> None:
    now = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    ids = await enqueue_transactions(db, profile, [_new(i) for i in range(6)])

    batch = await next_deliverable_batch(db, profile, limit=3, now=now)
    assert [t.id for t in batch] == ids[:3]

    await retry_later(db, ids[0], "429: throttled", now + timedelta(minutes=5))
    await mark_processed(db, [ids[1]], at=now)
    await mark_error(db, ids[2], "400: invalid lookup")

    assert [t.id for t in await next_deliverable_batch(db, profile, now=now)] == ids[3:]
    later = await next_deliverable_batch(db, profile, now=now + timedelta(minutes=5))
    assert [t.id for t in later] == [ids[0], *ids[3:]]

    retried = await get_transaction(db, profile, ids[0])
    assert retried is not None
    assert (retried.status, retried.attempts, retried.last_error) == (P, 1, "429: throttled")
    assert retried.next_attempt_at == now + timedelta(minutes=5)
    processed = await get_transaction(db, profile, ids[1])
    assert processed is not None
    assert (processed.status, processed.processed_at, processed.attempts) == (
        TransactionStatus.PROCESSED,
        now,
        1,
    )
    failed = await get_transaction(db, profile, ids[2])
    assert failed is not None and (failed.status, failed.attempts, failed.last_error) == (
        E,
        1,
        "400: invalid lookup",
    )

    # Set to Pending makes a delayed transaction deliverable again at once.
    await set_transaction_status(db, profile, [ids[0]], P)
    assert [t.id for t in await next_deliverable_batch(db, profile, limit=1, now=now)] == [ids[0]]


@pytest.mark.asyncio
async def test_limit_must_be_positive(db: Database, profile: str) -> None:
    with pytest.raises(ValueError):
        await list_transactions(db, profile, P, limit=0)


@pytest.mark.asyncio
async def test_keyset_paging_over_50k_transactions(db: Database, profile: str) -> None:
    ids = await enqueue_transactions(
        db, profile, [_new(i, "account" if i % 3 else "contact") for i in range(50_000)]
    )
    assert ids == list(range(ids[0], ids[0] + 50_000))
    archived = ids[::7]
    archived_set = set(archived)
    errors = [i for i in ids[1::11] if i not in archived_set]
    await set_transaction_status(db, profile, archived, A)
    for tx_id in errors[:50]:
        await mark_error(db, tx_id, "boom")
    expected = {
        A: sorted(archived),
        E: sorted(errors[:50]),
        P: sorted(set(ids) - set(archived) - set(errors[:50])),
    }

    for status, wanted in expected.items():
        for newest_first in (True, False):
            seen: list[int] = []
            after: int | None = None
            pages = 0
            while True:
                page = await list_transactions(
                    db, profile, status, after_id=after, limit=997, newest_first=newest_first
                )
                assert len(page.items) <= 997
                assert all(t.status is status for t in page.items)
                seen.extend(t.id for t in page.items)
                pages += 1
                if page.next_after_id is None:
                    break
                assert page.next_after_id == page.items[-1].id
                after = page.next_after_id
            assert seen == (sorted(wanted, reverse=True) if newest_first else wanted)
            assert pages == max(1, -(-len(wanted) // 997))

    # A page from the middle, by entity, in delivery order.
    pending = set(expected[P])
    contacts = [i for n, i in enumerate(ids) if n % 3 == 0 and i in pending]
    page = await list_transactions(
        db, profile, P, entity="contact", after_id=contacts[99], limit=50, newest_first=False
    )
    assert [t.id for t in page.items] == contacts[100:150]
    counts = await count_transactions(db, profile)
    assert counts == {P: len(expected[P]), E: 50, A: len(archived), TransactionStatus.PROCESSED: 0}
