"""What one upload pass did, kept in memory and stored as a run only when there was something to say.

Capture runs every few seconds; a run per tick would bury the run history. ``UploadLog``
collects counters and log lines and ``store`` turns a non-empty pass into one "upload" run
(counts per entity, log lines, status) through the engine's ``RunRecorder``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from crmsync_desktop.domain import RunStatus, RunTrigger
from crmsync_desktop.store.db import Database
from crmsync_desktop.sync.events import EventBus
from crmsync_desktop.sync.run_recorder import RunRecorder

__all__ = ["RUN_KIND", "UploadLog"]

RUN_KIND = "upload"


@dataclass(frozen=True, slots=True)
class _Line:
    level: str
    message: str
    entity: str | None


class UploadLog:
    """Counters per entity and log lines of one pass (capture and/or delivery)."""

    def __init__(self) -> None:
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.lines: list[_Line] = []

    def count(self, entity: str, counter: str, n: int = 1) -> None:
        if n:
            self.counts[entity][counter] += n

    def info(self, message: str, entity: str | None = None) -> None:
        self.lines.append(_Line("INFO", message, entity))

    def warning(self, message: str, entity: str | None = None) -> None:
        self.lines.append(_Line("WARNING", message, entity))

    def error(self, message: str, entity: str | None = None) -> None:
        self.lines.append(_Line("ERROR", message, entity))

    @property
    def empty(self) -> bool:
        return not self.lines and not any(self.counts.values())

    def total(self, counter: str) -> int:
        return sum(c[counter] for c in self.counts.values())

    async def store(self, db: Database, bus: EventBus, profile: str, trigger: RunTrigger) -> int | None:
        """Record the pass as an "upload" run if anything happened; returns the run id or None."""
        if self.empty:
            return None
        recorder = await RunRecorder(db, bus, profile, RUN_KIND).start(trigger)
        for line in self.lines:
            recorder.line(line.level, line.message, line.entity)
        for entity, counter in self.counts.items():
            for name, n in counter.items():
                recorder.count(entity, name, n)
        status = RunStatus.SUCCEEDED if recorder.errors == 0 else RunStatus.FAILED
        await recorder.finish(status, None if status is RunStatus.SUCCEEDED else f"{recorder.errors} error(s)")
        self.counts.clear()
        self.lines.clear()
        return recorder.run_id
