"""The tray's decisions, without Qt: icon precedence, tooltip, menu flags and notification edges."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crmsync_desktop.sync.events import EngineState
from crmsync_desktop.sync.scheduler import ScheduleKind, ScheduleStatus
from crmsync_desktop.ui.tray_state import (
    NotificationLevel,
    TrayIconName,
    TrayInput,
    TrayNotification,
    TrayState,
    tray_state,
)

NOW = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
P = "Contoso"


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def sched(
    kind: ScheduleKind = ScheduleKind.IDLE,
    next_run_at: datetime | None = None,
    last: datetime | None = None,
    failures: int = 0,
) -> ScheduleStatus:
    return ScheduleStatus(P, kind, next_run_at, last, failures)


IDLE = sched(ScheduleKind.IDLE, at(30), at(-30))


def state(previous: TrayInput | None = None, **fields: object) -> TrayState:
    values: dict[str, object] = {"now": NOW, "schedule": IDLE} | fields
    return tray_state(TrayInput(**values), previous, tz=UTC)  # type: ignore[arg-type]


# -- icon -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine_state", "expected"),
    [
        (EngineState.IDLE, TrayIconName.IDLE),
        (EngineState.SYNCING, TrayIconName.SYNCING),
        (EngineState.THROTTLED, TrayIconName.THROTTLED),
        (EngineState.OFFLINE, TrayIconName.OFFLINE),
        (EngineState.ERROR, TrayIconName.ERROR),
        (EngineState.SIGN_IN_NEEDED, TrayIconName.ATTENTION),
    ],
)
def test_one_icon_per_engine_state(engine_state: EngineState, expected: TrayIconName) -> None:
    assert state(engine_state=engine_state).icon is expected


def test_every_engine_state_is_mapped_to_a_distinct_icon() -> None:
    icons = {state(engine_state=s).icon for s in EngineState}
    assert icons == set(TrayIconName)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # sign-in beats everything
        (
            {
                "sign_in_needed": True,
                "engine_state": EngineState.SYNCING,
                "errors": 3,
                "throttled_until": at(5),
            },
            TrayIconName.ATTENTION,
        ),
        # a throttle still running beats syncing (the engine waits on Retry-After)
        ({"engine_state": EngineState.SYNCING, "throttled_until": at(5)}, TrayIconName.THROTTLED),
        ({"engine_state": EngineState.IDLE, "throttled_until": at(-5)}, TrayIconName.IDLE),  # over
        ({"engine_state": EngineState.THROTTLED, "throttled_until": at(-5)}, TrayIconName.THROTTLED),
        # syncing beats a standing Error count and an old error
        ({"engine_state": EngineState.SYNCING, "errors": 2}, TrayIconName.SYNCING),
        ({"schedule": sched(ScheduleKind.RUNNING), "engine_state": EngineState.ERROR}, TrayIconName.SYNCING),
        ({"engine_state": EngineState.OFFLINE, "errors": 2}, TrayIconName.OFFLINE),
        ({"engine_state": EngineState.IDLE, "errors": 1}, TrayIconName.ERROR),
        ({"engine_state": EngineState.IDLE, "pending": 10}, TrayIconName.IDLE),
        ({"schedule": sched(ScheduleKind.PAUSED)}, TrayIconName.IDLE),
        ({"schedule": sched(ScheduleKind.DISABLED)}, TrayIconName.IDLE),
        (
            {
                "schedule": sched(ScheduleKind.BACKING_OFF, at(2), failures=2),
                "engine_state": EngineState.OFFLINE,
            },
            TrayIconName.OFFLINE,
        ),
        ({"schedule": None}, TrayIconName.IDLE),
    ],
)
def test_icon_precedence(fields: dict[str, object], expected: TrayIconName) -> None:
    assert state(**fields).icon is expected


def test_icon_is_total_over_all_combinations() -> None:
    """Every combination of inputs yields exactly one icon, and the precedence holds throughout."""
    kinds = [None, *ScheduleKind]
    for engine_state, kind, errors, sign_in, throttled in itertools.product(
        EngineState, kinds, (0, 1), (False, True), (None, at(5))
    ):
        schedule = None if kind is None else sched(kind, at(5))
        result = state(
            engine_state=engine_state,
            schedule=schedule,
            errors=errors,
            sign_in_needed=sign_in,
            throttled_until=throttled,
        )
        syncing = engine_state is EngineState.SYNCING or kind is ScheduleKind.RUNNING
        if sign_in or engine_state is EngineState.SIGN_IN_NEEDED:
            assert result.icon is TrayIconName.ATTENTION
        elif throttled is not None or engine_state is EngineState.THROTTLED:
            assert result.icon is TrayIconName.THROTTLED
        elif syncing:
            assert result.icon is TrayIconName.SYNCING
        elif engine_state is EngineState.OFFLINE:
            assert result.icon is TrayIconName.OFFLINE
        elif engine_state is EngineState.ERROR or errors:
            assert result.icon is TrayIconName.ERROR
        else:
            assert result.icon is TrayIconName.IDLE
        assert result.can_sync_now == (schedule is not None and not syncing)
        assert result.paused == (kind is ScheduleKind.PAUSED)
        assert result.can_pause == (kind not in (None, ScheduleKind.DISABLED))
        assert result.tooltip.startswith("crmsync")


# -- tooltip --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "crmsync – Contoso\nUp to date\nLast sync: 09:00\nNext sync: 10:00"),
        (
            {"pending": 4, "errors": 0},
            "crmsync – Contoso\nIdle\nLast sync: 09:00\nNext sync: 10:00\nQueue: 4 pending, 0 in Error",
        ),
        (
            {"errors": 1},
            (
                "crmsync – Contoso\n1 transaction in Error\nLast sync: 09:00\nNext sync: 10:00\n"
                "Queue: 0 pending, 1 in Error"
            ),
        ),
        (
            {"schedule": sched(ScheduleKind.IDLE, at(-1))},
            "crmsync – Contoso\nNot synced yet\nLast sync: never\nNext sync: now",
        ),
        (
            {"engine_state": EngineState.SYNCING, "schedule": sched(ScheduleKind.RUNNING, None, at(-30))},
            "crmsync – Contoso\nSyncing…\nLast sync: 09:00",
        ),
        (
            {"engine_state": EngineState.THROTTLED, "throttled_until": at(5)},
            "crmsync – Contoso\nThrottled until 09:35\nLast sync: 09:00\nNext sync: 10:00",
        ),
        (
            {"engine_state": EngineState.THROTTLED},
            "crmsync – Contoso\nThrottled by the server\nLast sync: 09:00\nNext sync: 10:00",
        ),
        (
            {
                "engine_state": EngineState.OFFLINE,
                "schedule": sched(ScheduleKind.BACKING_OFF, at(4), at(-30), 3),
            },
            "crmsync – Contoso\nOffline\nLast sync: 09:00\nRetry: 09:34 (3 failures)",
        ),
        (
            {
                "engine_state": EngineState.ERROR,
                "schedule": sched(ScheduleKind.BACKING_OFF, at(1), at(-30), 1),
            },
            "crmsync – Contoso\nLast sync failed\nLast sync: 09:00\nRetry: 09:31 (1 failure)",
        ),
        ({"sign_in_needed": True}, "crmsync – Contoso\nSign-in needed\nLast sync: 09:00\nNext sync: 10:00"),
        (
            {"schedule": sched(ScheduleKind.PAUSED, None, at(-30))},
            "crmsync – Contoso\nUp to date\nLast sync: 09:00\nSchedule paused",
        ),
        (
            {"schedule": sched(ScheduleKind.DISABLED, None, at(-30))},
            "crmsync – Contoso\nUp to date\nLast sync: 09:00\nSchedule off",
        ),
        # another day: the date is shown
        (
            {"schedule": sched(ScheduleKind.IDLE, at(24 * 60), at(-2 * 24 * 60))},
            "crmsync – Contoso\nUp to date\nLast sync: 2024-05-04 09:30\nNext sync: 2024-05-07 09:30",
        ),
        # explicit times win over the schedule's
        (
            {"last_sync_at": at(-5), "next_sync_at": at(10)},
            "crmsync – Contoso\nUp to date\nLast sync: 09:25\nNext sync: 09:40",
        ),
        ({"schedule": None}, "crmsync\nNot synced yet\nLast sync: never"),
        (
            {"schedule": None, "next_sync_at": at(10)},
            "crmsync\nNot synced yet\nLast sync: never\nNext sync: 09:40",
        ),
    ],
)
def test_tooltip(fields: dict[str, object], expected: str) -> None:
    assert state(**fields).tooltip == expected


def test_tooltip_times_use_the_given_zone() -> None:
    cet = __import__("datetime").timezone(timedelta(hours=2))
    result = tray_state(TrayInput(now=NOW, schedule=IDLE), tz=cet)
    assert "Last sync: 11:00" in result.tooltip and "Next sync: 12:00" in result.tooltip


def test_tooltip_defaults_to_the_local_zone() -> None:
    result = tray_state(TrayInput(now=NOW, schedule=IDLE))
    assert f"Last sync: {at(-30).astimezone().strftime('%H:%M')}" in result.tooltip


def test_a_busy_tooltip_fits_the_windows_limit() -> None:
    """Windows truncates tray tooltips at 127 characters."""
    busy = state(
        engine_state=EngineState.THROTTLED,
        throttled_until=at(5),
        pending=12345,
        errors=678,
        schedule=sched(ScheduleKind.BACKING_OFF, at(4), at(-30), 12),
    )
    assert len(busy.tooltip) <= 127
    assert busy.tooltip.startswith("crmsync – Contoso\n")
    long_name = tray_state(
        TrayInput(
            now=NOW,
            engine_state=EngineState.THROTTLED,
            throttled_until=at(5),
            pending=12345,
            errors=678,
            schedule=replace(
                sched(ScheduleKind.BACKING_OFF, at(4), at(-30), 12), profile="A very long profile name " * 3
            ),
        ),
        tz=UTC,
    )
    assert len(long_name.tooltip) == 127
    assert long_name.tooltip.startswith("crmsync – A very long")
    assert long_name.tooltip.split("\n")[0].endswith("…")
    assert long_name.tooltip.endswith("Queue: 12345 pending, 678 in Error")


# -- menu -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "engine_state", "can_sync_now", "can_pause", "paused", "label"),
    [
        (IDLE, EngineState.IDLE, True, True, False, "Pause"),
        (sched(ScheduleKind.PAUSED), EngineState.IDLE, True, True, True, "Resume"),
        (sched(ScheduleKind.BACKING_OFF, at(2), failures=1), EngineState.ERROR, True, True, False, "Pause"),
        (sched(ScheduleKind.DISABLED), EngineState.IDLE, True, False, False, "Pause"),
        (sched(ScheduleKind.RUNNING), EngineState.SYNCING, False, True, False, "Pause"),
        (IDLE, EngineState.SYNCING, False, True, False, "Pause"),  # syncing outside the scheduler
        (None, EngineState.IDLE, False, False, False, "Pause"),  # no profile yet
    ],
)
def test_menu_flags(
    schedule: ScheduleStatus | None,
    engine_state: EngineState,
    can_sync_now: bool,
    can_pause: bool,
    paused: bool,
    label: str,
) -> None:
    result = state(schedule=schedule, engine_state=engine_state)
    assert (result.can_sync_now, result.can_pause, result.paused, result.pause_label) == (
        can_sync_now,
        can_pause,
        paused,
        label,
    )


# -- notifications --------------------------------------------------------------------------------


def inp(**fields: object) -> TrayInput:
    values: dict[str, object] = {"now": NOW, "schedule": IDLE} | fields
    return TrayInput(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        # nothing happened
        (inp(), inp(), None),
        (None, inp(), None),
        # a run fails: once, on the edge
        (
            inp(engine_state=EngineState.SYNCING),
            inp(engine_state=EngineState.ERROR, detail="HTTP 500 from server"),
            TrayNotification("Sync of Contoso failed", "HTTP 500 from server", NotificationLevel.CRITICAL),
        ),
        (
            inp(engine_state=EngineState.SYNCING),
            inp(engine_state=EngineState.ERROR),
            TrayNotification(
                "Sync of Contoso failed", "See the run log in the console.", NotificationLevel.CRITICAL
            ),
        ),
        (inp(engine_state=EngineState.ERROR), inp(engine_state=EngineState.ERROR, detail="again"), None),
        (
            None,
            inp(engine_state=EngineState.ERROR, detail="at start-up"),
            TrayNotification("Sync of Contoso failed", "at start-up", NotificationLevel.CRITICAL),
        ),
        # offline and throttled are not worth a pop-up
        (inp(engine_state=EngineState.SYNCING), inp(engine_state=EngineState.OFFLINE), None),
        (inp(engine_state=EngineState.SYNCING), inp(engine_state=EngineState.THROTTLED), None),
        # Error transactions: only when the count grows
        (
            inp(errors=2),
            inp(errors=5),
            TrayNotification(
                "3 transactions failed",
                "5 transactions now in Error of Contoso. Open the console to fix or retry them.",
                NotificationLevel.WARNING,
            ),
        ),
        (
            inp(errors=0),
            inp(errors=1),
            TrayNotification(
                "1 transaction failed",
                "1 transaction now in Error of Contoso. Open the console to fix or retry them.",
                NotificationLevel.WARNING,
            ),
        ),
        (inp(errors=5), inp(errors=5), None),
        (inp(errors=5), inp(errors=2), None),
        (None, inp(errors=7), None),  # at start-up the standing count is not news
        # sign-in: once when it becomes needed, by flag or by engine state
        (
            inp(),
            inp(sign_in_needed=True),
            TrayNotification(
                "Sign-in needed",
                "Sign in again to continue the sync of Contoso. Open the console to sign in.",
                NotificationLevel.WARNING,
            ),
        ),
        (
            inp(engine_state=EngineState.SYNCING),
            inp(engine_state=EngineState.SIGN_IN_NEEDED),
            TrayNotification(
                "Sign-in needed",
                "Sign in again to continue the sync of Contoso. Open the console to sign in.",
                NotificationLevel.WARNING,
            ),
        ),
        (inp(sign_in_needed=True), inp(engine_state=EngineState.SIGN_IN_NEEDED), None),
        (
            None,
            inp(sign_in_needed=True),
            TrayNotification(
                "Sign-in needed",
                "Sign in again to continue the sync of Contoso. Open the console to sign in.",
                NotificationLevel.WARNING,
            ),
        ),
        # several edges at once: the most actionable one wins
        (
            inp(),
            inp(sign_in_needed=True, engine_state=EngineState.ERROR, errors=3),
            TrayNotification(
                "Sign-in needed",
                "Sign in again to continue the sync of Contoso. Open the console to sign in.",
                NotificationLevel.WARNING,
            ),
        ),
        (
            inp(),
            inp(engine_state=EngineState.ERROR, detail="boom", errors=3),
            TrayNotification("Sync of Contoso failed", "boom", NotificationLevel.CRITICAL),
        ),
        # without a profile the messages do not name one
        (
            inp(schedule=None),
            inp(schedule=None, engine_state=EngineState.ERROR),
            TrayNotification("Sync failed", "See the run log in the console.", NotificationLevel.CRITICAL),
        ),
    ],
)
def test_notifications_are_edges(
    previous: TrayInput | None, current: TrayInput, expected: TrayNotification | None
) -> None:
    assert tray_state(current, previous, tz=UTC).notification == expected


def test_a_sequence_notifies_once_per_event() -> None:
    run = [
        inp(engine_state=EngineState.SYNCING),
        inp(engine_state=EngineState.ERROR, detail="x"),
        inp(engine_state=EngineState.ERROR, detail="x"),
        inp(engine_state=EngineState.SYNCING),
        inp(engine_state=EngineState.IDLE, errors=2),
        inp(engine_state=EngineState.IDLE, errors=2),
        inp(engine_state=EngineState.ERROR, detail="y", errors=2),
    ]
    previous: TrayInput | None = None
    titles = []
    for current in run:
        note = tray_state(current, previous, tz=UTC).notification
        titles.append(note.title if note else None)
        previous = current
    assert titles == [
        None,
        "Sync of Contoso failed",
        None,
        None,
        "2 transactions failed",
        None,
        "Sync of Contoso failed",
    ]


def test_values_are_frozen() -> None:
    result = state()
    with pytest.raises(AttributeError):
        result.icon = TrayIconName.ERROR  # type: ignore[misc]
    assert replace(inp(), errors=1).errors == 1


def test_tray_state_imports_no_qt() -> None:
    code = (
        "import sys, crmsync_desktop.ui.tray_state;"
        "print(','.join(m for m in sys.modules if m.startswith(('PySide6','shiboken6','qasync'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
