"""The scheduler: due times from the wall clock, triggers, back-off, coalescing, pause, persistence.

Time is a ``FakeClock``: ``now()`` is the wall clock, ``sleep()`` waits on a separate monotonic
counter, ``advance()`` moves both and wakes the sleepers that are due, ``suspend()`` moves only the
wall clock (what a laptop lid does). Nothing sleeps for real; ``Scheduler.drain()`` waits until
every evaluation and run started by an ``advance`` is over. The store is a real SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from crmsync_desktop.domain import ConnectionProfile, ConnectionState, RunStatus, RunTrigger, ScheduleConfig
from crmsync_desktop.store import Database, ScheduleState, open_store
from crmsync_desktop.store.repos import (
    get_schedule_state,
    put_schedule_state,
    save_profile,
    save_schedule_config,
)
from crmsync_desktop.sync.clock import SystemClock
from crmsync_desktop.sync.scheduler import (
    PAUSED_INDEFINITELY,
    CatchUp,
    ScheduleKind,
    SchedulePolicy,
    Scheduler,
    ScheduleStatus,
    backoff_delay,
    compute_status,
    describe_schedule,
    is_user_paused,
    next_daily_due,
    next_daily_slot,
    next_due,
)

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
P = "Contoso"
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


try:
    PRAGUE: ZoneInfo | None = ZoneInfo("Europe/Prague")  # CET/CEST: T0 is 11:00 local
except ZoneInfoNotFoundError:  # pragma: no cover - Windows without the tzdata package
    PRAGUE = None
needs_zones = pytest.mark.skipif(PRAGUE is None, reason="no IANA time zone database")


def local(text: str) -> datetime:
    """A Prague wall-clock time (``"2024-05-06 06:30"``, first occurrence if ambiguous) as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=PRAGUE).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- fakes --------------------------------------------------------------------------------------


class FakeClock:
    """Wall clock plus a monotonic sleep clock that only moves when the test says so."""

    def __init__(self, now: datetime = T0) -> None:
        self.wall = now
        self.mono = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.mono + seconds, future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    async def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds
        for deadline, future in list(self._sleepers):
            if deadline <= self.mono and not future.done():
                future.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)

    def suspend(self, duration: timedelta) -> None:
        """The machine sleeps: the wall clock moves on, monotonic sleeps do not."""
        self.wall += duration


@dataclass(frozen=True)
class FakeResult:
    status: RunStatus


class FakeRunner:
    """Records calls; answers with scripted statuses (or raises scripted exceptions)."""

    def __init__(self, *script: RunStatus | Exception) -> None:
        self.calls: list[tuple[str, RunTrigger]] = []
        self.script: deque[RunStatus | Exception] = deque(script)
        self.gate: asyncio.Event | None = None
        self.entered: asyncio.Event | None = None

    async def __call__(self, profile: str, *, trigger: RunTrigger) -> FakeResult:
        self.calls.append((profile, trigger))
        if self.entered is not None:
            self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        answer = self.script.popleft() if self.script else RunStatus.SUCCEEDED
        if isinstance(answer, Exception):
            raise answer
        return FakeResult(answer)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def db_paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "data" / "crmsync.sqlite3", tmp_path / "data" / "backups"


@pytest.fixture
def db(db_paths: tuple[Path, Path]) -> Iterator[Database]:
    database = open_store(*db_paths)
    asyncio.run(save_profile(database, ConnectionProfile(name=P, state=ConnectionState.CONNECTED)))
    try:
        yield database
    finally:
        database.close()


async def put_state(db: Database, state: ScheduleState, profile: str = P) -> None:
    await put_schedule_state(db, profile, state)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def started(scheduler: Scheduler, clock: FakeClock) -> Scheduler:
    """Start the loop and let the start-up grace delay pass (mono 30 s, wall T0 + 30 s)."""
    scheduler.start()
    await scheduler.drain()
    await clock.advance(30)
    await scheduler.drain()
    return scheduler


async def step(scheduler: Scheduler, clock: FakeClock, seconds: float) -> None:
    await clock.advance(seconds)
    await scheduler.drain()


# -- pure rules: tables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_success", "now", "interval", "catch_up", "expected"),
    [
        # never synced: due now, whatever the policy
        (None, at(0), HOUR, CatchUp.RUN_ONCE, at(0)),
        (None, at(0), HOUR, CatchUp.SKIP, at(0)),
        # on the grid, not yet due
        (at(0), at(10), HOUR, CatchUp.RUN_ONCE, at(60)),
        (at(0), at(10), HOUR, CatchUp.SKIP, at(60)),
        (at(0), at(59), 15 * MIN, CatchUp.RUN_ONCE, at(15)),
        # exactly due, and a little late (a tick is at most a minute late): due in both policies
        (at(0), at(60), HOUR, CatchUp.SKIP, at(60)),
        (at(0), at(64), HOUR, CatchUp.SKIP, at(60)),
        (at(0), at(65), HOUR, CatchUp.SKIP, at(60)),
        # missed (slept through it): run once keeps the missed slot, skip moves to the next slot
        (at(0), at(66), HOUR, CatchUp.RUN_ONCE, at(60)),
        (at(0), at(66), HOUR, CatchUp.SKIP, at(120)),
        (at(0), at(60 * 5 + 30), HOUR, CatchUp.RUN_ONCE, at(60)),
        (at(0), at(60 * 5 + 30), HOUR, CatchUp.SKIP, at(360)),
        # skip lands on a slot that has only just passed (within the tolerance): run it
        (at(0), at(60 * 5 + 3), HOUR, CatchUp.SKIP, at(300)),
        (at(0), at(60 * 24 * 3 + 1), 30 * MIN, CatchUp.SKIP, at(60 * 24 * 3)),
        # the clock was set back before the last success: due now
        (at(30), at(0), HOUR, CatchUp.RUN_ONCE, at(0)),
        (at(30), at(0), HOUR, CatchUp.SKIP, at(0)),
    ],
)
def test_next_due(
    last_success: datetime | None, now: datetime, interval: timedelta, catch_up: CatchUp, expected: datetime
) -> None:
    assert next_due(last_success, interval, now, catch_up, missed_after=5 * MIN) == expected


HH_MM = clock_time(6, 30)


@needs_zones
@pytest.mark.parametrize(
    ("last_success", "now", "daily", "catch_up", "expected"),
    [
        # never synced: due now, whatever the policy
        (None, local("2024-05-06 05:00"), HH_MM, CatchUp.RUN_ONCE, local("2024-05-06 05:00")),
        (None, local("2024-05-06 05:00"), HH_MM, CatchUp.SKIP, local("2024-05-06 05:00")),
        # before today's time: due today
        (
            local("2024-05-05 06:30:20"),
            local("2024-05-06 05:00"),
            HH_MM,
            CatchUp.RUN_ONCE,
            local("2024-05-06 06:30"),
        ),
        (
            local("2024-05-05 06:30:20"),
            local("2024-05-06 05:00"),
            HH_MM,
            CatchUp.SKIP,
            local("2024-05-06 06:30"),
        ),
        # an earlier (manual) success today does not skip today's time
        (
            local("2024-05-06 05:00"),
            local("2024-05-06 06:00"),
            HH_MM,
            CatchUp.RUN_ONCE,
            local("2024-05-06 06:30"),
        ),
        # after today's time (today's run done): due tomorrow
        (
            local("2024-05-06 06:30:20"),
            local("2024-05-06 11:00"),
            HH_MM,
            CatchUp.RUN_ONCE,
            local("2024-05-07 06:30"),
        ),
        (
            local("2024-05-06 06:30:20"),
            local("2024-05-06 11:00"),
            HH_MM,
            CatchUp.SKIP,
            local("2024-05-07 06:30"),
        ),
        # a success exactly at the time counts for that day
        (
            local("2024-05-06 06:30"),
            local("2024-05-06 06:31"),
            HH_MM,
            CatchUp.RUN_ONCE,
            local("2024-05-07 06:30"),
        ),
        # exactly due, and a little late: due in both policies
        (
            local("2024-05-05 06:30"),
            local("2024-05-06 06:30"),
            HH_MM,
            CatchUp.SKIP,
            local("2024-05-06 06:30"),
        ),
        (
            local("2024-05-05 06:30"),
            local("2024-05-06 06:35"),
            HH_MM,
            CatchUp.SKIP,
            local("2024-05-06 06:30"),
        ),
        # missed (slept through three mornings): run once keeps the first missed slot, skip waits
        (
            local("2024-05-03 06:30"),
            local("2024-05-06 11:00"),
            HH_MM,
            CatchUp.RUN_ONCE,
            local("2024-05-04 06:30"),
        ),
        (
            local("2024-05-03 06:30"),
            local("2024-05-06 11:00"),
            HH_MM,
            CatchUp.SKIP,
            local("2024-05-07 06:30"),
        ),
        (
            local("2024-05-06 06:30"),
            local("2024-05-07 06:36"),
            HH_MM,
            CatchUp.SKIP,
            local("2024-05-08 06:30"),
        ),
        # skip lands on a slot that has only just passed (within the tolerance): run it
        (
            local("2024-05-03 06:30"),
            local("2024-05-06 06:33"),
            HH_MM,
            CatchUp.SKIP,
            local("2024-05-06 06:30"),
        ),
        # the clock was set back before the last success: due now
        (
            local("2024-05-06 06:30"),
            local("2024-05-06 05:00"),
            HH_MM,
            CatchUp.RUN_ONCE,
            local("2024-05-06 05:00"),
        ),
        # midnight and the last minute of the day
        (
            local("2024-05-06 00:00"),
            local("2024-05-06 12:00"),
            clock_time(0, 0),
            CatchUp.RUN_ONCE,
            local("2024-05-07 00:00"),
        ),
        (
            local("2024-05-06 00:00"),
            local("2024-05-06 12:00"),
            clock_time(23, 59),
            CatchUp.RUN_ONCE,
            local("2024-05-06 23:59"),
        ),
        # DST starts (2024-03-31 02:00 CET -> 03:00 CEST): 06:30 stays 06:30 local, 23 h later
        (
            local("2024-03-30 06:30"),
            local("2024-03-30 12:00"),
            HH_MM,
            CatchUp.RUN_ONCE,
            utc("2024-03-31 04:30"),
        ),
        (
            local("2024-03-31 06:30"),
            local("2024-03-31 12:00"),
            HH_MM,
            CatchUp.RUN_ONCE,
            utc("2024-04-01 04:30"),
        ),
        # a time inside the skipped hour runs once that day, shifted by the gap (03:30 CEST)
        (
            local("2024-03-30 02:30"),
            local("2024-03-30 12:00"),
            clock_time(2, 30),
            CatchUp.RUN_ONCE,
            utc("2024-03-31 01:30"),
        ),
        (
            utc("2024-03-31 01:30:20"),
            local("2024-03-31 12:00"),
            clock_time(2, 30),
            CatchUp.RUN_ONCE,
            utc("2024-04-01 00:30"),
        ),
        # DST ends (2024-10-27 03:00 CEST -> 02:00 CET): 06:30 stays 06:30 local, 25 h later
        (
            local("2024-10-26 06:30"),
            local("2024-10-26 12:00"),
            HH_MM,
            CatchUp.RUN_ONCE,
            utc("2024-10-27 05:30"),
        ),
        # a time of the repeated hour runs once, at its first occurrence, not again an hour later
        (
            local("2024-10-26 02:30"),
            local("2024-10-26 12:00"),
            clock_time(2, 30),
            CatchUp.RUN_ONCE,
            utc("2024-10-27 00:30"),
        ),
        (
            utc("2024-10-27 00:30:20"),
            utc("2024-10-27 01:45"),
            clock_time(2, 30),
            CatchUp.RUN_ONCE,
            utc("2024-10-28 01:30"),
        ),
        # skip across the DST change lands on the local time too
        (local("2024-10-20 06:30"), local("2024-10-27 08:00"), HH_MM, CatchUp.SKIP, utc("2024-10-28 05:30")),
    ],
)
def test_next_daily_due(
    last_success: datetime | None, now: datetime, daily: clock_time, catch_up: CatchUp, expected: datetime
) -> None:
    due = next_daily_due(last_success, daily, now, catch_up, missed_after=5 * MIN, tz=PRAGUE)
    assert due == expected, (due.astimezone(PRAGUE), expected.astimezone(PRAGUE))


@pytest.fixture
def system_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local zone is Europe/Prague (``TZ`` plus ``time.tzset``, POSIX only)."""
    if not hasattr(time, "tzset") or PRAGUE is None:
        pytest.skip("needs time.tzset and the IANA time zone database")
    monkeypatch.setenv("TZ", "Europe/Prague")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.usefixtures("system_zone")
@pytest.mark.parametrize(
    ("after", "daily", "expected"),
    [
        (local("2024-05-06 06:31"), HH_MM, local("2024-05-07 06:30")),
        (local("2024-03-30 06:30"), HH_MM, utc("2024-03-31 04:30")),  # DST starts
        (local("2024-03-30 02:30"), clock_time(2, 30), utc("2024-03-31 01:30")),  # in the gap
        (local("2024-10-26 06:30"), HH_MM, utc("2024-10-27 05:30")),  # DST ends
        (utc("2024-10-27 00:30:20"), clock_time(2, 30), utc("2024-10-28 01:30")),  # repeated hour once
    ],
)
def test_the_machines_local_zone_is_the_default(
    after: datetime, daily: clock_time, expected: datetime
) -> None:
    assert next_daily_slot(after, daily) == expected
    assert next_daily_slot(after, daily, PRAGUE) == expected


def test_next_daily_slot_can_include_its_start() -> None:
    slot = next_daily_slot(utc("2024-05-06 06:30"), HH_MM, UTC, inclusive=True)
    assert slot == utc("2024-05-06 06:30")
    assert next_daily_slot(slot, HH_MM, UTC) == utc("2024-05-07 06:30")


@pytest.mark.parametrize(
    ("config", "text"),
    [
        (ScheduleConfig(), "every 60 min"),
        (ScheduleConfig(interval_minutes=15), "every 15 min"),
        (ScheduleConfig(daily_at="06:30"), "daily at 06:30 (local time)"),
        (
            ScheduleConfig(enabled=False, daily_at="6:05"),
            "off (daily at 06:05 (local time) when switched on)",
        ),
        (ScheduleConfig(daily_at="25:00"), "every 60 min"),  # an unreadable time falls back to the interval
    ],
)
def test_describe_schedule(config: ScheduleConfig, text: str) -> None:
    assert describe_schedule(config) == text


@pytest.mark.parametrize(
    ("failures", "interval", "expected"),
    [
        (0, HOUR, timedelta(0)),
        (-1, HOUR, timedelta(0)),
        (1, HOUR, 1 * MIN),
        (2, HOUR, 2 * MIN),
        (3, HOUR, 4 * MIN),
        (6, HOUR, 32 * MIN),
        (7, HOUR, HOUR),  # capped at the interval
        (50, HOUR, HOUR),
        (3, 3 * MIN, 3 * MIN),
        (9, timedelta(days=1), timedelta(minutes=256)),
        (10, timedelta(days=1), timedelta(hours=6)),  # capped at 6 h
        (10_000, timedelta(days=1), timedelta(hours=6)),
    ],
)
def test_backoff_delay(failures: int, interval: timedelta, expected: timedelta) -> None:
    assert backoff_delay(failures, interval, SchedulePolicy()) == expected


S = ScheduleState


@pytest.mark.parametrize(
    ("state", "now", "running", "connected", "kind", "next_run_at"),
    [
        (S(last_success_at=at(0)), at(10), False, True, ScheduleKind.IDLE, at(60)),
        (S(last_success_at=at(0), interval_minutes=15), at(10), False, True, ScheduleKind.IDLE, at(15)),
        (S(), at(10), False, True, ScheduleKind.IDLE, at(10)),
        (S(last_success_at=at(0)), at(90), False, True, ScheduleKind.IDLE, at(60)),  # overdue: due now
        (
            S(last_success_at=at(0), interval_minutes=0),
            at(0),
            False,
            True,
            ScheduleKind.IDLE,
            at(1),
        ),  # >= 1 min
        (S(last_success_at=at(0)), at(10), True, True, ScheduleKind.RUNNING, None),
        (S(enabled=False, last_success_at=at(0)), at(10), False, True, ScheduleKind.DISABLED, None),
        (S(last_success_at=at(0)), at(10), False, False, ScheduleKind.DISABLED, None),
        (S(paused_until=PAUSED_INDEFINITELY), at(10), False, True, ScheduleKind.PAUSED, None),
        # a user pause wins over a back-off
        (
            S(consecutive_failures=2, paused_until=PAUSED_INDEFINITELY),
            at(10),
            False,
            True,
            ScheduleKind.PAUSED,
            None,
        ),
        # backing off: the retry time is the end of the back-off
        (
            S(last_success_at=at(0), consecutive_failures=1, paused_until=at(61)),
            at(60.5),
            False,
            True,
            ScheduleKind.BACKING_OFF,
            at(61),
        ),
        (
            S(consecutive_failures=3, paused_until=at(20)),
            at(10),
            False,
            True,
            ScheduleKind.BACKING_OFF,
            at(20),
        ),
        # back-off over: due (retry) now
        (
            S(last_success_at=at(0), consecutive_failures=1, paused_until=at(61)),
            at(62),
            False,
            True,
            ScheduleKind.IDLE,
            at(61),
        ),
        (S(consecutive_failures=1), at(10), False, True, ScheduleKind.IDLE, at(10)),
        # the interval grew past the back-off: the grid wins
        (
            S(last_success_at=at(0), interval_minutes=120, consecutive_failures=1, paused_until=at(61)),
            at(62),
            False,
            True,
            ScheduleKind.IDLE,
            at(120),
        ),
        # a timed pause (no failures): paused until then
        (S(last_success_at=at(0), paused_until=at(90)), at(10), False, True, ScheduleKind.PAUSED, at(90)),
        (S(last_success_at=at(0), paused_until=at(30)), at(10), False, True, ScheduleKind.PAUSED, at(60)),
        (S(last_success_at=at(0), paused_until=at(5)), at(10), False, True, ScheduleKind.IDLE, at(60)),
    ],
)
def test_compute_status(
    state: ScheduleState,
    now: datetime,
    running: bool,
    connected: bool,
    kind: ScheduleKind,
    next_run_at: datetime | None,
) -> None:
    status = compute_status(P, state, now, SchedulePolicy(), running=running, connected=connected)
    assert status == ScheduleStatus(P, kind, next_run_at, state.last_success_at, state.consecutive_failures)


DAILY_UTC = SchedulePolicy(tz=UTC)  # daily times at T0's zone: 06:30 is 2.5 h before T0


@pytest.mark.parametrize(
    ("state", "now", "kind", "next_run_at"),
    [
        (S(daily_at="06:30"), at(0), ScheduleKind.IDLE, at(0)),  # never synced: now
        (S(daily_at="06:30", last_success_at=at(-150)), at(0), ScheduleKind.IDLE, at(21 * 60 + 30)),
        (S(daily_at="10:00", last_success_at=at(-150)), at(0), ScheduleKind.IDLE, at(60)),
        (
            S(daily_at="06:30", last_success_at=at(-24 * 60)),
            at(0),
            ScheduleKind.IDLE,
            at(-150),
        ),  # missed: now
        # backing off after a failed daily run: the back-off end, not the next morning
        (
            S(daily_at="06:30", last_success_at=at(-26 * 60), consecutive_failures=2, paused_until=at(10)),
            at(0),
            ScheduleKind.BACKING_OFF,
            at(10),
        ),
        (
            S(daily_at="06:30", last_success_at=at(-26 * 60), consecutive_failures=2, paused_until=at(10)),
            at(11),
            ScheduleKind.IDLE,
            at(10),
        ),
        # switched to daily after a failure: the daily time wins over an earlier back-off end
        (
            S(daily_at="10:00", last_success_at=at(-150), consecutive_failures=1, paused_until=at(10)),
            at(11),
            ScheduleKind.IDLE,
            at(60),
        ),
        (
            S(daily_at="bad", last_success_at=at(-10)),
            at(0),
            ScheduleKind.IDLE,
            at(50),
        ),  # falls back to the interval
    ],
)
def test_compute_status_of_a_daily_schedule(
    state: ScheduleState, now: datetime, kind: ScheduleKind, next_run_at: datetime
) -> None:
    status = compute_status(P, state, now, DAILY_UTC)
    assert status == ScheduleStatus(P, kind, next_run_at, state.last_success_at, state.consecutive_failures)


def test_compute_status_follows_the_catch_up_policy() -> None:
    state = S(last_success_at=at(0))
    skip = SchedulePolicy(catch_up=CatchUp.SKIP)
    assert compute_status(P, state, at(200), SchedulePolicy()).next_run_at == at(60)
    assert compute_status(P, state, at(200), skip).next_run_at == at(240)


def test_is_user_paused() -> None:
    assert is_user_paused(S(paused_until=PAUSED_INDEFINITELY))
    assert not is_user_paused(S(paused_until=at(10)))
    assert not is_user_paused(S())


@pytest.mark.asyncio
async def test_system_clock_is_aware_utc() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC
    await clock.sleep(0)


# -- the scheduler loop -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_start_waits_the_grace_delay_then_runs_a_never_synced_profile_once(
    db: Database, clock: FakeClock
) -> None:
    runner = FakeRunner()
    scheduler = Scheduler(db, runner, clock=clock)
    seen: list[ScheduleStatus] = []
    scheduler.subscribe(seen.append)
    scheduler.start()
    scheduler.start()  # idempotent
    await scheduler.drain()
    assert runner.calls == []  # first tick is inside the start-up grace delay
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, T0, None, 0)

    await step(scheduler, clock, 30)
    assert runner.calls == [(P, RunTrigger.SCHEDULE)]
    state = await get_schedule_state(db, P)
    assert state.last_started_at == at(0.5)
    assert state.last_success_at == at(0.5)
    assert state.consecutive_failures == 0
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(60.5), at(0.5), 0)
    # never synced: "due now" moves with the clock, so the held start-up tick and the evaluation after
    # the grace delay both publish
    assert [(s.kind, s.next_run_at) for s in seen] == [
        (ScheduleKind.IDLE, at(0)),
        (ScheduleKind.IDLE, at(0.5)),
        (ScheduleKind.RUNNING, None),
        (ScheduleKind.IDLE, at(60.5)),
    ]

    await step(scheduler, clock, 30)  # the tick at one minute: not due
    assert len(runner.calls) == 1
    await scheduler.aclose()


@pytest.mark.asyncio
async def test_runs_when_the_wall_clock_reaches_last_success_plus_interval(
    db: Database, clock: FakeClock
) -> None:
    await put_state(db, S(interval_minutes=15, last_success_at=at(-10)))
    runner = FakeRunner()
    scheduler = await started(Scheduler(db, runner, clock=clock), clock)
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(5), at(-10), 0)
    await step(scheduler, clock, 30)  # tick at 1 min
    for _ in range(3):
        await step(scheduler, clock, 60)
    assert runner.calls == []  # at 4 min
    await step(scheduler, clock, 60)  # tick at 5 min: due
    assert runner.calls == [(P, RunTrigger.SCHEDULE)]
    assert (await get_schedule_state(db, P)).last_success_at == at(5)
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(20), at(5), 0)
    await scheduler.aclose()


@pytest.mark.parametrize(
    ("catch_up", "runs", "next_run_at"),
    [
        (CatchUp.RUN_ONCE, 1, at(60 * 3 + 2.5 + 60)),
        (CatchUp.SKIP, 0, at(60 * 3 + 50)),
    ],
)
@pytest.mark.asyncio
async def test_a_clock_jump_is_a_resume_debounced_by_the_grace_delay(
    db: Database, clock: FakeClock, catch_up: CatchUp, runs: int, next_run_at: datetime
) -> None:
    await put_state(db, S(last_success_at=at(-10)))  # due at 50 min
    runner = FakeRunner()
    scheduler = await started(
        Scheduler(db, runner, clock=clock, policy=SchedulePolicy(catch_up=catch_up)), clock
    )
    await step(scheduler, clock, 30)  # tick at 1 min
    clock.suspend(timedelta(hours=3))  # the lid closes; the loop's sleep does not count it
    await step(scheduler, clock, 60)  # first tick after resume, wall 3 h 2 min: jump seen, held
    assert runner.calls == []
    await step(scheduler, clock, 29)
    assert runner.calls == []
    await step(scheduler, clock, 1)  # grace delay over
    assert len(runner.calls) == runs
    status = scheduler.status(P)
    assert status is not None and status.next_run_at == next_run_at
    for _ in range(3):  # later ticks do not run it again
        await step(scheduler, clock, 60)
    assert len(runner.calls) == runs
    await scheduler.aclose()


@pytest.mark.asyncio
async def test_a_daily_schedule_runs_at_its_time_and_once_after_sleeping_through_it(
    db: Database, clock: FakeClock
) -> None:
    await put_state(db, S(daily_at="09:05", last_success_at=at(-60)))  # T0 is 09:00 in this zone
    runner = FakeRunner()
    scheduler = await started(Scheduler(db, runner, clock=clock, policy=SchedulePolicy(tz=UTC)), clock)
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(5), at(-60), 0)
    await step(scheduler, clock, 30)  # tick at 09:01
    for _ in range(3):
        await step(scheduler, clock, 60)
    assert runner.calls == []  # 09:04
    await step(scheduler, clock, 60)  # tick at 09:05: due
    assert runner.calls == [(P, RunTrigger.SCHEDULE)]
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(24 * 60 + 5), at(5), 0)

    clock.suspend(timedelta(days=3))  # asleep through three mornings
    await step(scheduler, clock, 60)  # the jump is seen: held for the grace delay
    assert len(runner.calls) == 1
    await step(scheduler, clock, 30)
    assert len(runner.calls) == 2  # one catch-up run, not three
    woke = clock.wall
    assert (await get_schedule_state(db, P)).last_success_at == woke
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(4 * 24 * 60 + 5), woke, 0)
    for _ in range(5):
        await step(scheduler, clock, 60)
    assert len(runner.calls) == 2
    await scheduler.aclose()


@pytest.mark.parametrize(("daily_at", "cap"), [("09:05", 6 * HOUR), (None, HOUR)])
@pytest.mark.asyncio
async def test_back_off_is_capped_at_the_period_and_six_hours(
    db: Database, clock: FakeClock, daily_at: str | None, cap: timedelta
) -> None:
    await put_state(
        db, S(daily_at=daily_at, last_success_at=at(-26 * 60), consecutive_failures=11, paused_until=at(-1))
    )
    scheduler = Scheduler(db, FakeRunner(RunStatus.FAILED), clock=clock, policy=SchedulePolicy(tz=UTC))
    await scheduler.tick()
    await scheduler.drain()
    state = await get_schedule_state(db, P)
    assert (state.consecutive_failures, state.paused_until, state.daily_at) == (12, T0 + cap, daily_at)
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.BACKING_OFF, T0 + cap, at(-26 * 60), 12)


@pytest.mark.asyncio
async def test_configure_switches_between_interval_and_daily(db: Database, clock: FakeClock) -> None:
    await put_state(db, S(last_success_at=at(-10)))
    scheduler = Scheduler(db, FakeRunner(), clock=clock, policy=SchedulePolicy(tz=UTC))
    await scheduler.tick()
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(50), at(-10), 0)
    await scheduler.configure(P, ScheduleConfig(daily_at="18:00"))
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(9 * 60), at(-10), 0)
    assert (await get_schedule_state(db, P)).config == ScheduleConfig(daily_at="18:00")
    await scheduler.configure(P, ScheduleConfig(interval_minutes=30))
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(20), at(-10), 0)
    await scheduler.drain()


@pytest.mark.asyncio
async def test_a_clock_set_back_is_a_jump_too(db: Database, clock: FakeClock) -> None:
    await put_state(db, S(last_success_at=at(-10)))
    runner = FakeRunner()
    scheduler = await started(Scheduler(db, runner, clock=clock), clock)
    await step(scheduler, clock, 30)
    clock.suspend(-timedelta(hours=2))  # wall clock now before last success
    await step(scheduler, clock, 60)
    assert runner.calls == []  # held for the grace delay
    await step(scheduler, clock, 30)
    assert runner.calls == [(P, RunTrigger.SCHEDULE)]  # stored success is "in the future": due now
    await scheduler.aclose()


@pytest.mark.asyncio
async def test_notify_resumed_is_debounced(db: Database, clock: FakeClock) -> None:
    await put_state(db, S(last_success_at=at(-120)))  # overdue
    runner = FakeRunner()
    scheduler = Scheduler(db, runner, clock=clock)
    scheduler.notify_resumed()
    await step(scheduler, clock, 20)
    scheduler.notify_resumed()  # restarts the grace delay
    await step(scheduler, clock, 20)
    await scheduler.tick()  # a tick inside the grace delay starts nothing
    await scheduler.drain()
    assert runner.calls == []
    await step(scheduler, clock, 10)
    assert runner.calls == [(P, RunTrigger.SCHEDULE)]
    await scheduler.aclose()


@pytest.mark.asyncio
async def test_network_up_retries_a_backing_off_profile_after_the_grace_delay(
    db: Database, clock: FakeClock
) -> None:
    await put_state(db, S(last_success_at=at(-120), consecutive_failures=2, paused_until=at(10)))
    runner = FakeRunner()
    scheduler = await started(Scheduler(db, runner, clock=clock), clock)  # mono 30
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.BACKING_OFF, at(10), at(-120), 2)
    scheduler.notify_network_up()  # wake at mono 60
    await step(scheduler, clock, 10)
    scheduler.notify_network_up()  # flapping: debounced, wake at mono 70
    await step(scheduler, clock, 20)  # mono 60: the loop ticks (held), the first wake was cancelled
    assert runner.calls == []
    await step(scheduler, clock, 10)  # mono 70
    assert runner.calls == [(P, RunTrigger.SCHEDULE)]
    state = await get_schedule_state(db, P)
    assert (state.consecutive_failures, state.paused_until, state.last_success_at) == (0, None, clock.wall)
    await scheduler.aclose()


@pytest.mark.asyncio
async def test_a_resume_during_a_network_up_grace_keeps_the_back_off_retry(
    db: Database, clock: FakeClock
) -> None:
    await put_state(db, S(consecutive_failures=1, paused_until=at(10)))
    runner = FakeRunner()
    scheduler = Scheduler(db, runner, clock=clock)
    scheduler.notify_network_up()
    scheduler.notify_resumed()
    await step(scheduler, clock, 30)
    assert runner.calls == [(P, RunTrigger.SCHEDULE)]
    await scheduler.aclose()


@pytest.mark.asyncio
async def test_without_network_up_a_back_off_is_respected(db: Database, clock: FakeClock) -> None:
    await put_state(db, S(last_success_at=at(-120), consecutive_failures=2, paused_until=at(10)))
    runner = FakeRunner()
    scheduler = Scheduler(db, runner, clock=clock)
    await scheduler.tick()
    scheduler.notify_resumed()
    await step(scheduler, clock, 30)
    assert runner.calls == []
    await scheduler.aclose()


@pytest.mark.asyncio
async def test_back_off_grows_is_persisted_and_recovers(db: Database, clock: FakeClock) -> None:
    runner = FakeRunner(RunStatus.FAILED, RunStatus.FAILED, RuntimeError("boom"), RunStatus.SUCCEEDED)
    scheduler = await started(Scheduler(db, runner, clock=clock), clock)  # run 1 at 30 s fails
    expected = [
        # (mono seconds, runs so far, failures, paused_until, kind)
        (30, 1, 1, T0 + timedelta(seconds=90), ScheduleKind.BACKING_OFF),
        (60, 1, 1, T0 + timedelta(seconds=90), ScheduleKind.BACKING_OFF),
        (120, 2, 2, T0 + timedelta(seconds=240), ScheduleKind.BACKING_OFF),  # retried after 1 min
        (180, 2, 2, T0 + timedelta(seconds=240), ScheduleKind.BACKING_OFF),
        (240, 3, 3, T0 + timedelta(seconds=480), ScheduleKind.BACKING_OFF),  # after 2 min; runner raised
        (300, 3, 3, T0 + timedelta(seconds=480), ScheduleKind.BACKING_OFF),
        (420, 3, 3, T0 + timedelta(seconds=480), ScheduleKind.BACKING_OFF),
        (480, 4, 0, None, ScheduleKind.IDLE),  # after 4 min: success resets the back-off
    ]
    for mono, runs, failures, paused_until, kind in expected:
        if clock.mono < mono:
            await step(scheduler, clock, mono - clock.mono)
        state = await get_schedule_state(db, P)
        assert (clock.mono, len(runner.calls), state.consecutive_failures, state.paused_until) == (
            mono,
            runs,
            failures,
            paused_until,
        )
        status = scheduler.status(P)
        assert status is not None and status.kind is kind
        if kind is ScheduleKind.BACKING_OFF:
            assert status.next_run_at == paused_until
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(68), at(8), 0)
    await scheduler.aclose()


@pytest.mark.asyncio
async def test_a_raising_runner_is_logged_and_counts_as_a_failure(
    db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = Scheduler(db, FakeRunner(RuntimeError("boom")), clock=clock)
    with caplog.at_level(logging.ERROR, logger="crmsync_desktop.sync.scheduler"):
        await scheduler.tick()
        await scheduler.drain()
    assert "The schedule sync of Contoso failed" in caplog.text
    assert (await get_schedule_state(db, P)).consecutive_failures == 1


@pytest.mark.asyncio
async def test_sync_now_bypasses_back_off_and_a_manual_failure_leaves_it_alone(
    db: Database, clock: FakeClock
) -> None:
    backing_off = S(last_success_at=at(-120), consecutive_failures=3, paused_until=at(3))
    await put_state(db, backing_off)
    runner = FakeRunner(RunStatus.FAILED, RunStatus.SUCCEEDED)
    scheduler = Scheduler(db, runner, clock=clock)
    await scheduler.tick()
    assert runner.calls == []

    task = scheduler.sync_now(P)
    assert task is not None
    await task
    assert runner.calls == [(P, RunTrigger.MANUAL)]
    state = await get_schedule_state(db, P)
    assert (state.consecutive_failures, state.paused_until, state.last_started_at) == (3, at(3), at(0))

    await clock.advance(60)
    task = scheduler.sync_now(P)
    assert task is not None
    await task
    state = await get_schedule_state(db, P)
    assert (state.consecutive_failures, state.paused_until, state.last_success_at) == (0, None, at(1))
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(61), at(1), 0)


@pytest.mark.asyncio
async def test_a_cancelled_run_changes_nothing(db: Database, clock: FakeClock) -> None:
    await put_state(db, S(last_success_at=at(-120)))
    scheduler = Scheduler(db, FakeRunner(RunStatus.CANCELLED), clock=clock)
    await scheduler.tick()
    await scheduler.drain()
    state = await get_schedule_state(db, P)
    assert (state.last_success_at, state.consecutive_failures, state.last_started_at) == (at(-120), 0, at(0))


@pytest.mark.asyncio
async def test_a_trigger_while_running_is_coalesced(db: Database, clock: FakeClock) -> None:
    runner = FakeRunner()
    runner.gate, runner.entered = asyncio.Event(), asyncio.Event()
    scheduler = Scheduler(db, runner, clock=clock)
    first = scheduler.sync_now(P)
    assert first is not None
    await runner.entered.wait()
    assert scheduler.is_running(P)
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.RUNNING, None, None, 0)
    assert scheduler.sync_now(P) is first
    await scheduler.tick()  # never synced, so due: but it is running
    scheduler.notify_network_up()
    await clock.advance(30)
    for _ in range(10):
        await asyncio.sleep(0)
    assert runner.calls == [(P, RunTrigger.MANUAL)]
    runner.gate.set()
    await scheduler.drain()
    assert runner.calls == [(P, RunTrigger.MANUAL)]
    assert not scheduler.is_running(P)
    await scheduler.tick()  # afterwards it is not due again
    await scheduler.drain()
    assert len(runner.calls) == 1
    await scheduler.aclose()


@pytest.mark.asyncio
async def test_a_profile_the_engine_is_busy_with_is_not_started(db: Database, clock: FakeClock) -> None:
    busy = {P}
    runner = FakeRunner()
    scheduler = Scheduler(db, runner, clock=clock, is_busy=busy.__contains__)
    await scheduler.tick()
    await scheduler.drain()
    assert scheduler.sync_now(P) is None
    assert runner.calls == []
    status = scheduler.status(P)
    assert status is not None and status.kind is ScheduleKind.RUNNING
    busy.clear()
    await scheduler.tick()
    await scheduler.drain()
    assert runner.calls == [(P, RunTrigger.SCHEDULE)]


@pytest.mark.asyncio
async def test_pause_and_resume_are_persisted(
    db: Database, db_paths: tuple[Path, Path], clock: FakeClock
) -> None:
    await put_state(db, S(last_success_at=at(-120)))  # overdue
    runner = FakeRunner()
    scheduler = Scheduler(db, runner, clock=clock)
    await scheduler.pause()
    await scheduler.pause(P)  # twice is fine
    assert (await get_schedule_state(db, P)).paused_until == PAUSED_INDEFINITELY
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.PAUSED, None, at(-120), 0)
    await scheduler.tick()
    await scheduler.drain()
    assert runner.calls == []

    # a restart keeps the pause
    db.close()
    reopened = open_store(*db_paths)
    try:
        again = Scheduler(reopened, runner, clock=clock)
        await again.tick()
        await again.drain()
        assert again.status(P) == ScheduleStatus(P, ScheduleKind.PAUSED, None, at(-120), 0)
        assert runner.calls == []
        # a manual sync still runs while paused, and keeps the pause
        task = again.sync_now(P)
        assert task is not None
        await task
        assert (await get_schedule_state(reopened, P)).paused_until == PAUSED_INDEFINITELY
        assert again.status(P) == ScheduleStatus(P, ScheduleKind.PAUSED, None, at(0), 0)

        await clock.advance(2 * 3600)
        await again.resume(P)
        await again.drain()
        assert runner.calls == [(P, RunTrigger.MANUAL), (P, RunTrigger.SCHEDULE)]  # overdue: ran on resume
        assert (await get_schedule_state(reopened, P)).paused_until is None
        await again.resume()  # not paused: nothing to do
        await again.drain()
        assert len(runner.calls) == 2
    finally:
        reopened.close()


@pytest.mark.asyncio
async def test_a_pause_during_a_failing_run_is_kept(db: Database, clock: FakeClock) -> None:
    runner = FakeRunner(RunStatus.FAILED)
    runner.gate, runner.entered = asyncio.Event(), asyncio.Event()
    scheduler = Scheduler(db, runner, clock=clock)
    await scheduler.tick()
    await runner.entered.wait()
    await scheduler.pause(P)
    runner.gate.set()
    await scheduler.drain()
    state = await get_schedule_state(db, P)
    assert (state.consecutive_failures, state.paused_until) == (1, PAUSED_INDEFINITELY)
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.PAUSED, None, None, 1)
    await scheduler.resume(P)
    await scheduler.drain()
    # resuming leaves the failure count; the back-off of that failure was never stored, so it retries now
    assert runner.calls == [(P, RunTrigger.SCHEDULE), (P, RunTrigger.SCHEDULE)]


@pytest.mark.asyncio
async def test_a_new_scheduler_on_the_same_database_continues_from_stored_times(
    db: Database, db_paths: tuple[Path, Path], clock: FakeClock
) -> None:
    runner = FakeRunner(RunStatus.SUCCEEDED, RunStatus.FAILED)
    first = Scheduler(db, runner, clock=clock)
    await first.tick()  # never synced: runs at 9:00
    await first.drain()
    await first.aclose()
    db.close()

    await clock.advance(30 * 60)  # the app was closed for half an hour
    reopened = open_store(*db_paths)
    try:
        second = await started(Scheduler(reopened, runner, clock=clock), clock)
        assert second.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(60), at(0), 0)
        assert len(runner.calls) == 1
        while clock.wall < at(60):
            await step(second, clock, 60)
        assert len(runner.calls) == 2  # due exactly at last success + interval; it fails
        state = await get_schedule_state(reopened, P)
        assert (state.consecutive_failures, state.paused_until) == (1, clock.wall + MIN)
        await second.aclose()

        third = Scheduler(reopened, runner, clock=clock)  # another restart: still backing off
        await third.tick()
        await third.drain()
        assert third.status(P) == ScheduleStatus(P, ScheduleKind.BACKING_OFF, clock.wall + MIN, at(0), 1)
        assert len(runner.calls) == 2
    finally:
        reopened.close()


@pytest.mark.asyncio
async def test_disabled_and_disconnected_profiles_never_run(db: Database, clock: FakeClock) -> None:
    await save_profile(db, ConnectionProfile(name="Fabrikam"))  # not connected yet
    await save_schedule_config(db, P, ScheduleConfig(enabled=False))
    runner = FakeRunner()
    scheduler = Scheduler(db, runner, clock=clock)
    await scheduler.tick()
    await scheduler.drain()
    assert runner.calls == []
    assert [(s.profile, s.kind) for s in scheduler.statuses()] == [
        ("Contoso", ScheduleKind.DISABLED),
        ("Fabrikam", ScheduleKind.DISABLED),
    ]

    await scheduler.configure(P, ScheduleConfig(enabled=True, interval_minutes=10))
    await scheduler.drain()
    assert runner.calls == [(P, RunTrigger.SCHEDULE)]
    assert scheduler.status(P) == ScheduleStatus(P, ScheduleKind.IDLE, at(10), at(0), 0)


@pytest.mark.asyncio
async def test_statuses_are_published_on_change_only_and_listeners_are_isolated(
    db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    await put_state(db, S(last_success_at=at(-10)))
    scheduler = Scheduler(db, FakeRunner(), clock=clock)
    seen: list[ScheduleStatus] = []

    def broken(_status: ScheduleStatus) -> None:
        raise RuntimeError("listener bug")

    scheduler.subscribe(broken)
    unsubscribe = scheduler.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="crmsync_desktop.sync.scheduler"):
        await scheduler.tick()
        await clock.advance(60)
        await scheduler.tick()
    assert "Schedule status listener failed" in caplog.text
    assert seen == [ScheduleStatus(P, ScheduleKind.IDLE, at(50), at(-10), 0)]
    unsubscribe()
    unsubscribe()  # twice is harmless
    await save_schedule_config(db, P, ScheduleConfig(interval_minutes=30))
    await scheduler.refresh()
    assert len(seen) == 1
    assert scheduler.statuses() == [ScheduleStatus(P, ScheduleKind.IDLE, at(20), at(-10), 0)]


@pytest.mark.asyncio
async def test_a_deleted_profile_disappears(db: Database, clock: FakeClock) -> None:
    from crmsync_desktop.store.repos import delete_profile

    await put_state(db, S(last_success_at=at(-10)))
    scheduler = Scheduler(db, FakeRunner(), clock=clock)
    await scheduler.tick()
    assert scheduler.status(P) is not None
    await delete_profile(db, P)
    await scheduler.tick()
    assert scheduler.status(P) is None
    assert scheduler.statuses() == []


@pytest.mark.asyncio
async def test_a_profile_deleted_during_its_run_is_logged_not_fatal(
    db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from crmsync_desktop.store.repos import delete_profile

    runner = FakeRunner()
    runner.gate, runner.entered = asyncio.Event(), asyncio.Event()
    scheduler = Scheduler(db, runner, clock=clock)
    task = scheduler.sync_now(P)
    await runner.entered.wait()
    await delete_profile(db, P)
    runner.gate.set()
    with caplog.at_level(logging.WARNING, logger="crmsync_desktop.sync.scheduler"):
        await scheduler.drain()
    assert task is not None and task.done() and task.exception() is None
    assert "Could not record" in caplog.text
    assert scheduler.status(P) is None


@pytest.mark.asyncio
async def test_a_failing_tick_is_logged_and_the_loop_goes_on(
    db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmsync_desktop.sync import scheduler as module

    calls = 0
    real = module.repos.list_profiles

    async def flaky(database: Database) -> list[ConnectionProfile]:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("database hiccup")
        return await real(database)

    monkeypatch.setattr(module.repos, "list_profiles", flaky)
    runner = FakeRunner()
    scheduler = Scheduler(db, runner, clock=clock)
    with caplog.at_level(logging.ERROR, logger="crmsync_desktop.sync.scheduler"):
        await started(scheduler, clock)  # the first tick and the start-up evaluation fail
    assert "Scheduler tick failed" in caplog.text
    assert "after a resume or network-up failed" in caplog.text
    assert runner.calls == []
    await step(scheduler, clock, 30)  # the next tick works
    assert runner.calls == [(P, RunTrigger.SCHEDULE)]
    await scheduler.aclose()


@pytest.mark.asyncio
async def test_aclose_cancels_a_running_sync_and_pending_triggers(db: Database, clock: FakeClock) -> None:
    runner = FakeRunner()
    runner.gate, runner.entered = asyncio.Event(), asyncio.Event()
    scheduler = Scheduler(db, runner, clock=clock)
    scheduler.start()
    task = scheduler.sync_now(P)
    await runner.entered.wait()
    scheduler.notify_network_up()
    await scheduler.aclose()
    assert task is not None and task.cancelled()
    state = await get_schedule_state(db, P)
    assert (state.last_started_at, state.last_success_at) == (at(0), None)
    await scheduler.aclose()  # twice is fine


def test_the_default_policy_matches_the_documented_rules() -> None:
    policy = SchedulePolicy()
    assert policy.catch_up is CatchUp.RUN_ONCE
    assert policy.tick_seconds == 60
    assert replace(policy, catch_up=CatchUp.SKIP).catch_up is CatchUp.SKIP
