"""EngineBridge turns engine events into Qt signals, on the GUI thread."""

from __future__ import annotations

import threading

from crmsync_desktop.sync.events import EngineState, EventBus, Progress, RunFinished, StateChanged
from crmsync_desktop.ui.bridge import EngineBridge


def test_each_event_reaches_its_signal(qtbot) -> None:  # type: ignore[no-untyped-def]
    bus = EventBus()
    bridge = EngineBridge(bus)
    with qtbot.waitSignal(bridge.state_changed) as blocker:
        bus.publish(StateChanged("Contoso", EngineState.SYNCING))
    assert blocker.args[0].state is EngineState.SYNCING
    with qtbot.waitSignal(bridge.progress) as blocker:
        bus.publish(Progress("Contoso", 1, "account", "download", 10, 100))
    assert blocker.args[0].done == 10
    with qtbot.assertNotEmitted(bridge.progress), qtbot.waitSignal(bridge.run_finished):
        bus.publish(RunFinished("Contoso", 1, "sync_all", "succeeded", "10 created"))
    bridge.detach()
    with qtbot.assertNotEmitted(bridge.state_changed, wait=50):
        bus.publish(StateChanged("Contoso", EngineState.IDLE))


def test_events_from_a_worker_thread_arrive_on_the_gui_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    bus = EventBus()
    bridge = EngineBridge(bus)
    seen: list[bool] = []
    bridge.state_changed.connect(lambda _e: seen.append(threading.current_thread() is threading.main_thread()))
    worker = threading.Thread(target=bus.publish, args=(StateChanged("Contoso", EngineState.OFFLINE),))
    with qtbot.waitSignal(bridge.state_changed):
        worker.start()
        worker.join()
    assert seen == [True]
    bridge.detach()
