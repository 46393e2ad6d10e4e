"""Test isolation for the whole suite.

Every test gets its own data folder (``CRMSYNC_HOME``), an in-memory keyring, a clean proxy/TLS
environment and no network beyond loopback. Tests that touch Qt are marked ``gui`` automatically,
so ``pytest -m "not gui"`` is the fast engine-only loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt creates the QApplication

import keyring
import pytest

from tests.fakes.keyring_backend import InMemoryKeyring

_QT_FIXTURES = {"qapp", "qtbot", "qloop", "qapp_args", "qapp_cls"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _QT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.gui)


@pytest.fixture(autouse=True)
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every app folder at a fresh temporary root."""
    home = tmp_path / "crmsync-home"
    monkeypatch.setenv("CRMSYNC_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[InMemoryKeyring]:
    previous = keyring.get_keyring()
    backend = InMemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or CA overrides from the developer's shell leak into a test."""
    for name in list(os.environ):
        if name.lower() in {
            "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ssl_cert_file", "ssl_cert_dir",
            "requests_ca_bundle", "python_keyring_backend",
        }:
            monkeypatch.delenv(name, raising=False)


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(address: object) -> None:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            if host == "localhost":
                return
        raise OSError(f"tests may only reach loopback, not {host!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _loopback_only(address)
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _loopback_only(address)
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


def _drain_and_close(loop: asyncio.AbstractEventLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    # qasync runs call_later callbacks on Qt timers of a QObject the loop owns. A callback still scheduled
    # at close (an HTTP client's timeout, say) keeps its timer running, and when the closed loop is later
    # garbage-collected on some other thread (the emulators' uvicorn threads in a later test), Qt reports
    # "QObject::~QObject: Timers cannot be stopped from another thread" there, failing that test (or
    # worse). Delete the QObject now, on the GUI thread.
    timer = getattr(loop, "_timer", None)
    if timer is not None:
        import shiboken6

        if shiboken6.isValid(timer):
            shiboken6.delete(timer)


@pytest.fixture
def qloop(qapp):  # type: ignore[no-untyped-def]
    """A qasync loop on pytest-qt's QApplication; drive coroutines with ``qloop.run_until_complete``."""
    import qasync

    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        _drain_and_close(loop)
        asyncio.set_event_loop(None)
