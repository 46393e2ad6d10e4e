"""What the tray shows, as a pure function of what the engine and the scheduler report. No Qt here.

:func:`tray_state` maps a :class:`TrayInput` (engine state, schedule status, queue counts, times)
to a :class:`TrayState`: one icon name, the tooltip, the menu flags and at most one notification.
Notifications are edges, not levels, so the function also takes the previous input: a failed run
notifies once when the engine turns to ``error``, Error transactions only when their count grows,
sign-in once when it becomes needed. ``ui/tray.py`` only applies the result.

Icon precedence (most important first): attention (sign-in needed) > throttled > syncing >
offline > error (failed run or transactions in Error) > idle. Paused and disabled schedules keep
the idle icon and say so in the tooltip.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, tzinfo

from crmsync_desktop.sync.events import EngineState
from crmsync_desktop.sync.scheduler import ScheduleKind, ScheduleStatus

__all__ = [
    "NotificationLevel",
    "TrayIconName",
    "TrayInput",
    "TrayNotification",
    "TrayState",
    "tray_state",
]

APP_TITLE = "crmsync"
TOOLTIP_LIMIT = 127  # Windows cuts tray tooltips here


class TrayIconName(enum.StrEnum):
    """One icon per state; the file is ``resources/tray/<value>.svg``."""

    IDLE = "idle"
    SYNCING = "syncing"
    THROTTLED = "throttled"
    OFFLINE = "offline"
    ERROR = "error"
    ATTENTION = "attention"


class NotificationLevel(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class TrayNotification:
    title: str
    message: str
    level: NotificationLevel = NotificationLevel.INFO


@dataclass(frozen=True, slots=True)
class TrayInput:
    """Everything the tray depends on, for one profile.

    ``last_sync_at``/``next_sync_at`` default to the schedule's ``last_success_at``/``next_run_at``;
    ``pending``/``errors`` are the offline-transaction counts (``count_transactions``);
    ``detail`` is the message of the last ``StateChanged``.
    """

    now: datetime
    engine_state: EngineState = EngineState.IDLE
    detail: str = ""
    schedule: ScheduleStatus | None = None
    pending: int = 0
    errors: int = 0
    last_sync_at: datetime | None = None
    next_sync_at: datetime | None = None
    throttled_until: datetime | None = None
    sign_in_needed: bool = False

    @property
    def profile(self) -> str:
        return self.schedule.profile if self.schedule is not None else ""

    @property
    def needs_sign_in(self) -> bool:
        return self.sign_in_needed or self.engine_state is EngineState.SIGN_IN_NEEDED

    @property
    def syncing(self) -> bool:
        return self.engine_state is EngineState.SYNCING or (
            self.schedule is not None and self.schedule.kind is ScheduleKind.RUNNING
        )

    @property
    def throttled(self) -> bool:
        return self.engine_state is EngineState.THROTTLED or (
            self.throttled_until is not None and self.throttled_until > self.now
        )


@dataclass(frozen=True, slots=True)
class TrayState:
    icon: TrayIconName
    tooltip: str
    can_sync_now: bool
    can_pause: bool
    paused: bool
    notification: TrayNotification | None = None

    @property
    def pause_label(self) -> str:
        """The text of the Pause/Resume menu entry."""
        return "Resume" if self.paused else "Pause"


def tray_state(
    current: TrayInput, previous: TrayInput | None = None, *, tz: tzinfo | None = None
) -> TrayState:
    """The tray for ``current``; ``previous`` is the input of the last call (None at start-up).

    ``tz`` is the zone for the times in the tooltip (None: the machine's local zone).
    """
    schedule = current.schedule
    paused = schedule is not None and schedule.kind is ScheduleKind.PAUSED
    return TrayState(
        icon=_icon(current),
        tooltip=_tooltip(current, tz),
        can_sync_now=schedule is not None and not current.syncing,
        can_pause=schedule is not None and schedule.kind is not ScheduleKind.DISABLED,
        paused=paused,
        notification=_notification(current, previous),
    )


def _icon(current: TrayInput) -> TrayIconName:
    if current.needs_sign_in:
        return TrayIconName.ATTENTION
    if current.throttled:
        return TrayIconName.THROTTLED
    if current.syncing:
        return TrayIconName.SYNCING
    if current.engine_state is EngineState.OFFLINE:
        return TrayIconName.OFFLINE
    if current.engine_state is EngineState.ERROR or current.errors > 0:
        return TrayIconName.ERROR
    return TrayIconName.IDLE


def _time(value: datetime, now: datetime, tz: tzinfo | None) -> str:
    local, today = value.astimezone(tz), now.astimezone(tz)
    return local.strftime("%H:%M") if local.date() == today.date() else local.strftime("%Y-%m-%d %H:%M")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _status_line(current: TrayInput, tz: tzinfo | None) -> str:
    if current.needs_sign_in:
        return "Sign-in needed"
    if current.throttled:
        until = current.throttled_until
        if until is not None and until > current.now:
            return f"Throttled until {_time(until, current.now, tz)}"
        return "Throttled by the server"
    if current.syncing:
        return "Syncing…"
    if current.engine_state is EngineState.OFFLINE:
        return "Offline"
    if current.engine_state is EngineState.ERROR:
        return "Last sync failed"
    if current.errors > 0:
        return f"{_plural(current.errors, 'transaction')} in Error"
    last = current.last_sync_at or (current.schedule.last_success_at if current.schedule else None)
    if last is None:
        return "Not synced yet"
    return "Up to date" if current.pending == 0 else "Idle"


def _schedule_line(current: TrayInput, tz: tzinfo | None) -> str | None:
    schedule = current.schedule
    kind = schedule.kind if schedule is not None else None
    if kind is ScheduleKind.PAUSED:
        return "Schedule paused"
    if kind is ScheduleKind.DISABLED:
        return "Schedule off"
    if kind is ScheduleKind.RUNNING:
        return None
    next_at = current.next_sync_at or (schedule.next_run_at if schedule is not None else None)
    if next_at is None:
        return None
    when = "now" if next_at <= current.now else _time(next_at, current.now, tz)
    if kind is ScheduleKind.BACKING_OFF and schedule is not None:
        return f"Retry: {when} ({_plural(schedule.consecutive_failures, 'failure')})"
    return f"Next sync: {when}"


def _tooltip(current: TrayInput, tz: tzinfo | None) -> str:
    lines = [_status_line(current, tz)]
    last = current.last_sync_at or (current.schedule.last_success_at if current.schedule else None)
    lines.append(f"Last sync: {_time(last, current.now, tz) if last is not None else 'never'}")
    schedule_line = _schedule_line(current, tz)
    if schedule_line:
        lines.append(schedule_line)
    if current.pending or current.errors:
        lines.append(f"Queue: {current.pending} pending, {current.errors} in Error")
    body = "\n".join(lines)
    title = f"{APP_TITLE} – {current.profile}" if current.profile else APP_TITLE
    room = TOOLTIP_LIMIT - len(body) - 1
    if len(title) > room:  # a long profile name gives way; the facts stay
        title = title[: max(room - 1, len(APP_TITLE))] + "…"
    return f"{title}\n{body}"


def _notification(current: TrayInput, previous: TrayInput | None) -> TrayNotification | None:
    before = previous if previous is not None else TrayInput(now=current.now, errors=current.errors)
    where = f" of {current.profile}" if current.profile else ""
    if current.needs_sign_in and not before.needs_sign_in:
        return TrayNotification(
            "Sign-in needed",
            f"Sign in again to continue the sync{where}. Open the console to sign in.",
            NotificationLevel.WARNING,
        )
    if current.engine_state is EngineState.ERROR and before.engine_state is not EngineState.ERROR:
        reason = current.detail or "See the run log in the console."
        return TrayNotification(f"Sync{where} failed", reason, NotificationLevel.CRITICAL)
    if current.errors > before.errors:
        new = current.errors - before.errors
        return TrayNotification(
            f"{_plural(new, 'transaction')} failed",
            f"{_plural(current.errors, 'transaction')} now in Error{where}. "
            "Open the console to fix or retry them.",
            NotificationLevel.WARNING,
        )
    return None
