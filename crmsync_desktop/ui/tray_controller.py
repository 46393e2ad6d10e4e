"""Keeps the tray icon true: feeds engine state, schedule status and queue counts into ``tray_state``.

The pure mapping lives in ``tray_state`` (tested without Qt); this object only gathers its inputs
from the bridge's signals and the scheduler's status callback, remembers the previous input (so a
notification fires on a change, not on every update) and applies the result to the ``TrayIcon``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from PySide6.QtCore import QObject, QTimer, Slot

from crmsync_desktop.domain import TransactionStatus
from crmsync_desktop.sync.events import EngineState, StateChanged
from crmsync_desktop.sync.scheduler import ScheduleStatus
from crmsync_desktop.sync.upload.events import QueueChanged
from crmsync_desktop.ui.bridge import EngineBridge
from crmsync_desktop.ui.tray import TrayIcon
from crmsync_desktop.ui.tray_state import TrayInput, tray_state

REFRESH_MS = 30_000  # tooltip times ("next sync in 12 min") stay fresh without events


class TrayController(QObject):
    """Drives one ``TrayIcon`` for the profile that ``profile_getter`` names."""

    def __init__(
        self,
        tray: TrayIcon,
        bridge: EngineBridge,
        profile_getter: Callable[[], str | None],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._tray = tray
        self._profile = profile_getter
        self._clock = clock
        self._current = TrayInput(now=clock())
        self._previous: TrayInput | None = None
        bridge.state_changed.connect(self._on_state)
        bridge.other_event.connect(self._on_other)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._apply)
        self._timer.start()
        self._apply()

    @property
    def current(self) -> TrayInput:
        return self._current

    def _mine(self, profile: str) -> bool:
        wanted = self._profile()
        return wanted is None or profile == wanted

    @Slot(object)
    def _on_state(self, event: StateChanged) -> None:
        if not self._mine(event.profile):
            return
        self._update(
            engine_state=event.state,
            detail=event.detail,
            throttled_until=event.throttled_until,
            sign_in_needed=event.state is EngineState.SIGN_IN_NEEDED,
        )

    @Slot(object)
    def _on_other(self, event: object) -> None:
        if isinstance(event, QueueChanged) and self._mine(event.profile):
            self._update(
                pending=event.counts.get(TransactionStatus.PENDING, 0),
                errors=event.counts.get(TransactionStatus.ERROR, 0),
            )

    def on_schedule(self, status: ScheduleStatus) -> None:
        """The scheduler's status callback (subscribe this)."""
        if self._mine(status.profile):
            self._update(schedule=status)

    def set_queue_counts(self, counts: dict[TransactionStatus, int]) -> None:
        self._update(pending=counts.get(TransactionStatus.PENDING, 0), errors=counts.get(TransactionStatus.ERROR, 0))

    def _update(self, **changes: object) -> None:
        self._current = replace(self._current, **changes)  # type: ignore[arg-type]
        self._apply()

    @Slot()
    def _apply(self) -> None:
        self._current = replace(self._current, now=self._clock())
        self._tray.apply(tray_state(self._current, self._previous))
        self._previous = self._current

    def stop(self) -> None:
        self._timer.stop()
