"""Run an ASGI app on a loopback uvicorn in a background thread, start and stop cleanly.

Recipe from stack-recipes §5: the listener socket is created with ``IPPROTO_TCP`` (without it
accepted sockets lack TCP_NODELAY and requests stall 40 ms), it is bound before uvicorn starts
(port 0 = no race for a free port), and ``timeout_graceful_shutdown=1`` so a leaked keep-alive
connection cannot hold a stop for 10 s.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

__all__ = ["BackgroundServer", "run_uvicorn"]


class _QuietDroppedConnections(logging.Filter):
    """Fault injection drops connections by raising ``DropConnection``; that is not an error to log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "DropConnection"


logging.getLogger("uvicorn.error").addFilter(_QuietDroppedConnections())


class BackgroundServer:
    """One uvicorn server on ``host``; ``url`` is known as soon as the object exists."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        url_host: str | None = None,
    ) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        scheme = "https" if certfile else "http"
        self.url = f"{scheme}://{url_host or host}:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
            ssl_certfile=str(certfile) if certfile else None,
            ssl_keyfile=str(keyfile) if keyfile else None,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"uvicorn:{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: a graceful exit first, then a forced one; never waits longer than ``timeout``.

        The graceful exit waits for open requests (1 s, ``timeout_graceful_shutdown``); if the
        thread is still there after half the budget, uvicorn is told to force its exit. The thread
        is a daemon, so a server that still does not stop cannot keep the process (the demo, a
        test) from ending.
        """
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=timeout / 2)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout=timeout / 2)
        self._sock.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


@contextlib.contextmanager
def run_uvicorn(
    app: Any, *, host: str = "127.0.0.1", certfile: Path | None = None, keyfile: Path | None = None
) -> Iterator[str]:
    """``with run_uvicorn(app) as url:`` — close your clients before leaving the block (TLS stop)."""
    server = BackgroundServer(app, host=host, certfile=certfile, keyfile=keyfile).start()
    try:
        yield server.url
    finally:
        server.stop()
