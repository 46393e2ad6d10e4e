"""One run's record: counters per entity, log lines an admin can read, and its final status.

Counters and log lines are buffered in memory and written with each checkpoint (and at the end),
so a run costs no extra database round trips per record; a crash loses at most the lines since
the last checkpoint, never synced data. Interrupted runs are marked as such at the next start.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from crmsync_desktop.domain import RunStatus, RunTrigger
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.values import RunLogLine
from crmsync_desktop.sync.events import EventBus, LogEmitted, Progress, RunFinished, RunStarted

log = logging.getLogger(__name__)

COUNTERS = ("read", "created", "updated", "unchanged", "deleted", "skipped", "failed", "throttle_waits")
PROGRESS_INTERVAL_S = 0.25


class RunRecorder:
    """Collects what a run did and persists it; publishes progress and log events."""

    def __init__(self, db: Database, bus: EventBus, profile: str, kind: str) -> None:
        self._db = db
        self._bus = bus
        self.profile = profile
        self.kind = kind
        self.run_id = 0
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self._pending_lines: list[RunLogLine] = []
        self._last_progress = 0.0
        self._phase_started: dict[tuple[str, str], float] = {}
        self.errors = 0

    async def start(self, trigger: RunTrigger) -> RunRecorder:
        run = await repos.start_run(self._db, self.profile, trigger)
        self.run_id = run.id
        self._bus.publish(RunStarted(self.profile, self.run_id, self.kind))
        return self

    def count(self, entity: str, counter: str, n: int = 1) -> None:
        if n:
            self.counts[entity][counter] += n

    def line(self, level: str, message: str, entity: str | None = None) -> None:
        """Add a line to the run's log (stored at the next flush) and tell listeners now."""
        if level in ("ERROR", "CRITICAL"):
            self.errors += 1
        self._pending_lines.append(RunLogLine(at=datetime.now(UTC), level=level, message=message, entity=entity))
        log.log(logging.getLevelName(level), "[%s] %s%s", self.profile, f"{entity}: " if entity else "", message)
        self._bus.publish(LogEmitted(self.profile, self.run_id, level, message, entity))

    def info(self, message: str, entity: str | None = None) -> None:
        self.line("INFO", message, entity)

    def warning(self, message: str, entity: str | None = None) -> None:
        self.line("WARNING", message, entity)

    def error(self, message: str, entity: str | None = None) -> None:
        self.line("ERROR", message, entity)

    def progress(self, entity: str, phase: str, done: int, total: int | None = None, *, force: bool = False) -> None:
        """Publish progress at most every 250 ms per run (and always when ``force``)."""
        now = time.monotonic()
        started = self._phase_started.setdefault((entity, phase), now)
        if not force and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        elapsed = now - started
        rate = done / elapsed if elapsed > 0 and done else None
        eta = (total - done) / rate if rate and total is not None and total >= done else None
        self._bus.publish(Progress(self.profile, self.run_id, entity, phase, done, total, rate, eta))

    async def flush(self) -> None:
        if self._pending_lines:
            lines, self._pending_lines = self._pending_lines, []
            await repos.append_log_lines(self._db, self.run_id, lines)

    def counts_snapshot(self) -> Mapping[str, Mapping[str, int]]:
        return {entity: dict(c) for entity, c in self.counts.items() if c}

    def summary(self) -> str:
        totals: collections.Counter[str] = collections.Counter()
        for c in self.counts.values():
            totals.update(c)
        parts = [f"{totals[k]} {k}" for k in COUNTERS if totals[k]]
        return ", ".join(parts) if parts else "nothing to do"

    async def finish(self, status: RunStatus, error: str | None = None) -> None:
        await self.flush()
        await repos.finish_run(self._db, self.run_id, status, counts=self.counts_snapshot(), error=error)
        self._bus.publish(RunFinished(self.profile, self.run_id, self.kind, status.value, self.summary(), error))
