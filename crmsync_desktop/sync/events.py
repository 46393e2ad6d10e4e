"""Engine events: small frozen values published on an ``EventBus`` for the console, the tray and the CLI.

The engine never knows who listens. The console's bridge turns each event into a Qt signal, the
CLI draws a progress bar, tests record them. Subscribers run synchronously on the publisher's
thread (the event loop) and must be quick; a failing subscriber is logged, never breaks a sync.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger(__name__)


class EngineState(enum.StrEnum):
    IDLE = "idle"
    SYNCING = "syncing"
    THROTTLED = "throttled"
    OFFLINE = "offline"
    ERROR = "error"
    SIGN_IN_NEEDED = "sign_in_needed"


@dataclass(frozen=True, slots=True)
class StateChanged:
    profile: str
    state: EngineState
    detail: str = ""
    throttled_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunStarted:
    profile: str
    run_id: int
    kind: str  # "connect", "update_server", "sync_all", "incremental", "verify", ...


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a long operation stands. ``total`` is None when unknown (streamed pages)."""

    profile: str
    run_id: int
    entity: str
    phase: str  # "schema", "download", "deletions", "verify", ...
    done: int
    total: int | None = None
    records_per_second: float | None = None
    eta_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class RunFinished:
    profile: str
    run_id: int
    kind: str
    status: str  # RunStatus value
    summary: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LogEmitted:
    """A line of a run's log, as the admin reads it."""

    profile: str
    run_id: int
    level: str
    message: str
    entity: str | None = None


Event = StateChanged | RunStarted | Progress | RunFinished | LogEmitted
Subscriber = Callable[[Event], None]


class EventBus:
    """Publish/subscribe for engine events (one bus per engine)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; returns the function that removes it again."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken listener must not break a sync
                log.exception("Event subscriber failed on %s", type(event).__name__)
