"""Device-code sign-in prompts, from the MSAL worker thread to whichever window shows them.

The composition root passes a :class:`DeviceCodeRelay` as ``on_device_code`` to the connector
factory; MSAL calls it from a worker thread, the relay re-emits the prompt on the GUI thread
(queued signal), and the Connection dialog (or the main window) shows the code to copy.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QObject, Qt, Signal, Slot

__all__ = ["DeviceCodePromptLike", "DeviceCodeRelay"]


class DeviceCodePromptLike(Protocol):
    """What a device-code prompt carries (``auth.msal_provider.DeviceCodePrompt``)."""

    @property
    def user_code(self) -> str: ...

    @property
    def verification_uri(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def expires_in_s(self) -> int: ...


class DeviceCodeRelay(QObject):
    """Callable from any thread; ``prompted`` is emitted on the relay's (GUI) thread."""

    prompted = Signal(object)  # DeviceCodePromptLike
    _incoming = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.last: DeviceCodePromptLike | None = None
        self._incoming.connect(self._deliver, Qt.ConnectionType.AutoConnection)

    def __call__(self, prompt: DeviceCodePromptLike) -> None:
        self._incoming.emit(prompt)

    @Slot(object)
    def _deliver(self, prompt: DeviceCodePromptLike) -> None:
        self.last = prompt
        self.prompted.emit(prompt)
