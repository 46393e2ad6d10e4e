"""Crash safety, in real processes killed without any clean-up.

A committed offline transaction must survive the app dying right after ``enqueue_transaction``
returns; a write killed before its commit must leave no trace and no lock behind.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crmsync_desktop.domain import TransactionOperation, TransactionStatus
from crmsync_desktop.store import Database, NewTransaction, open_database
from crmsync_desktop.store.repos import (
    count_transactions,
    enqueue_transaction,
    get_profile,
    get_transaction,
    list_profiles,
)

COMMITTED_THEN_DIE = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from crmsync_desktop.domain import TransactionOperation
    from crmsync_desktop.store import NewTransaction, open_database
    from crmsync_desktop.store.repos import enqueue_transaction

    db = open_database(sys.argv[1])

    async def main():
        tx = await enqueue_transaction(
            db, "Contoso", NewTransaction("account", TransactionOperation.CREATE, {"name": "Survivor"}, "rec-1")
        )
        print(tx, flush=True)
        if sys.argv[2] == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(0)

    asyncio.run(main())
    """
)

DIE_BEFORE_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    from crmsync_desktop.domain import TransactionOperation, TransactionStatus
    from crmsync_desktop.store import open_database
    from crmsync_desktop.store.models import ConnectionProfileModel, OfflineTransactionModel
    from sqlalchemy import select

    db = open_database(sys.argv[1])

    def work(session):
        profile = session.scalars(select(ConnectionProfileModel)).one()
        profile.name = "Renamed"
        for i in range(1000):
            session.add(OfflineTransactionModel(
                profile_id=profile.id, entity="account", record_id=f"rec-{i}",
                operation=TransactionOperation.UPDATE, payload={"i": i}, status=TransactionStatus.PENDING,
            ))
        session.flush()  # the rows are written to the database file's WAL, not committed
        print("flushed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    db.run_sync(work)
    """
)

needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("death", [pytest.param("sigkill", marks=needs_sigkill), "os_exit"])
def test_a_committed_transaction_survives_a_crash(
    db: Database, db_path: Path, profile: str, death: str
) -> None:
    db.close()
    result = _run(COMMITTED_THEN_DIE, str(db_path), death)
    assert result.returncode == (-signal.SIGKILL if death == "sigkill" else 0), result.stderr
    tx_id = int(result.stdout.strip())

    with open_database(db_path) as reopened:
        tx = asyncio.run(get_transaction(reopened, profile, tx_id))
    assert tx is not None
    assert (tx.status, tx.entity, tx.record_id, tx.payload) == (
        TransactionStatus.PENDING,
        "account",
        "rec-1",
        {"name": "Survivor"},
    )


@needs_sigkill
def test_a_write_killed_before_commit_leaves_no_trace(db: Database, db_path: Path, profile: str) -> None:
    db.close()
    result = _run(DIE_BEFORE_COMMIT, str(db_path))
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout.strip() == "flushed"

    async def check(reopened: Database) -> None:
        assert [p.name for p in await list_profiles(reopened)] == [profile]
        assert sum((await count_transactions(reopened, profile)).values()) == 0
        # No lock left behind: the next write goes through at once.
        await enqueue_transaction(reopened, profile, NewTransaction("account", TransactionOperation.DELETE))
        assert (await count_transactions(reopened, profile))[TransactionStatus.PENDING] == 1
        assert (await get_profile(reopened, profile)).name == profile

    with open_database(db_path) as reopened:
        asyncio.run(check(reopened))
