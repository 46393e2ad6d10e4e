"""Job runs and their log lines: start, finish, list, interrupted runs, pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmsync_desktop.domain import RunStatus, RunTrigger
from crmsync_desktop.store import Database, RunLogLine
from crmsync_desktop.store.repos import (
    append_log_lines,
    fail_interrupted_runs,
    finish_run,
    get_run,
    list_log_lines,
    list_runs,
    prune_runs,
    save_profile,
    start_run,
)
from tests.store.conftest import sample_profile

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.asyncio
async def test_start_and_finish_a_run(db: Database, profile: str) -> None:
    run = await start_run(db, profile, RunTrigger.MANUAL, started_at=T0)
    assert (run.profile, run.trigger, run.status, run.started_at, run.ended_at, run.counts, run.error) == (
        profile,
        RunTrigger.MANUAL,
        RunStatus.RUNNING,
        T0,
        None,
        {},
        None,
    )
    counts = {"account": {"downloaded": 120, "uploaded": 3}, "contact": {"downloaded": 0}}
    done = await finish_run(
        db, run.id, RunStatus.SUCCEEDED, counts=counts, ended_at=T0 + timedelta(minutes=2)
    )
    assert done.status is RunStatus.SUCCEEDED and done.counts == counts
    assert done.ended_at == T0 + timedelta(minutes=2)
    assert await get_run(db, run.id) == done
    assert await get_run(db, 999) is None
    with pytest.raises(LookupError):
        await finish_run(db, 999, RunStatus.FAILED)


@pytest.mark.asyncio
async def test_log_lines_in_order_with_paging(db: Database, profile: str) -> None:
    run = await start_run(db, profile, RunTrigger.SCHEDULE)
    lines = [
        RunLogLine(
            at=T0 + timedelta(seconds=i),
            level="INFO" if i % 10 else "WARNING",
            message=f"step {i}",
            entity="account" if i % 2 else None,
        )
        for i in range(250)
    ]
    await append_log_lines(db, run.id, lines[:100])
    await append_log_lines(db, run.id, lines[100:])
    await append_log_lines(db, run.id, [])
    first = await list_log_lines(db, run.id, limit=200)
    rest = await list_log_lines(db, run.id, after_id=first[-1].id)
    got = first + rest
    assert [(line.at, line.level, line.message, line.entity) for line in got] == [
        (line.at, line.level, line.message, line.entity) for line in lines
    ]
    assert all(line.id is not None for line in got)


@pytest.mark.asyncio
async def test_list_runs_newest_first_by_profile_and_paged(db: Database, profile: str) -> None:
    await save_profile(db, sample_profile("Other"))
    mine = [await start_run(db, profile, RunTrigger.MANUAL) for _ in range(5)]
    theirs = await start_run(db, "Other", RunTrigger.CLI)
    assert [r.id for r in await list_runs(db, profile)] == [r.id for r in reversed(mine)]
    assert (await list_runs(db))[0].id == theirs.id
    page = await list_runs(db, profile, before_id=mine[2].id, limit=10)
    assert [r.id for r in page] == [mine[1].id, mine[0].id]


@pytest.mark.asyncio
async def test_runs_left_running_by_a_crash_are_failed_at_start_up(db: Database, profile: str) -> None:
    left = await start_run(db, profile, RunTrigger.SCHEDULE)
    finished = await start_run(db, profile, RunTrigger.MANUAL)
    await finish_run(db, finished.id, RunStatus.CANCELLED)
    assert await fail_interrupted_runs(db) == 1
    run = await get_run(db, left.id)
    assert run is not None and run.status is RunStatus.FAILED and "interrupted" in (run.error or "")
    assert run.ended_at is not None
    assert (await get_run(db, finished.id)).status is RunStatus.CANCELLED  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_prune_keeps_recent_runs_and_the_last_of_each_profile(db: Database, profile: str) -> None:
    await save_profile(db, sample_profile("Other"))
    old = [
        await start_run(db, profile, RunTrigger.SCHEDULE, started_at=T0 - timedelta(days=200 - i))
        for i in range(3)
    ]
    recent = await start_run(db, profile, RunTrigger.SCHEDULE, started_at=T0)
    other_old = await start_run(db, "Other", RunTrigger.SCHEDULE, started_at=T0 - timedelta(days=300))
    await append_log_lines(db, old[0].id, [RunLogLine(at=T0, level="INFO", message="x")])

    assert await prune_runs(db, older_than=T0 - timedelta(days=180), keep_last=1) == 3
    assert [r.id for r in await list_runs(db)] == [other_old.id, recent.id]
    assert await list_log_lines(db, old[0].id) == []
