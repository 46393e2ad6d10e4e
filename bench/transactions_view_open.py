"""How fast the Offline Transactions view opens over a big queue: constructor to first rows shown.

Usage: python bench/transactions_view_open.py [--rows 1000000] [--errors 0.02] [--page-size 500] [--keep DIR]
Fills a fresh store with ``--rows`` offline transactions (about ``--errors`` of them in Error, the
rest spread over Pending/Processed/Archived) with batched Core inserts, then opens the view
(offscreen Qt, qasync loop) on the Error tab and on the All tab and prints, for each, the time from
the constructor to the first rows painted, and the time to scroll through 20 more pages.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from crmsync_desktop.domain import ConnectionProfile, TransactionOperation, TransactionStatus
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.store.models import OfflineTransactionModel
from crmsync_desktop.store.repos._common import profile_id
from crmsync_desktop.ui.queue_protocol import AllStatusesQueue
from tests.ui.test_transactions_model import StoreQueue

PROFILE = "Contoso"
BATCH = 50_000


def fill(db: Database, rows: int, error_share: float) -> float:
    started = time.perf_counter()
    rng = random.Random(7)
    db.run_sync(lambda s: None)
    asyncio.run(repos.save_profile(db, ConnectionProfile(name=PROFILE)))
    pid = db.read_sync(lambda s: profile_id(s, PROFILE))
    base = datetime(2025, 1, 1, tzinfo=UTC)
    statuses = [TransactionStatus.PROCESSED, TransactionStatus.PENDING, TransactionStatus.ARCHIVED]
    table = OfflineTransactionModel.__table__
    for start in range(0, rows, BATCH):
        batch = []
        for i in range(start, min(rows, start + BATCH)):
            error = rng.random() < error_share
            status = TransactionStatus.ERROR if error else statuses[0 if rng.random() < 0.9 else rng.randrange(1, 3)]
            created = base + timedelta(seconds=i * 3)
            batch.append({
                "profile_id": pid, "entity": ("account", "contact", "opportunity")[i % 3],
                "record_id": f"{i:08x}-0000-4000-8000-{rng.getrandbits(48):012x}",
                "operation": TransactionOperation.UPDATE,
                "payload": {"values": {"name": f"Record {i}", "telephone1": "+420 555 0100"}, "changed": ["name"]},
                "status": status, "attempts": 3 if error else 1,
                "last_error": "400 Bad Request: a required field is missing" if error else None,
                "next_attempt_at": None,
                "processed_at": created + timedelta(seconds=2) if status is TransactionStatus.PROCESSED else None,
                "created_at": created, "updated_at": created,
            })
        db.run_sync(lambda s, b=batch: s.execute(insert(table), b))
        print(f"  {min(rows, start + BATCH):>9,} rows", end="\r", flush=True)
    return time.perf_counter() - started


def measure(db: Database, status: TransactionStatus | None, page_size: int) -> tuple[float, float, int]:
    import qasync
    from PySide6.QtWidgets import QApplication

    from crmsync_desktop.views.transactions_view import TransactionsView

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    async def run() -> tuple[float, float, int]:
        started = time.perf_counter()
        view = TransactionsView(AllStatusesQueue(StoreQueue(db, PROFILE)), None, page_size=page_size)
        if status is not TransactionStatus.ERROR:
            view.show_status(status)
        view.resize(1200, 700)
        view.show()
        while view.model.rowCount() == 0 or view.model.loading:
            await asyncio.sleep(0.001)
        app.processEvents()  # the first rows are painted
        opened = time.perf_counter() - started
        scroll_started = time.perf_counter()
        bar = view.table.verticalScrollBar()
        for _ in range(20):
            bar.setValue(bar.maximum())
            while view.model.loading:
                await asyncio.sleep(0.001)
            app.processEvents()
        scrolled = time.perf_counter() - scroll_started
        shown = view.model.rowCount()
        view.close()
        view.deleteLater()
        return opened, scrolled, shown

    try:
        return loop.run_until_complete(run())
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        asyncio.set_event_loop(None)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--errors", type=float, default=0.02)
    p.add_argument("--page-size", type=int, default=500)
    p.add_argument("--keep", type=Path, help="store folder to reuse (filled on first use)")
    args = p.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="crmsync-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    fresh = not (folder / "store.sqlite3").exists()
    db = open_store(folder / "store.sqlite3", folder / "backups")
    try:
        if fresh:
            print(f"Filling {args.rows:,} offline transactions into {folder} …")
            print(f"filled in {fill(db, args.rows, args.errors):.1f} s              ")
        counts = asyncio.run(repos.count_transactions(db, PROFILE))
        print("queue:", ", ".join(f"{s.value} {n:,}" for s, n in counts.items()), f"(total {sum(counts.values()):,})")
        for status in (TransactionStatus.ERROR, None, TransactionStatus.PROCESSED):
            opened, scrolled, shown = measure(db, status, args.page_size)
            name = status.value if status else "All"
            print(f"{name} tab: first rows shown {opened * 1000:7.1f} ms after the constructor; "
                  f"20 more pages by scrolling {scrolled * 1000:7.1f} ms ({shown:,} rows loaded)")
    finally:
        db.close()


if __name__ == "__main__":
    main()
