"""Run engine coroutines from the GUI without blocking it, and show their failures to the user.

Views call ``run_op(parent, coro, on_success=...)``: the coroutine runs as a task on the qasync
loop, a ``CrmSyncError`` becomes a message box with its title and message, and anything else is
logged with its traceback and shown as an unexpected error. No failure is silently dropped, and the
task is kept referenced until it finishes (asyncio only holds weak references to tasks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from PySide6.QtWidgets import QMessageBox, QWidget

from crmsync_desktop.errors import CrmSyncError

log = logging.getLogger(__name__)
T = TypeVar("T")

_running: set[asyncio.Task[Any]] = set()


def show_error(parent: QWidget | None, exc: BaseException) -> QMessageBox:
    """Open (non-modally: never a nested event loop inside a coroutine) a box describing ``exc``."""
    if isinstance(exc, CrmSyncError):
        title, text = exc.title, exc.message
    else:
        title, text = "Unexpected error", f"{type(exc).__name__}: {exc}\n\nDetails are in the log (Jobs & Logs)."
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("errorBox")
    box.open()
    return box


def run_op(
    parent: QWidget | None,
    coro: Coroutine[Any, Any, T],
    *,
    on_success: Callable[[T], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
) -> asyncio.Task[T]:
    """Start ``coro`` on the running loop; route its result or failure back to the GUI."""
    task = asyncio.ensure_future(coro)
    _running.add(task)

    def done(t: asyncio.Task[T]) -> None:
        _running.discard(t)
        if t.cancelled():
            return
        exc = t.exception()
        if exc is None:
            if on_success is not None:
                on_success(t.result())
            return
        if not isinstance(exc, CrmSyncError):
            log.error("Unexpected error in a console operation", exc_info=exc)
        if on_error is not None:
            on_error(exc)
        else:
            show_error(parent, exc)

    task.add_done_callback(done)
    return task
