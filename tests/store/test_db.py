"""Database: pragmas, the single writer, transactions, plain-data rule, corruption handling."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from crmsync_desktop.errors import StoreCorruptError, StoreError
from crmsync_desktop.store import Database, open_database, upgrade
from crmsync_desktop.store.models import ConnectionProfileModel
from crmsync_desktop.store.repos import list_profiles, save_profile
from tests.store.conftest import sample_profile


def _pragmas(session: Session) -> dict[str, object]:
    conn = session.connection()
    return {
        name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
        for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
    }


EXPECTED_PRAGMAS = {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 5000}


def test_every_connection_gets_the_pragmas(db: Database) -> None:
    assert db.run_sync(_pragmas) == EXPECTED_PRAGMAS
    assert db.read_sync(_pragmas) == EXPECTED_PRAGMAS


@pytest.mark.asyncio
async def test_async_reads_and_writes_get_the_pragmas(db: Database) -> None:
    assert await db.run(_pragmas) == EXPECTED_PRAGMAS
    assert await db.read(_pragmas) == EXPECTED_PRAGMAS


@pytest.mark.asyncio
async def test_writes_run_one_at_a_time_on_one_thread_in_order(db: Database) -> None:
    seen: list[tuple[int, str]] = []
    active = 0
    overlap = False

    def write(i: int) -> int:
        def work(session: Session) -> int:
            nonlocal active, overlap
            active += 1
            overlap = overlap or active > 1
            session.add(ConnectionProfileModel(**_profile_row(f"p{i:03}")))
            session.flush()
            seen.append((i, threading.current_thread().name))
            active -= 1
            return i

        return work  # type: ignore[return-value]

    results = await asyncio.gather(*(db.run(write(i)) for i in range(50)))
    assert results == list(range(50))
    assert not overlap
    assert [i for i, _ in seen] == list(range(50))  # submission order
    assert len({name for _, name in seen}) == 1
    assert seen[0][1].startswith("crmsync-db-writer")
    assert len(await list_profiles(db)) == 50


def _profile_row(name: str) -> dict[str, object]:
    p = sample_profile(name)
    return {
        "name": p.name,
        "server_kind": p.server_kind,
        "server_auth_kind": p.server_auth_kind,
        "state": p.state,
    }


@pytest.mark.asyncio
async def test_a_failing_write_is_rolled_back(db: Database) -> None:
    def work(session: Session) -> None:
        session.add(ConnectionProfileModel(**_profile_row("doomed")))
        session.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await db.run(work)
    assert await list_profiles(db) == []


@pytest.mark.asyncio
async def test_readers_see_committed_data_only(db: Database) -> None:
    await save_profile(db, sample_profile("A"))
    count = await db.read(lambda s: s.scalar(select(func.count()).select_from(ConnectionProfileModel)))
    assert count == 1


def test_returning_an_orm_object_is_refused(db: Database) -> None:
    db.run_sync(lambda s: s.add(ConnectionProfileModel(**_profile_row("x"))))
    with pytest.raises(TypeError, match="ORM object"):
        db.read_sync(lambda s: s.scalars(select(ConnectionProfileModel)).first())


def test_run_sync_inside_a_write_is_refused_instead_of_deadlocking(db: Database) -> None:
    with pytest.raises(RuntimeError, match="inside a write"):
        db.run_sync(lambda s: db.run_sync(lambda inner: None))


def test_a_closed_database_refuses_work(db: Database) -> None:
    db.close()
    assert db.closed
    with pytest.raises(StoreError, match="closed"):
        db.run_sync(lambda s: None)
    db.close()  # idempotent


def test_close_folds_the_wal_back_into_the_file(db: Database, db_path: Path) -> None:
    db.run_sync(lambda s: s.add(ConnectionProfileModel(**_profile_row("x"))))
    db.close()
    wal = Path(f"{db_path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_sqlite_failures_become_store_errors(db: Database) -> None:
    with pytest.raises(StoreError, match="failed"):
        db.run_sync(lambda s: s.execute(text("SELECT * FROM no_such_table")))


def test_open_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "crmsync.sqlite3"
    with open_database(path) as database:
        assert (
            database.read_sync(lambda s: s.connection().exec_driver_sql("PRAGMA journal_mode").scalar())
            == "wal"
        )
    assert path.exists()


@pytest.mark.parametrize("opener", ["open_database", "upgrade"])
def test_a_corrupt_file_is_moved_aside_never_deleted(tmp_path: Path, opener: str) -> None:
    path = tmp_path / "crmsync.sqlite3"
    garbage = b"this is not a database, but it may be someone's only copy" * 100
    path.write_bytes(garbage)
    Path(f"{path}-wal").write_bytes(b"wal bytes")

    with pytest.raises(StoreCorruptError) as caught:
        if opener == "open_database":
            open_database(path)
        else:
            upgrade(path, tmp_path / "backups")

    moved = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    main = [p for p in moved if not p.name.endswith("-wal")]
    assert len(main) == 1 and main[0].read_bytes() == garbage
    assert Path(f"{main[0]}-wal").read_bytes() == b"wal bytes"
    assert not path.exists()
    message = str(caught.value)
    assert str(main[0]) in message and "offline transactions" in message and "Start crmsync again" in message
    assert caught.value.title == "Local database is damaged"

    # The next start gets a fresh, working database.
    upgrade(path, tmp_path / "backups")
    with open_database(path) as database:
        assert asyncio.run(list_profiles(database)) == []


def test_a_damaged_page_is_reported_as_corruption_not_as_a_generic_failure(tmp_path: Path) -> None:
    path = tmp_path / "crmsync.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(200)])
    conn.close()
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 4] = b"\xff" * (4096 * 2)  # trash a few table pages, keep the header
    path.write_bytes(bytes(data))

    database = open_database(path)  # the schema page is intact: opening works
    try:
        with pytest.raises(StoreCorruptError, match="backups folder"):
            database.read_sync(
                lambda s: s.connection().exec_driver_sql("SELECT count(*), max(x) FROM t").all()
            )
    finally:
        database.close()
