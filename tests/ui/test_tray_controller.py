"""The tray follows engine state, queue counts and the schedule, and notifies on changes only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtWidgets import QSystemTrayIcon

from crmsync_desktop.domain import TransactionStatus
from crmsync_desktop.sync.events import EngineState, EventBus, StateChanged
from crmsync_desktop.sync.scheduler import ScheduleKind, ScheduleStatus
from crmsync_desktop.sync.upload.events import QueueChanged
from crmsync_desktop.ui.bridge import EngineBridge
from crmsync_desktop.ui.tray import TrayIcon
from crmsync_desktop.ui.tray_controller import TrayController

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def tray(qtbot, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    messages: list[tuple[str, str]] = []
    icon = TrayIcon(on_sync_now=lambda: None, on_pause=lambda: None, on_resume=lambda: None,
                    on_open_console=lambda: None, on_quit=lambda: None)
    monkeypatch.setattr(icon._tray, "showMessage", lambda title, text, *a: messages.append((title, text)))
    icon.messages = messages  # type: ignore[attr-defined]
    yield icon
    icon.close()


def test_state_queue_and_schedule_reach_the_icon(qtbot, tray) -> None:  # type: ignore[no-untyped-def]
    bus = EventBus()
    bridge = EngineBridge(bus)
    controller = TrayController(tray, bridge, lambda: "Contoso", clock=lambda: NOW)
    assert tray.icon_name.value == "idle"

    with qtbot.waitSignal(bridge.state_changed):
        bus.publish(StateChanged("Contoso", EngineState.SYNCING))
    assert tray.icon_name.value == "syncing"

    with qtbot.waitSignal(bridge.state_changed):
        bus.publish(StateChanged("Other", EngineState.ERROR, "not ours"))
    assert tray.icon_name.value == "syncing"  # another profile's state is not shown

    with qtbot.waitSignal(bridge.other_event):
        bus.publish(QueueChanged("Contoso", {TransactionStatus.PENDING: 4, TransactionStatus.ERROR: 2}))
    assert "4" in tray.tooltip and "2" in tray.tooltip
    assert any("Error" in title or "error" in text.lower() for title, text in tray.messages)

    before = len(tray.messages)
    with qtbot.waitSignal(bridge.other_event):
        bus.publish(QueueChanged("Contoso", {TransactionStatus.PENDING: 4, TransactionStatus.ERROR: 2}))
    assert len(tray.messages) == before  # same counts: no second notification

    controller.on_schedule(ScheduleStatus("Contoso", ScheduleKind.IDLE, NOW + timedelta(minutes=30), NOW))
    with qtbot.waitSignal(bridge.state_changed):
        bus.publish(StateChanged("Contoso", EngineState.IDLE))
    assert tray.icon_name.value == "error"  # transactions in Error keep the icon red until handled
    with qtbot.waitSignal(bridge.other_event):
        bus.publish(QueueChanged("Contoso", {TransactionStatus.PENDING: 0, TransactionStatus.ERROR: 0}))
    assert tray.icon_name.value == "idle"
    assert tray.tooltip.endswith("Next sync: " + (NOW + timedelta(minutes=30)).astimezone().strftime("%H:%M"))
    controller.stop()
    bridge.detach()
