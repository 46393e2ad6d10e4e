"""One console per data folder: a second launch brings the running one to the front and exits.

A ``QLocalServer`` named after the data folder listens in the first instance; a later instance
connects, says "show", and quits. A server left behind by a crashed instance is removed and taken
over (``QLocalServer.removeServer``), so a crash never blocks the next start.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_MS = 500
SHOW = b"show\n"


def server_name(data_dir: Path) -> str:
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return f"crmsync-desktop-{digest}"


def notify_running_instance(data_dir: Path) -> bool:
    """True if another console serves ``data_dir`` (and was asked to show itself)."""
    socket = QLocalSocket()
    socket.connectToServer(server_name(data_dir))
    if not socket.waitForConnected(CONNECT_TIMEOUT_MS):
        return False
    socket.write(SHOW)
    socket.waitForBytesWritten(CONNECT_TIMEOUT_MS)
    socket.disconnectFromServer()
    return True


class SingleInstance(QObject):
    """Listens for later launches; emits ``show_requested`` when one asks."""

    show_requested = Signal()

    def __init__(self, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._on_connection)
        name = server_name(data_dir)
        if not self._server.listen(name):
            QLocalServer.removeServer(name)  # left behind by a crashed instance
            if not self._server.listen(name):
                log.warning("Single-instance guard unavailable: %s", self._server.errorString())

    def _on_connection(self) -> None:
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            # The later instance writes right after connecting; a short wait only ever happens
            # when somebody launches the app a second time.
            if socket.bytesAvailable() or socket.waitForReadyRead(CONNECT_TIMEOUT_MS):
                if bytes(socket.readAll().data()).startswith(SHOW.strip()):
                    self.show_requested.emit()
            socket.abort()
            socket.deleteLater()

    def close(self) -> None:
        self._server.close()

