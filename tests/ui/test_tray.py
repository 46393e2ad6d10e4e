"""The tray wrapper under offscreen: the no-tray fallback, menu actions → callbacks, states applied.

Offscreen has no system tray (stack-recipes §3), which is exactly the fallback path; to exercise
the icon itself the availability check is patched to True (the QSystemTrayIcon object works
without a tray host, it is just never drawn).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QSystemTrayIcon

from crmsync_desktop.sync.events import EngineState
from crmsync_desktop.sync.scheduler import ScheduleKind, ScheduleStatus
from crmsync_desktop.ui import tray as tray_module
from crmsync_desktop.ui.icons import tray_icon, tray_icon_path
from crmsync_desktop.ui.tray import NO_TRAY_MESSAGE, TrayIcon, create_tray
from crmsync_desktop.ui.tray_state import (
    NotificationLevel,
    TrayIconName,
    TrayInput,
    TrayNotification,
    TrayState,
    tray_state,
)

NOW = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)


class Calls:
    def __init__(self) -> None:
        self.names: list[str] = []

    def __getattr__(self, name: str) -> Callable[[], None]:
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda: self.names.append(name)

    def kwargs(self) -> dict[str, Callable[[], object]]:
        return {
            n: getattr(self, n)
            for n in ("on_sync_now", "on_pause", "on_resume", "on_open_console", "on_quit")
        }


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def tray_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))


@pytest.fixture
def tray(qapp: object, tray_available: None, calls: Calls) -> Iterator[TrayIcon]:
    icon = TrayIcon(**calls.kwargs())
    try:
        yield icon
    finally:
        icon.close()


def state(**fields: object) -> TrayState:
    values: dict[str, object] = {
        "now": NOW,
        "schedule": ScheduleStatus("Contoso", ScheduleKind.IDLE, NOW, NOW),
    }
    return tray_state(TrayInput(**(values | fields)), tz=UTC)  # type: ignore[arg-type]


# -- the fallback -------------------------------------------------------------------------------


def test_offscreen_reports_no_tray_and_create_tray_falls_back(qapp: object, calls: Calls) -> None:
    assert TrayIcon.available() is False
    tray, message = create_tray(**calls.kwargs())
    assert tray is None
    assert message == NO_TRAY_MESSAGE
    assert "no system tray" in message and "window" in message
    assert calls.names == []


# Showing a tray icon on a platform without a tray host makes Qt's generic tray fallback connect
# to a signal the offscreen platform lacks; that warning is an artefact of offscreen only.
@pytest.mark.qt_log_ignore(r"No such signal QPlatformNativeInterface::systemTrayWindowChanged")
def test_with_a_tray_create_tray_builds_and_shows_it(
    qapp: object, tray_available: None, calls: Calls
) -> None:
    tray, message = create_tray(**calls.kwargs())
    try:
        assert isinstance(tray, TrayIcon)
        assert message == ""
        assert tray.is_visible()
        tray.hide()
        assert not tray.is_visible()
    finally:
        assert tray is not None
        tray.close()


# -- menu → callbacks ---------------------------------------------------------------------------


def test_the_menu_has_the_four_entries(tray: TrayIcon) -> None:
    texts = [a.text() for a in tray.menu.actions() if not a.isSeparator()]
    assert texts == ["Sync now", "Pause", "Open console", "Quit"]


@pytest.mark.parametrize(
    ("action", "callback"),
    [
        ("sync_now_action", "on_sync_now"),
        ("open_console_action", "on_open_console"),
        ("quit_action", "on_quit"),
    ],
)
def test_menu_action_calls_its_callback(tray: TrayIcon, calls: Calls, action: str, callback: str) -> None:
    getattr(tray, action).trigger()
    assert calls.names == [callback]


def test_pause_and_resume_follow_the_state(tray: TrayIcon, calls: Calls) -> None:
    tray.pause_action.trigger()  # no state yet: not paused
    tray.apply(state(schedule=ScheduleStatus("Contoso", ScheduleKind.PAUSED, None, NOW)))
    assert tray.pause_action.text() == "Resume"
    tray.pause_action.trigger()
    tray.apply(state())
    assert tray.pause_action.text() == "Pause"
    tray.pause_action.trigger()
    assert calls.names == ["on_pause", "on_resume", "on_pause"]


@pytest.mark.parametrize(
    ("reason", "opens"),
    [
        (QSystemTrayIcon.ActivationReason.Trigger, True),
        (QSystemTrayIcon.ActivationReason.DoubleClick, True),
        (QSystemTrayIcon.ActivationReason.Context, False),
        (QSystemTrayIcon.ActivationReason.MiddleClick, False),
    ],
)
def test_clicking_the_icon_opens_the_console(
    tray: TrayIcon, calls: Calls, reason: QSystemTrayIcon.ActivationReason, opens: bool
) -> None:
    tray._tray.activated.emit(reason)
    assert calls.names == (["on_open_console"] if opens else [])


def test_a_failing_callback_is_logged(
    qapp: object, tray_available: None, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    icon = TrayIcon(**(calls.kwargs() | {"on_quit": broken}))
    try:
        with caplog.at_level(logging.ERROR, logger="crmsync_desktop.ui.tray"):
            icon.quit_action.trigger()
        assert "Tray action failed" in caplog.text
    finally:
        icon.close()


def test_an_async_callback_runs_on_the_loop(
    qloop: asyncio.AbstractEventLoop, tray_available: None, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    done = asyncio.Event()

    async def pause() -> None:
        await asyncio.sleep(0)
        done.set()

    async def resume() -> None:
        raise RuntimeError("store is gone")

    icon = TrayIcon(**(calls.kwargs() | {"on_pause": pause, "on_resume": resume}))
    try:
        icon.pause_action.trigger()
        qloop.run_until_complete(asyncio.wait_for(done.wait(), 10))
        icon.apply(state(schedule=ScheduleStatus("Contoso", ScheduleKind.PAUSED, None, NOW)))
        with caplog.at_level(logging.ERROR, logger="crmsync_desktop.ui.tray"):
            icon.pause_action.trigger()
            qloop.run_until_complete(asyncio.gather(*icon._tasks, return_exceptions=True))
            qloop.run_until_complete(asyncio.sleep(0))
        assert "Tray action failed" in caplog.text
        assert icon._tasks == set()
    finally:
        icon.close()


# -- states applied -----------------------------------------------------------------------------


def test_apply_sets_icon_tooltip_and_flags(tray: TrayIcon) -> None:
    assert tray.icon_name is TrayIconName.IDLE
    assert tray.state is None
    syncing = state(engine_state=EngineState.SYNCING)
    tray.apply(syncing)
    assert tray.state == syncing
    assert tray.icon_name is TrayIconName.SYNCING
    assert tray.tooltip == syncing.tooltip
    assert tray.tooltip.startswith("crmsync – Contoso\nSyncing…")
    assert not tray.sync_now_action.isEnabled()
    assert tray.pause_action.isEnabled()

    disabled = state(schedule=ScheduleStatus("Contoso", ScheduleKind.DISABLED, None, NOW))
    tray.apply(disabled)
    assert tray.icon_name is TrayIconName.IDLE
    assert tray.sync_now_action.isEnabled()
    assert not tray.pause_action.isEnabled()
    tray.apply(disabled)  # unchanged: nothing to do
    assert tray.tooltip == disabled.tooltip


@pytest.mark.parametrize("name", list(TrayIconName))
def test_every_state_has_a_valid_svg_icon(qapp: object, tray: TrayIcon, name: TrayIconName) -> None:
    path = tray_icon_path(name)
    assert path.is_file()
    assert path.parent.name == "tray" and path.parent.parent.name == "resources"
    assert QSvgRenderer(str(path)).isValid()
    assert not tray_icon(name).pixmap(22, 22).isNull()
    tray.apply(TrayState(icon=name, tooltip=name.value, can_sync_now=True, can_pause=True, paused=False))
    assert tray.icon_name is name


def test_a_missing_icon_file_is_reported(
    qapp: object, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from crmsync_desktop.ui import icons

    monkeypatch.setattr(icons, "TRAY_ICON_DIR", tmp_path)
    icons.tray_icon.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="tray icon missing"):
            icons.tray_icon(TrayIconName.ERROR)
    finally:
        icons.tray_icon.cache_clear()


@pytest.mark.parametrize(
    ("level", "qt_icon"),
    [
        (NotificationLevel.INFO, QSystemTrayIcon.MessageIcon.Information),
        (NotificationLevel.WARNING, QSystemTrayIcon.MessageIcon.Warning),
        (NotificationLevel.CRITICAL, QSystemTrayIcon.MessageIcon.Critical),
    ],
)
def test_a_notification_is_shown_as_a_tray_message(
    tray: TrayIcon,
    monkeypatch: pytest.MonkeyPatch,
    level: NotificationLevel,
    qt_icon: QSystemTrayIcon.MessageIcon,
) -> None:
    shown: list[tuple[object, ...]] = []
    monkeypatch.setattr(tray._tray, "showMessage", lambda *args: shown.append(args))
    note = TrayNotification("Sync of Contoso failed", "HTTP 500", level)
    tray.apply(
        TrayState(
            icon=TrayIconName.ERROR,
            tooltip="t",
            can_sync_now=True,
            can_pause=True,
            paused=False,
            notification=note,
        )
    )
    tray.apply(state())  # no notification: nothing shown
    assert shown == [("Sync of Contoso failed", "HTTP 500", qt_icon, tray_module.NOTIFICATION_MSECS)]
