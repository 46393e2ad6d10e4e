"""The periodic sync of each profile: when it is due, when it backs off, and what the tray shows.

Due times come from the **wall clock**: the next run is ``last_success_at + interval`` (stored per
profile in ``ScheduleState``), never "60 minutes after a timer started", because monotonic clocks
and timers stop while the machine sleeps. A daily schedule (``daily_at = "HH:MM"``) is due at the
first local occurrence of that time after ``last_success_at``: the time is local wall-clock time
(the machine's zone, or ``SchedulePolicy.tz``), turned into UTC for that very day, so it stays at
06:30 across DST changes; on a spring-forward day a time in the gap runs once, shifted by the gap
(02:30 becomes 03:30), and on a fall-back day an ambiguous time runs once, at its first occurrence.

The scheduler ticks every ``tick_seconds`` and re-evaluates every profile from the database, so a
changed interval or daily time, a new profile or a resume from sleep is picked up on the next tick
without any timer bookkeeping.

Extra triggers, each debounced by a grace delay (the network is rarely back the second the lid
opens): a clock jump between two ticks (suspend/resume, or the clock was set), ``notify_resumed()``
and ``notify_network_up()``. The app start counts as a resume. During the grace delay no scheduled
run starts; then one evaluation runs, and a network-up evaluation also retries profiles that are
backing off.

Missed slots follow :class:`CatchUp`: run once right away, or skip to the next slot on the
interval grid (or the next daily time). A failed scheduled run backs off: ``paused_until`` is set
to the end of the run plus 1, 2, 4 … minutes (``backoff_base`` doubled per consecutive failure,
capped at the period — the interval, or 24 h for a daily schedule — and at ``backoff_cap``) and
persisted, so a restart keeps backing off. A manual :meth:`Scheduler.sync_now`
bypasses back-off and pause. One run per profile at a time: a trigger while the profile runs is
coalesced into that run, never queued behind it.

A user pause is stored as ``paused_until = PAUSED_INDEFINITELY`` (far future), so it survives a
restart; back-off never overwrites it.

The scheduler publishes a :class:`ScheduleStatus` per profile to its subscribers whenever it
changes. It runs no sync itself: it awaits ``runner(profile, trigger=...)`` (the engine's ``sync``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Protocol

from crmsync_desktop.domain import ConnectionState, RunStatus, RunTrigger, ScheduleConfig
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.values import ScheduleState
from crmsync_desktop.sync.clock import Clock, SystemClock

__all__ = [
    "PAUSED_INDEFINITELY",
    "CatchUp",
    "RunOutcome",
    "Runner",
    "ScheduleKind",
    "SchedulePolicy",
    "ScheduleStatus",
    "Scheduler",
    "StatusListener",
    "backoff_delay",
    "compute_status",
    "describe_schedule",
    "is_user_paused",
    "load_schedule",
    "next_daily_due",
    "next_daily_slot",
    "next_due",
    "store_schedule",
]

log = logging.getLogger(__name__)

PAUSED_INDEFINITELY = datetime(9999, 1, 1, tzinfo=UTC)
"""``paused_until`` of a profile the user paused ("until resumed")."""


class CatchUp(enum.StrEnum):
    """What happens to slots missed while the machine slept or the app was closed."""

    RUN_ONCE = "run_once"  # one run right away (after the grace delay), then back on the grid
    SKIP = "skip"  # wait for the next slot of the interval grid


class ScheduleKind(enum.StrEnum):
    IDLE = "idle"  # waiting for next_run_at
    RUNNING = "running"
    PAUSED = "paused"  # paused by the user
    BACKING_OFF = "backing_off"  # after failed scheduled runs; next_run_at is the retry
    DISABLED = "disabled"  # schedule switched off, or the profile is not connected yet


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    """Where the schedule of one profile stands, for the tray, the status bar and the dashboard."""

    profile: str
    kind: ScheduleKind
    next_run_at: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int = 0


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    """The scheduler's knobs; ``catch_up`` is the user-facing setting, the rest are sane defaults."""

    catch_up: CatchUp = CatchUp.RUN_ONCE
    tick_seconds: float = 60.0
    jump_threshold: timedelta = timedelta(minutes=5)  # a tick this much later than expected: we slept
    grace: timedelta = timedelta(seconds=30)  # wait after start, resume and network-up
    missed_after: timedelta = timedelta(minutes=5)  # a slot overdue by more than this was missed
    backoff_base: timedelta = timedelta(minutes=1)
    backoff_cap: timedelta = timedelta(hours=6)
    tz: tzinfo | None = None  # zone of daily times; None: the machine's local zone, read at each use


class RunOutcome(Protocol):
    """What the runner returns (the engine's ``RunResult``)."""

    @property
    def status(self) -> RunStatus: ...


class Runner(Protocol):
    """Runs one sync of a profile (the composition root passes ``SyncEngine.sync``)."""

    def __call__(self, profile: str, *, trigger: RunTrigger) -> Awaitable[RunOutcome]: ...


StatusListener = Callable[[ScheduleStatus], None]


# -- pure rules -------------------------------------------------------------------------------


DAY = timedelta(days=1)


def _interval(state: ScheduleState) -> timedelta:
    return timedelta(minutes=max(1, state.interval_minutes))


def _daily_time(state: ScheduleState) -> time | None:
    """The daily time of ``state`` (None: the interval schedule; an unreadable time falls back to it)."""
    return state.config.daily_time


def _period(state: ScheduleState) -> timedelta:
    """How far apart two scheduled runs are: the interval, or a day (the back-off cap)."""
    return DAY if _daily_time(state) is not None else _interval(state)


def describe_schedule(config: ScheduleConfig) -> str:
    """``"every 60 min"`` or ``"daily at 06:30 (local time)"``, with ``"off: "`` when disabled."""
    daily = config.daily_time
    text = (
        f"daily at {daily:%H:%M} (local time)"
        if daily is not None
        else f"every {max(1, config.interval_minutes)} min"
    )
    return text if config.enabled else f"off ({text} when switched on)"


def _local_at(day: date, at: time, tz: tzinfo | None) -> datetime:
    """``day`` at ``at`` local wall-clock time, as UTC.

    A time that occurs twice (DST ends) gives its first occurrence; a time that does not occur (DST
    starts) is shifted by the gap (02:30 becomes 03:30). Both folds are tried and checked against
    the wall clock, because zoneinfo and the system's local time disagree about which fold is which
    inside a gap.
    """
    naive = datetime.combine(day, at)

    def to_utc(wall: datetime) -> datetime:
        return (wall.replace(tzinfo=tz) if tz is not None else wall).astimezone(UTC)

    def wall_of(instant: datetime) -> datetime:
        return (instant.astimezone(tz) if tz is not None else instant.astimezone()).replace(tzinfo=None)

    folds = (to_utc(naive), to_utc(naive.replace(fold=1)))
    real = [instant for instant in folds if wall_of(instant) == naive]
    return min(real) if real else max(folds)


def next_daily_slot(
    after: datetime, at: time, tz: tzinfo | None = None, *, inclusive: bool = False
) -> datetime:
    """The first daily slot (``at`` local time, in UTC) later than ``after`` (or equal, if ``inclusive``).

    ``tz`` None means the machine's local zone (``datetime.astimezone()``, DST included).
    """
    local_day = (after.astimezone(tz) if tz is not None else after.astimezone()).date()
    for offset in range(-1, 3):
        slot = _local_at(local_day + timedelta(days=offset), at, tz)
        if slot > after or (inclusive and slot == after):
            return slot
    raise AssertionError("unreachable: a daily slot exists within two days")  # pragma: no cover


def is_user_paused(state: ScheduleState) -> bool:
    return state.paused_until is not None and state.paused_until >= PAUSED_INDEFINITELY


def backoff_delay(failures: int, interval: timedelta, policy: SchedulePolicy) -> timedelta:
    """How long to wait after ``failures`` consecutive failed runs: base · 2^(n-1), capped."""
    if failures <= 0:
        return timedelta(0)
    return min(policy.backoff_base * 2 ** min(failures - 1, 32), interval, policy.backoff_cap)


def next_due(
    last_success_at: datetime | None,
    interval: timedelta,
    now: datetime,
    catch_up: CatchUp = CatchUp.RUN_ONCE,
    missed_after: timedelta = timedelta(minutes=5),
) -> datetime:
    """When the next run is due on the interval grid (pause and back-off not considered).

    Never synced, or a success "in the future" (the clock was set back): due now. A slot overdue by
    more than ``missed_after`` was missed; with ``CatchUp.SKIP`` the result is the first slot of
    the grid that is not missed (``last_success_at + k·interval``), with ``RUN_ONCE`` it stays the
    missed slot, so the profile runs right away.
    """
    if last_success_at is None or last_success_at > now:
        return now
    due = last_success_at + interval
    if catch_up is CatchUp.RUN_ONCE or now - due <= missed_after:
        return due
    slots = -((due + missed_after - now) // interval)  # ceil((now - missed_after - due) / interval)
    return due + slots * interval


def next_daily_due(
    last_success_at: datetime | None,
    at: time,
    now: datetime,
    catch_up: CatchUp = CatchUp.RUN_ONCE,
    missed_after: timedelta = timedelta(minutes=5),
    tz: tzinfo | None = None,
) -> datetime:
    """When a daily schedule is next due: the first ``at`` (local) after ``last_success_at``.

    The same rules as :func:`next_due`: never synced, or a success "in the future": due now. A slot
    overdue by more than ``missed_after`` was missed; ``RUN_ONCE`` keeps it (the profile runs right
    away, once), ``SKIP`` moves to the first daily slot that is not missed.
    """
    if last_success_at is None or last_success_at > now:
        return now
    due = next_daily_slot(last_success_at, at, tz)
    if catch_up is CatchUp.RUN_ONCE or now - due <= missed_after:
        return due
    return next_daily_slot(now - missed_after, at, tz, inclusive=True)


def _due(state: ScheduleState, now: datetime, policy: SchedulePolicy) -> datetime:
    daily = _daily_time(state)
    if daily is not None:
        return next_daily_due(
            state.last_success_at, daily, now, policy.catch_up, policy.missed_after, policy.tz
        )
    return next_due(state.last_success_at, _interval(state), now, policy.catch_up, policy.missed_after)


def _first_slot(state: ScheduleState, now: datetime, policy: SchedulePolicy) -> datetime:
    """The first slot after the last success (now if never synced), whatever the catch-up policy."""
    if state.last_success_at is None:
        return now
    daily = _daily_time(state)
    if daily is not None:
        return next_daily_slot(state.last_success_at, daily, policy.tz)
    return state.last_success_at + _interval(state)


def compute_status(
    profile: str,
    state: ScheduleState,
    now: datetime,
    policy: SchedulePolicy = SchedulePolicy(),
    *,
    running: bool = False,
    connected: bool = True,
) -> ScheduleStatus:
    """The status of one profile from its stored state (a pure function of its arguments)."""

    def status(kind: ScheduleKind, next_run_at: datetime | None) -> ScheduleStatus:
        return ScheduleStatus(profile, kind, next_run_at, state.last_success_at, state.consecutive_failures)

    if running:
        return status(ScheduleKind.RUNNING, None)
    if not state.enabled or not connected:
        return status(ScheduleKind.DISABLED, None)
    if is_user_paused(state):
        return status(ScheduleKind.PAUSED, None)
    due = _due(state, now, policy)
    paused_until = state.paused_until
    if state.consecutive_failures > 0:
        # a failed scheduled run is retried on the back-off timer, whatever the catch-up policy
        grid = _first_slot(state, now, policy)
        retry = max(grid, paused_until) if paused_until is not None else grid
        kind = (
            ScheduleKind.BACKING_OFF if paused_until is not None and paused_until > now else ScheduleKind.IDLE
        )
        return status(kind, retry)
    if paused_until is not None and paused_until > now:  # a timed pause written by someone else
        return status(ScheduleKind.PAUSED, max(due, paused_until))
    return status(ScheduleKind.IDLE, due)


async def load_schedule(
    db: Database, profile: str, *, now: datetime | None = None, policy: SchedulePolicy | None = None
) -> tuple[ScheduleConfig, ScheduleStatus]:
    """The stored settings of ``profile``'s schedule and its status now, without a running scheduler.

    Raises ``ProfileNotFoundError`` for an unknown profile. ``running`` is never reported: only a
    ``Scheduler`` knows that.
    """
    connection = await repos.get_profile(db, profile)
    state = await repos.get_schedule_state(db, profile)
    status = compute_status(
        profile,
        state,
        now or datetime.now(UTC),
        policy or SchedulePolicy(),
        connected=connection.state is ConnectionState.CONNECTED,
    )
    return state.config, status


async def store_schedule(db: Database, profile: str, config: ScheduleConfig) -> None:
    """Store the settings of ``profile``'s schedule without a running scheduler (the CLI).

    Where the schedule stands (last success, back-off, pause) is kept. A running ``Scheduler``
    re-reads the settings on its next tick; in the same process, prefer :meth:`Scheduler.configure`.
    """
    await repos.save_schedule_config(db, profile, config)  # ProfileNotFoundError for an unknown profile


# -- the scheduler ----------------------------------------------------------------------------


class Scheduler:
    """Runs each connected profile's sync on its schedule; see the module docstring for the rules.

    Life cycle: ``start()`` inside the running loop, ``await aclose()`` at shutdown. Everything
    else may be called at any time from the loop's thread.
    """

    def __init__(
        self,
        db: Database,
        runner: Runner,
        *,
        clock: Clock | None = None,
        policy: SchedulePolicy | None = None,
        is_busy: Callable[[str], bool] | None = None,
    ) -> None:
        """
        Args:
            runner: ``await runner(profile, trigger=RunTrigger.SCHEDULE)`` runs one sync and returns
                something with a ``status`` (``RunStatus``); exceptions count as failures.
            clock: the wall clock and sleep (tests inject a fake).
            policy: catch-up setting and timings; may be replaced later through ``policy``.
            is_busy: whether the engine is already running something for a profile that the
                scheduler did not start (``SyncEngine.is_running``); such a profile is not started.
        """
        self._db = db
        self._runner = runner
        self._clock: Clock = clock or SystemClock()
        self.policy = policy or SchedulePolicy()
        self._is_busy = is_busy or (lambda _profile: False)
        self._listeners: list[StatusListener] = []
        self._statuses: dict[str, ScheduleStatus] = {}
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._evaluations: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Task[None] | None = None
        self._wake_retries_backoff = False
        self._last_tick_at: datetime | None = None
        self._hold_until: datetime | None = None
        self._lock = asyncio.Lock()  # one evaluation at a time
        self._writes = asyncio.Lock()  # read-modify-write of a ScheduleState, one at a time

    # -- observing ----------------------------------------------------------------------------

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        """Call ``listener`` with every changed status; returns the function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def status(self, profile: str) -> ScheduleStatus | None:
        return self._statuses.get(profile)

    def statuses(self) -> list[ScheduleStatus]:
        """The last status of every known profile, by profile name."""
        return [self._statuses[name] for name in sorted(self._statuses)]

    def is_running(self, profile: str) -> bool:
        job = self._jobs.get(profile)
        return (job is not None and not job.done()) or self._is_busy(profile)

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start ticking (call from inside the running loop). The start counts as a resume."""
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self.run_forever(), name="scheduler")

    async def run_forever(self) -> None:
        """Tick every ``policy.tick_seconds`` until cancelled; a failing tick is logged, not fatal."""
        self._debounce(retry_backoff=False)
        while True:
            try:
                await self._track(self.tick())
            except Exception:
                log.exception("Scheduler tick failed")
            await self._clock.sleep(self.policy.tick_seconds)

    async def aclose(self) -> None:
        """Stop ticking and cancel pending triggers and running syncs; waits until they are gone."""
        tasks = [t for t in (self._loop_task, self._wake, *self._evaluations, *self._jobs.values()) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = self._wake = None

    async def drain(self) -> None:
        """Wait until no evaluation and no run is in progress (sleeping triggers do not count)."""
        while True:
            for _ in range(5):  # let tasks whose sleep just ended reach their next step
                await asyncio.sleep(0)
            pending = [t for t in (*self._evaluations, *self._jobs.values()) if not t.done()]
            if not pending:
                return
            await asyncio.wait(pending)

    # -- triggers -----------------------------------------------------------------------------

    async def tick(self) -> None:
        """One periodic evaluation; a clock jump since the previous tick is treated as a resume."""
        now = self._clock.now()
        previous, self._last_tick_at = self._last_tick_at, now
        if previous is not None:
            gap = now - previous
            expected = timedelta(seconds=self.policy.tick_seconds)
            if gap > expected + self.policy.jump_threshold or gap < -self.policy.jump_threshold:
                log.info("The clock jumped by %s between two ticks (sleep/resume?); re-evaluating soon", gap)
                self._debounce(retry_backoff=False)
        await self._evaluate()

    def notify_resumed(self) -> None:
        """The OS reported a resume from sleep: evaluate after the grace delay."""
        self._debounce(retry_backoff=False)

    def notify_network_up(self) -> None:
        """The network came back: after the grace delay, run overdue profiles, backing-off ones too."""
        self._debounce(retry_backoff=True)

    def sync_now(self, profile: str) -> asyncio.Task[None] | None:
        """Run ``profile`` now (manual trigger: bypasses back-off, pause and the grace delay).

        Returns the run's task: the one already running if there is one (coalesced), None when the
        engine is busy with something the scheduler did not start.
        """
        return self._start(profile, RunTrigger.MANUAL)

    async def refresh(self) -> None:
        """Re-read every profile's schedule now (after a settings change) and start what is due."""
        await self._track(self._evaluate())

    async def configure(self, profile: str, config: ScheduleConfig) -> None:
        """Store the schedule settings of ``profile`` (enabled, interval or daily time) and re-evaluate."""
        async with self._writes:
            await repos.save_schedule_config(self._db, profile, config)
        await self.refresh()

    async def pause(self, profile: str | None = None) -> None:
        """Pause the schedule of ``profile`` (every profile when None) until resumed; persisted."""
        for name in await self._names(profile):
            async with self._writes:
                state = await repos.get_schedule_state(self._db, name)
                if not is_user_paused(state):
                    await repos.put_schedule_state(
                        self._db, name, replace(state, paused_until=PAUSED_INDEFINITELY)
                    )
        await self.refresh()

    async def resume(self, profile: str | None = None) -> None:
        """Undo :meth:`pause`; a back-off still running is kept."""
        for name in await self._names(profile):
            async with self._writes:
                state = await repos.get_schedule_state(self._db, name)
                if is_user_paused(state):
                    await repos.put_schedule_state(self._db, name, replace(state, paused_until=None))
        await self.refresh()

    # -- internals ----------------------------------------------------------------------------

    async def _names(self, profile: str | None) -> list[str]:
        if profile is not None:
            return [profile]
        return [p.name for p in await repos.list_profiles(self._db)]

    def _track(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._evaluations.add(task)
        task.add_done_callback(self._evaluations.discard)
        return task

    def _debounce(self, *, retry_backoff: bool) -> None:
        """Hold scheduled runs for the grace delay, then evaluate once (restarted by a new trigger)."""
        self._hold_until = until = self._clock.now() + self.policy.grace
        if self._wake is not None and not self._wake.done():
            retry_backoff = retry_backoff or self._wake_retries_backoff
            self._wake.cancel()
        self._wake_retries_backoff = retry_backoff
        self._wake = asyncio.get_running_loop().create_task(self._after_grace(until, retry_backoff))

    async def _after_grace(self, until: datetime, retry_backoff: bool) -> None:
        await self._clock.sleep(max(0.0, (until - self._clock.now()).total_seconds()))
        self._wake = None
        self._hold_until = None
        try:
            await self._track(self._evaluate(retry_backoff=retry_backoff))
        except Exception:
            log.exception("Scheduler evaluation after a resume or network-up failed")

    async def _evaluate(self, *, retry_backoff: bool = False) -> None:
        async with self._lock:
            now = self._clock.now()
            held = self._hold_until is not None and now < self._hold_until
            profiles = await repos.list_profiles(self._db)
            for profile in profiles:
                state = await repos.get_schedule_state(self._db, profile.name)
                status = compute_status(
                    profile.name,
                    state,
                    now,
                    self.policy,
                    running=self.is_running(profile.name),
                    connected=profile.state is ConnectionState.CONNECTED,
                )
                self._publish(status)
                if held:
                    continue
                due = (
                    status.kind is ScheduleKind.IDLE
                    and status.next_run_at is not None
                    and status.next_run_at <= now
                )
                if due or (retry_backoff and status.kind is ScheduleKind.BACKING_OFF):
                    self._start(profile.name, RunTrigger.SCHEDULE)
            for gone in set(self._statuses) - {p.name for p in profiles}:
                del self._statuses[gone]

    def _start(self, profile: str, trigger: RunTrigger) -> asyncio.Task[None] | None:
        job = self._jobs.get(profile)
        if job is not None and not job.done():
            log.debug("%s trigger for %s coalesced into the running sync", trigger, profile)
            return job
        if self._is_busy(profile):
            log.debug("%s trigger for %s skipped: the engine is busy with it", trigger, profile)
            return None
        job = asyncio.get_running_loop().create_task(self._job(profile, trigger), name=f"sync:{profile}")
        self._jobs[profile] = job
        job.add_done_callback(
            lambda done: self._jobs.pop(profile) if self._jobs.get(profile) is done else None
        )
        previous = self._statuses.get(profile)
        self._publish(
            replace(previous, kind=ScheduleKind.RUNNING, next_run_at=None)
            if previous is not None
            else ScheduleStatus(profile, ScheduleKind.RUNNING, None, None)
        )
        return job

    async def _job(self, profile: str, trigger: RunTrigger) -> None:
        started = self._clock.now()
        try:
            async with self._writes:
                state = await repos.get_schedule_state(self._db, profile)
                await repos.put_schedule_state(self._db, profile, replace(state, last_started_at=started))
            try:
                outcome = (await self._runner(profile, trigger=trigger)).status
            except Exception:
                log.exception("The %s sync of %s failed", trigger, profile)
                outcome = RunStatus.FAILED
            async with self._writes:
                await self._record(profile, trigger, started, outcome)
        except Exception:
            log.exception("Could not record the %s sync of %s", trigger, profile)
        try:
            await self._publish_from_store(profile, running=self._is_busy(profile))
        except Exception:  # the profile was deleted meanwhile, or the store is gone
            log.warning("No schedule status for %s after its sync", profile, exc_info=True)
            self._statuses.pop(profile, None)

    async def _record(self, profile: str, trigger: RunTrigger, started: datetime, outcome: RunStatus) -> None:
        state = await repos.get_schedule_state(self._db, profile)  # fresh: pause/settings may have changed
        keep_pause = state.paused_until if is_user_paused(state) else None
        if outcome is RunStatus.SUCCEEDED:
            new = replace(state, last_success_at=started, consecutive_failures=0, paused_until=keep_pause)
        elif outcome is RunStatus.CANCELLED or trigger is not RunTrigger.SCHEDULE:
            return  # a cancelled run, or a failed manual one, leaves the schedule as it was
        else:
            failures = state.consecutive_failures + 1
            retry_at = self._clock.now() + backoff_delay(failures, _period(state), self.policy)
            new = replace(state, consecutive_failures=failures, paused_until=keep_pause or retry_at)
            log.info("Scheduled sync of %s failed (%d in a row); next try at %s", profile, failures, retry_at)
        await repos.put_schedule_state(self._db, profile, new)

    async def _publish_from_store(self, profile: str, *, running: bool) -> None:
        connection = await repos.get_profile(self._db, profile)
        state = await repos.get_schedule_state(self._db, profile)
        self._publish(
            compute_status(
                profile,
                state,
                self._clock.now(),
                self.policy,
                running=running,
                connected=connection.state is ConnectionState.CONNECTED,
            )
        )

    def _publish(self, status: ScheduleStatus) -> None:
        if self._statuses.get(status.profile) == status:
            return
        self._statuses[status.profile] = status
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:  # a broken listener must not stop the schedule
                log.exception("Schedule status listener failed")
