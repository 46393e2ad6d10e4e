"""Fixtures: an emulated org served by a real uvicorn on loopback, and plain httpx clients for it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from crmsync_desktop.emulator.auth_protocol import Principal, StaticBearerAuthenticator
from crmsync_desktop.emulator.dataverse import DataverseOrg, create_app

AUTHORIZE = "https://login.emulator.test/tenant-1/oauth2/authorize"
ORG_URL = "https://contoso.crm.dynamics.com"
APP_TOKEN = "token-app"
USER_TOKEN = "token-user"
APP = Principal(object_id="0f0e0d0c-0000-4000-8000-000000000001", tenant_id="tenant-1",
                app_id="11111111-2222-4333-8444-555555555555", display_name="Sync App")
USER = Principal(object_id="0f0e0d0c-0000-4000-8000-000000000002", tenant_id="tenant-1",
                 app_id="11111111-2222-4333-8444-555555555555", display_name="Dana Admin", upn="dana@contoso.test")
BASE_HEADERS = {"Accept": "application/json", "OData-Version": "4.0", "OData-MaxVersion": "4.0"}


@contextlib.contextmanager
def run_uvicorn(app: object) -> Iterator[str]:
    """uvicorn in a background thread on a free loopback port (IPPROTO_TCP listener: stack-recipes §5)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off", access_log=False,
                                           timeout_graceful_shutdown=1))
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not t.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=10)
        sock.close()


@pytest.fixture
def org(tmp_path: Path) -> Iterator[DataverseOrg]:
    o = DataverseOrg.create(tmp_path / "org.db", url=ORG_URL, name="Contoso")
    try:
        yield o
    finally:
        o.close()


@pytest.fixture
def server(org: DataverseOrg) -> Iterator[str]:
    auth = StaticBearerAuthenticator({APP_TOKEN: APP, USER_TOKEN: USER}, AUTHORIZE)
    with run_uvicorn(create_app(org, auth)) as url:
        yield url


@pytest.fixture
def api(server: str) -> Iterator[httpx.Client]:
    """Authenticated client whose base URL is the service root."""
    with httpx.Client(base_url=f"{server}/api/data/v9.2/", timeout=30,
                      headers={**BASE_HEADERS, "Authorization": f"Bearer {APP_TOKEN}"}) as c:
        yield c


@pytest.fixture
def user_api(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server}/api/data/v9.2/", timeout=30,
                      headers={**BASE_HEADERS, "Authorization": f"Bearer {USER_TOKEN}"}) as c:
        yield c


@pytest.fixture
def admin(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server}/_emulator/", timeout=30) as c:
        yield c


def entity_id(response: httpx.Response) -> str:
    """The GUID in the last parentheses of OData-EntityId (as the docs tell clients to parse it)."""
    header = response.headers["OData-EntityId"]
    return header[header.rindex("(") + 1:header.rindex(")")]
