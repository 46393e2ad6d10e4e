"""The system-tray icon: a thin ``QSystemTrayIcon`` wrapper driven by a :class:`TrayState`.

All decisions (icon, tooltip, menu flags, notifications) are made by the pure
:func:`~crmsync_desktop.ui.tray_state.tray_state`; this module only applies them and turns menu
clicks into the callbacks it was given. A callback may return an awaitable (``scheduler.pause``),
which is scheduled on the running loop (qasync) and kept alive until done.

Not every desktop has a tray (offscreen, bare Xvfb, GNOME without the AppIndicator extension):
:func:`create_tray` then returns ``None`` and a message for the user, and the app stays a normal
window (closing it quits; notifications go to the status bar) — stack-recipes §3.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from crmsync_desktop.ui.icons import tray_icon
from crmsync_desktop.ui.tray_state import NotificationLevel, TrayIconName, TrayState

__all__ = ["NO_TRAY_MESSAGE", "Callback", "TrayIcon", "create_tray"]

log = logging.getLogger(__name__)

Callback = Callable[[], object]
"""A menu callback; if it returns an awaitable, that is run on the current event loop."""

NO_TRAY_MESSAGE = (
    "This desktop has no system tray, so crmsync runs as a normal window: keep it open (or "
    "minimized) for scheduled syncs to run; closing it quits crmsync."
)

NOTIFICATION_MSECS = 10_000

_LEVEL_ICON = {
    NotificationLevel.INFO: QSystemTrayIcon.MessageIcon.Information,
    NotificationLevel.WARNING: QSystemTrayIcon.MessageIcon.Warning,
    NotificationLevel.CRITICAL: QSystemTrayIcon.MessageIcon.Critical,
}


class TrayIcon(QObject):
    """The tray icon with its menu: Sync now, Pause/Resume, Open console, Quit."""

    def __init__(
        self,
        *,
        on_sync_now: Callback,
        on_pause: Callback,
        on_resume: Callback,
        on_open_console: Callback,
        on_quit: Callback,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._on_pause, self._on_resume = on_pause, on_resume
        self._on_open_console = on_open_console
        self._tasks: set[asyncio.Future[object]] = set()
        self._state: TrayState | None = None
        self._icon_name = TrayIconName.IDLE

        self._tray = QSystemTrayIcon(self)
        self._menu = QMenu()  # a QMenu cannot be parented to the (non-widget) tray: owned here
        self.sync_now_action = self._add("Sync now", on_sync_now)
        self.pause_action = self._add("Pause", self._toggle_pause)
        self._menu.addSeparator()
        self.open_console_action = self._add("Open console", on_open_console)
        self._menu.addSeparator()
        self.quit_action = self._add("Quit", on_quit)
        self._tray.setContextMenu(self._menu)
        self._tray.activated.connect(self._activated)
        self._tray.setIcon(tray_icon(self._icon_name))
        self._tray.setToolTip("crmsync")

    @staticmethod
    def available() -> bool:
        """Whether the desktop has a system tray (False under offscreen and bare Xvfb)."""
        return QSystemTrayIcon.isSystemTrayAvailable()

    # -- state ----------------------------------------------------------------------------------

    @property
    def state(self) -> TrayState | None:
        """The last state applied."""
        return self._state

    @property
    def icon_name(self) -> TrayIconName:
        return self._icon_name

    @property
    def tooltip(self) -> str:
        return self._tray.toolTip()

    @property
    def menu(self) -> QMenu:
        return self._menu

    def apply(self, state: TrayState) -> None:
        """Show ``state``: icon, tooltip, menu entries, and its notification if it has one."""
        if state.icon is not self._icon_name:
            self._icon_name = state.icon
            self._tray.setIcon(tray_icon(state.icon))
        if state.tooltip != self._tray.toolTip():
            self._tray.setToolTip(state.tooltip)
        self.sync_now_action.setEnabled(state.can_sync_now)
        self.pause_action.setEnabled(state.can_pause)
        self.pause_action.setText(state.pause_label)
        self._state = state
        if state.notification is not None:
            note = state.notification
            self._tray.showMessage(note.title, note.message, _LEVEL_ICON[note.level], NOTIFICATION_MSECS)

    def notify(self, title: str, message: str) -> None:
        """A plain information balloon (besides the state notifications ``apply`` shows)."""
        self._tray.showMessage(title, message, QSystemTrayIcon.MessageIcon.Information, NOTIFICATION_MSECS)

    def show(self) -> None:
        self._tray.show()

    def hide(self) -> None:
        self._tray.hide()

    def is_visible(self) -> bool:
        return self._tray.isVisible()

    def close(self) -> None:
        """Hide the icon and release the menu (call before the app quits)."""
        self._tray.hide()
        self._menu.deleteLater()  # the tray holds it through a QPointer

    # -- callbacks ------------------------------------------------------------------------------

    def _add(self, text: str, callback: Callback) -> QAction:
        action = self._menu.addAction(text)
        action.triggered.connect(lambda _checked=False: self._call(callback))
        return action

    def _toggle_pause(self) -> object:
        paused = self._state is not None and self._state.paused
        return (self._on_resume if paused else self._on_pause)()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self._call(self._on_open_console)

    def _call(self, callback: Callback) -> None:
        try:
            result = callback()
        except Exception:
            log.exception("Tray action failed")
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Tray action failed", exc_info=task.exception())


def create_tray(
    *,
    on_sync_now: Callback,
    on_pause: Callback,
    on_resume: Callback,
    on_open_console: Callback,
    on_quit: Callback,
    parent: QObject | None = None,
) -> tuple[TrayIcon | None, str]:
    """The tray icon (shown), or ``(None, message)`` when the desktop has no tray.

    With no tray the caller keeps the main window as the primary surface, shows ``message`` (status
    bar or banner), quits when the window closes and shows notifications in the window instead.
    """
    if not TrayIcon.available():
        log.info("No system tray available; running as a window")
        return None, NO_TRAY_MESSAGE
    tray = TrayIcon(
        on_sync_now=on_sync_now,
        on_pause=on_pause,
        on_resume=on_resume,
        on_open_console=on_open_console,
        on_quit=on_quit,
        parent=parent,
    )
    tray.show()
    return tray, ""
