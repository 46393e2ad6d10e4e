"""Write ``schema-<revision>.db``: a database as a released crmsync left it, for upgrade tests.

Run once at the commit that ships a schema revision (``python -m tests.store.data.make_golden``)
and commit the file; never regenerate an old one, since its point is to be what users have on disk.
The ``.db`` suffix keeps it clear of the ``*.sqlite3`` ignore rule.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from crmsync_desktop.domain import (
    AuthKind,
    EntityConfig,
    ProfileConfig,
    RunStatus,
    RunTrigger,
    ScheduleConfig,
    TransactionOperation,
)
from crmsync_desktop.store import NewTransaction, RecordState, RunLogLine, SyncState, open_store
from crmsync_desktop.store.migrate import head_revision
from crmsync_desktop.store.repos import (
    append_log_lines,
    enqueue_transactions,
    finish_run,
    mark_error,
    put_sync_state,
    replace_profile_config,
    start_run,
    upsert_record_states,
)
from tests.store.conftest import PROFILE, sample_profile

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
GOLDEN_CERTIFICATE = "/etc/crmsync/contoso-sync.pfx"


async def _fill(path: Path, backups: Path) -> None:
    with open_store(path, backups) as db:
        await replace_profile_config(
            db,
            ProfileConfig(
                profile=replace(  # certificate sign-in: from 0005
                    sample_profile(), server_auth_kind=AuthKind.CERTIFICATE, certificate_path=GOLDEN_CERTIFICATE
                ),
                entities=(EntityConfig("account", fields=("name",)), EntityConfig("contact", enabled=False)),
                schedule=ScheduleConfig(interval_minutes=30, daily_at="06:30"),  # daily_at: from 0004
            ),
        )
        ids = await enqueue_transactions(
            db,
            PROFILE,
            [
                NewTransaction("account", TransactionOperation.UPDATE, {"name": f"A{i}"}, f"rec-{i}")
                for i in range(3)
            ],
        )
        await mark_error(db, ids[0], "400: rejected")
        await put_sync_state(db, PROFILE, SyncState("account", token="delta-42", strategy="change_tracking"))
        await upsert_record_states(db, PROFILE, "account", [RecordState("rec-0", T0, "1", "2", "h0")])
        run = await start_run(db, PROFILE, RunTrigger.SCHEDULE, started_at=T0)
        await append_log_lines(db, run.id, [RunLogLine(T0, "INFO", "started")])
        await finish_run(db, run.id, RunStatus.SUCCEEDED, counts={"account": {"uploaded": 2}}, ended_at=T0)


def main() -> Path:
    target = Path(__file__).with_name(f"schema-{head_revision()}.db")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "crmsync.sqlite3"
        asyncio.run(_fill(work, Path(tmp) / "backups"))
        with closing(sqlite3.connect(work)) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            conn.execute("VACUUM")
        shutil.copyfile(work, target)
    return target


if __name__ == "__main__":
    print(main())
