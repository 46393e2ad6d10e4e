"""EngineBridge: the one place where engine events become Qt signals.

The engine publishes plain event values on its ``EventBus``; the bridge is the only Qt-side
subscriber and re-emits each as a signal that views connect to. Progress is already coalesced by
the engine (at most every 250 ms per run), so views can repaint on every signal. Events published
from another thread are delivered on the GUI thread (queued connection).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal, Slot

from crmsync_desktop.sync.events import (
    Event,
    EventBus,
    LogEmitted,
    Progress,
    RunFinished,
    RunStarted,
    StateChanged,
)


class EngineBridge(QObject):
    state_changed = Signal(object)  # StateChanged
    run_started = Signal(object)  # RunStarted
    progress = Signal(object)  # Progress
    run_finished = Signal(object)  # RunFinished
    log_emitted = Signal(object)  # LogEmitted
    other_event = Signal(object)  # events of later modules (queue counts, schedule status, ...)

    _incoming = Signal(object)

    def __init__(self, bus: EventBus, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._incoming.connect(self._dispatch, Qt.ConnectionType.AutoConnection)
        self._unsubscribe = bus.subscribe(self._incoming.emit)

    def detach(self) -> None:
        self._unsubscribe()

    @Slot(object)
    def _dispatch(self, event: Event) -> None:
        if isinstance(event, StateChanged):
            self.state_changed.emit(event)
        elif isinstance(event, Progress):
            self.progress.emit(event)
        elif isinstance(event, RunStarted):
            self.run_started.emit(event)
        elif isinstance(event, RunFinished):
            self.run_finished.emit(event)
        elif isinstance(event, LogEmitted):
            self.log_emitted.emit(event)
        else:
            self.other_event.emit(event)
