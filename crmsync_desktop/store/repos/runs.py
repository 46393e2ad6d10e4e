"""Job runs (the history view) and their log lines.

A run is started before any work and finished with its outcome, so a crash leaves it "running";
``fail_interrupted_runs`` closes those at start-up. ``prune_runs`` applies the history retention
and always keeps the most recent runs of each profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.orm import Session

from crmsync_desktop.domain import RunStatus, RunTrigger
from crmsync_desktop.store.coltypes import utcnow
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.models import ConnectionProfileModel, JobRunModel, RunLogLineModel
from crmsync_desktop.store.repos._common import WRITE_CHUNK, chunked, profile_id
from crmsync_desktop.store.values import JobRun, RunLogLine

__all__ = [
    "append_log_lines",
    "fail_interrupted_runs",
    "finish_run",
    "get_run",
    "list_log_lines",
    "list_runs",
    "prune_runs",
    "start_run",
]

_J = JobRunModel.__table__
_L = RunLogLineModel.__table__
_P = ConnectionProfileModel.__table__

INTERRUPTED = "The run was interrupted: crmsync stopped before it finished."


def _runs_query() -> Any:
    return select(_J, _P.c.name.label("profile_name")).join(_P, _P.c.id == _J.c.profile_id)


def _to_run(row: Row[Any]) -> JobRun:
    return JobRun(
        id=row.id,
        profile=row.profile_name,
        trigger=row.trigger,
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        counts=row.counts,
        error=row.error,
    )


def _load_run(session: Session, run_id: int) -> JobRun | None:
    row = session.execute(_runs_query().where(_J.c.id == run_id)).first()
    return None if row is None else _to_run(row)


async def start_run(
    db: Database, profile: str, trigger: RunTrigger, *, started_at: datetime | None = None
) -> JobRun:
    """Record that a run of ``profile`` started (status running)."""

    def work(session: Session) -> JobRun:
        now = utcnow()
        run_id = session.execute(
            insert(_J)
            .values(
                profile_id=profile_id(session, profile),
                trigger=trigger,
                status=RunStatus.RUNNING,
                started_at=started_at or now,
                counts={},
                created_at=now,
                updated_at=now,
            )
            .returning(_J.c.id)
        ).scalar_one()
        run = _load_run(session, run_id)
        assert run is not None
        return run

    return await db.run(work)


async def finish_run(
    db: Database,
    run_id: int,
    status: RunStatus,
    *,
    counts: Mapping[str, Mapping[str, int]] | None = None,
    error: str | None = None,
    ended_at: datetime | None = None,
) -> JobRun:
    """Record how a run ended, with its counters per entity; raises ``LookupError`` for an unknown run."""

    def work(session: Session) -> JobRun:
        values: dict[str, Any] = {"status": status, "ended_at": ended_at or utcnow(), "error": error}
        if counts is not None:
            values["counts"] = {entity: dict(c) for entity, c in counts.items()}
        session.execute(update(_J).where(_J.c.id == run_id).values(updated_at=utcnow(), **values))
        run = _load_run(session, run_id)
        if run is None:
            raise LookupError(f"no job run {run_id}")
        return run

    return await db.run(work)


async def get_run(db: Database, run_id: int) -> JobRun | None:
    """One run, or None."""
    return await db.read(lambda s: _load_run(s, run_id))


async def list_runs(
    db: Database, profile: str | None = None, *, before_id: int | None = None, limit: int = 50
) -> list[JobRun]:
    """Recent runs, newest first, of one profile or all; page with ``before_id`` (the last id seen)."""

    def work(session: Session) -> list[JobRun]:
        query = _runs_query()
        if profile is not None:
            query = query.where(_J.c.profile_id == profile_id(session, profile))
        if before_id is not None:
            query = query.where(_J.c.id < before_id)
        rows = session.execute(query.order_by(_J.c.id.desc()).limit(limit))
        return [_to_run(row) for row in rows]

    return await db.read(work)


async def append_log_lines(db: Database, run_id: int, lines: Sequence[RunLogLine]) -> None:
    """Add log lines to a run, in the given order (one transaction, batched)."""

    def work(session: Session) -> None:
        for batch in chunked(lines, WRITE_CHUNK):
            rows = [
                {
                    "run_id": run_id,
                    "at": line.at,
                    "level": line.level,
                    "entity": line.entity,
                    "message": line.message,
                }
                for line in batch
            ]
            session.execute(insert(_L), rows)

    if lines:
        await db.run(work)


async def list_log_lines(
    db: Database, run_id: int, *, after_id: int | None = None, limit: int = 1000
) -> list[RunLogLine]:
    """A run's log lines in order; pass the last ``id`` seen as ``after_id`` for the next page."""

    def work(session: Session) -> list[RunLogLine]:
        query = select(_L).where(_L.c.run_id == run_id)
        if after_id is not None:
            query = query.where(_L.c.id > after_id)
        rows = session.execute(query.order_by(_L.c.id).limit(limit))
        return [
            RunLogLine(at=row.at, level=row.level, message=row.message, entity=row.entity, id=row.id)
            for row in rows
        ]

    return await db.read(work)


async def fail_interrupted_runs(db: Database, *, message: str = INTERRUPTED) -> int:
    """Mark runs left "running" by a crash or a kill as failed; call at start-up. Returns how many."""

    def work(session: Session) -> int:
        now = utcnow()
        result = session.execute(
            update(_J)
            .where(_J.c.status == RunStatus.RUNNING)
            .values(status=RunStatus.FAILED, ended_at=now, error=message, updated_at=now)
        )
        return result.rowcount

    return await db.run(work)


async def prune_runs(db: Database, *, older_than: datetime, keep_last: int = 1) -> int:
    """Delete runs (and their log) started before ``older_than``, keeping each profile's last
    ``keep_last`` runs whatever their age. Returns how many runs were deleted."""

    def work(session: Session) -> int:
        ranked = select(
            _J.c.id,
            func.row_number().over(partition_by=_J.c.profile_id, order_by=_J.c.id.desc()).label("rank"),
        ).subquery()
        keep = select(ranked.c.id).where(ranked.c.rank <= keep_last)
        result = session.execute(delete(_J).where(_J.c.started_at < older_than, _J.c.id.not_in(keep)))
        return result.rowcount

    return await db.run(work)
