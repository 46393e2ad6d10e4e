"""The lazily fetched Offline Transactions model over a real store, through the TransactionQueue protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from crmsync_desktop.domain import ConnectionProfile, TransactionOperation, TransactionStatus
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.store.values import NewTransaction, TransactionPage
from crmsync_desktop.ui.models.transactions_model import TransactionsTableModel, payload_rows, record_label
from crmsync_desktop.ui.queue_protocol import AllStatusesQueue, TransactionQueue

PROFILE = "Contoso"


class StoreQueue:
    """The queue operations of the upload service, straight over the store repos (a test double)."""

    def __init__(self, db: Database, profile: str = PROFILE) -> None:
        self.db, self.profile = db, profile
        self.calls: list[str] = []

    async def list(
        self, status: TransactionStatus, after_id: int | None = None, limit: int = 100, *, newest_first: bool = True
    ) -> TransactionPage:
        self.calls.append(f"list {status} {after_id}")
        return await repos.list_transactions(self.db, self.profile, status, after_id=after_id, limit=limit,
                                             newest_first=newest_first)

    async def counts(self) -> Mapping[TransactionStatus, int]:
        return await repos.count_transactions(self.db, self.profile)

    async def set_pending(self, ids: Iterable[int]) -> int:
        return await repos.set_transaction_status(
            self.db, self.profile, ids, TransactionStatus.PENDING,
            only_from=(TransactionStatus.ERROR, TransactionStatus.ARCHIVED))

    async def archive(self, ids: Iterable[int]) -> int:
        return await repos.set_transaction_status(
            self.db, self.profile, ids, TransactionStatus.ARCHIVED,
            only_from=(TransactionStatus.PENDING, TransactionStatus.ERROR))

    async def retry_errors(self) -> int:
        return await repos.set_all_error_to_pending(self.db, self.profile)


def new_tx(i: int, entity: str = "account") -> NewTransaction:
    rid = f"{i:08x}-0000-4000-8000-000000000000"
    if entity == "contact":
        values = {"firstname": "Ana", "lastname": f"Novak {i}", "emailaddress1": f"ana{i}@example.com"}
    else:
        values = {"name": f"Account {i}", "telephone1": "+420 555 0100", "revenue": 1000 + i}
    return NewTransaction(entity, TransactionOperation.UPDATE, {"values": values, "changed": sorted(values)[:1]}, rid)


async def seed(db: Database, n: int, *, errors: Iterable[int] = (), archived: Iterable[int] = (),
               processed: Iterable[int] = ()) -> list[int]:
    ids = await repos.enqueue_transactions(
        db, PROFILE, [new_tx(i, "contact" if i % 3 == 0 else "account") for i in range(n)]
    )
    for i in errors:
        await repos.mark_error(db, ids[i], f"400 Bad Request: record {i} was rejected\nplugin trace line 2")
    if archived:
        await repos.set_transaction_status(db, PROFILE, [ids[i] for i in archived], TransactionStatus.ARCHIVED)
    if processed:
        await repos.mark_processed(db, [ids[i] for i in processed])
    return ids


def run_detached(coro):  # type: ignore[no-untyped-def]
    """Run ``coro`` on a private loop, leaving the current event loop (the test's qasync loop) alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def open_test_store(tmp_path: Path) -> Iterator[Database]:
    """A migrated store with the profile saved (for ``yield from`` in fixtures)."""
    database = open_store(tmp_path / "store.sqlite3", tmp_path / "backups")
    run_detached(repos.save_profile(database, ConnectionProfile(name=PROFILE)))
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    yield from open_test_store(tmp_path)


@pytest.fixture
def queue(db: Database) -> TransactionQueue:
    return AllStatusesQueue(StoreQueue(db))


async def until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def test_all_statuses_queue_merges_keyset_pages(qloop, db: Database, queue: TransactionQueue) -> None:  # type: ignore[no-untyped-def]
    ids = qloop.run_until_complete(seed(db, 23, errors=range(0, 23, 4), archived=[1, 2], processed=[5, 6, 7]))
    seen: list[int] = []
    after = None
    while True:
        page = qloop.run_until_complete(queue.list(None, after, 5, True))
        seen += [t.id for t in page.items]
        after = page.next_after_id
        if after is None:
            break
    assert seen == sorted(ids, reverse=True)
    oldest = qloop.run_until_complete(queue.list(None, None, 30, False))
    assert [t.id for t in oldest.items] == ids and oldest.next_after_id is None
    errors = qloop.run_until_complete(queue.list(TransactionStatus.ERROR, None, 100, True))
    assert {t.status for t in errors.items} == {TransactionStatus.ERROR} and len(errors.items) == 6


def test_model_pages_lazily_and_passes_the_model_tester(qtmodeltester, qloop, db: Database,  # type: ignore[no-untyped-def]
                                                         queue: TransactionQueue) -> None:
    qloop.run_until_complete(seed(db, 130))
    model = TransactionsTableModel(queue, page_size=50)
    model.set_status(TransactionStatus.PENDING)
    qloop.run_until_complete(until(lambda: model.rowCount() == 50 and not model.loading))
    assert model.canFetchMore()
    assert model.data(model.index(0, 0)) == str(model.transaction(0).id)
    assert model.transaction(0).id > model.transaction(1).id  # newest first
    model.fetchMore()
    qloop.run_until_complete(until(lambda: model.rowCount() == 100 and not model.loading))
    model.fetchMore()
    qloop.run_until_complete(until(lambda: model.rowCount() == 130 and not model.loading))
    assert not model.canFetchMore()
    qloop.run_until_complete(until(lambda: model.counts.get(TransactionStatus.PENDING) == 130))
    qtmodeltester.check(model, force_py=True)


def test_sort_by_id_reverses_and_other_columns_do_not_sort(qloop, db: Database, queue: TransactionQueue) -> None:  # type: ignore[no-untyped-def]
    ids = qloop.run_until_complete(seed(db, 10))
    model = TransactionsTableModel(queue)
    model.set_status(None)
    qloop.run_until_complete(until(lambda: model.rowCount() == 10 and not model.loading))
    model.sort(TransactionsTableModel.COL_CREATED, Qt.SortOrder.AscendingOrder)
    qloop.run_until_complete(until(lambda: model.rowCount() == 10 and not model.loading))
    assert [model.transaction(r).id for r in range(10)] == ids
    model.sort(TransactionsTableModel.COL_ENTITY, Qt.SortOrder.DescendingOrder)
    assert not model.loading and model.transaction(0).id == ids[0]


def test_search_scans_pages_for_entity_id_and_name(qloop, db: Database, queue: TransactionQueue) -> None:  # type: ignore[no-untyped-def]
    ids = qloop.run_until_complete(seed(db, 60))
    model = TransactionsTableModel(queue, page_size=10)
    model.SEARCH_PAGE_SIZE = 7  # force a scan over several pages
    model.set_status(TransactionStatus.PENDING)
    qloop.run_until_complete(until(lambda: model.rowCount() == 10 and not model.loading))
    model.set_search("contact")
    qloop.run_until_complete(until(lambda: not model.loading and model.rowCount() >= 10))
    assert {model.transaction(r).entity for r in range(model.rowCount())} == {"contact"}
    model.set_search("Account 41")
    qloop.run_until_complete(until(lambda: not model.loading and model.exhausted))
    assert [model.transaction(r).id for r in range(model.rowCount())] == [ids[41]]
    model.set_search("0000002a-")  # record id 42
    qloop.run_until_complete(until(lambda: not model.loading and model.exhausted))
    assert [model.transaction(r).id for r in range(model.rowCount())] == [ids[42]]
    model.set_search(f"#{ids[7]}")
    qloop.run_until_complete(until(lambda: not model.loading and model.exhausted))
    assert model.rowCount() == 1 and model.scanned == 60


def test_record_label_and_payload_rows(qloop, db: Database, queue: TransactionQueue) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(seed(db, 4))
    page = qloop.run_until_complete(queue.list(TransactionStatus.PENDING, None, 10, False))
    account, contact = page.items[1], page.items[0]
    assert record_label(account) == "Account 1 (00000001…)"
    assert record_label(contact).startswith("Ana Novak 0 (")
    rows = payload_rows(account)
    assert rows[0] == ("name", "Account 1", True)  # the changed field first
    assert ("telephone1", "+420 555 0100", False) in rows


def test_a_failing_queue_reports_and_stops_fetching(qloop, qtbot) -> None:  # type: ignore[no-untyped-def]
    from crmsync_desktop.errors import StoreError

    class Broken:
        async def list(self, *args: object) -> TransactionPage:
            raise StoreError("The database is locked by another program.")

        async def counts(self) -> Mapping[TransactionStatus, int]:
            return dict.fromkeys(TransactionStatus, 0)

    model = TransactionsTableModel(Broken())  # type: ignore[arg-type]
    failures: list[BaseException] = []
    model.load_failed.connect(failures.append)
    model.reload()
    qloop.run_until_complete(until(lambda: bool(failures)))
    assert isinstance(failures[0], StoreError)
    assert not model.loading and not model.canFetchMore()
