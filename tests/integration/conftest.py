"""Connectors against the emulated organizations over real HTTPS (no mocks on either side).

One :class:`EmulatorPair` per session (Entra ID + Dataverse seeded with a small sales org +
Resco Cloud) keeps the suite fast; tests that change emulator settings (limits, faults, the
identity clock) restore them before they finish. Connectors are made per test (they belong to
the test's event loop) and use a fast retry policy so fault tests do not sleep for long.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest
import pytest_asyncio

from crmsync_desktop.auth.msal_provider import ClientSecretLogin, MsalTokenProvider
from crmsync_desktop.emulator.runner import EmulatorPair
from crmsync_desktop.sync.connectors.dataverse import DataverseConnector, DataverseSettings
from crmsync_desktop.sync.connectors.http.retry import RetryPolicy
from crmsync_desktop.sync.connectors.resco import RescoConnector, RescoSettings

SEED_RECORDS = 300


@pytest.fixture(scope="session")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorPair]:
    with EmulatorPair(Path(tmp_path_factory.mktemp("emulator")), seed_records=SEED_RECORDS, seed=1) as pair:
        yield pair


@pytest.fixture(scope="session")
def tls(emu: EmulatorPair) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(emu.ca_path))


@pytest.fixture(scope="session")
def admin(emu: EmulatorPair, tls: ssl.SSLContext) -> Iterator[httpx.Client]:
    """A plain client for the emulators' loopback control planes (``/_emulator/…``)."""
    with httpx.Client(verify=tls, timeout=30.0) as client:
        yield client


@pytest.fixture(scope="session")
def token_cache() -> msal.SerializableTokenCache:
    return msal.SerializableTokenCache()


def fast_policy() -> RetryPolicy:
    return RetryPolicy(max_attempts=8, base_delay_s=0.02, max_delay_s=0.2, max_retry_after_s=30.0, rng=random.Random(7))


@pytest.fixture
def tokens(emu: EmulatorPair, tls: ssl.SSLContext, token_cache: msal.SerializableTokenCache) -> Iterator[MsalTokenProvider]:
    provider = MsalTokenProvider(
        ClientSecretLogin(emu.client_id, emu.client_secret), emu.authority, token_cache=token_cache, verify=tls
    )
    yield provider
    provider.close()


def dataverse(emu: EmulatorPair, tokens: Any, **settings: Any) -> DataverseConnector:
    return DataverseConnector(
        DataverseSettings(emu.dataverse_url, ca_bundle=str(emu.ca_path), **settings), tokens, policy=fast_policy()
    )


@pytest_asyncio.fixture
async def dv(emu: EmulatorPair, tokens: MsalTokenProvider) -> AsyncIterator[DataverseConnector]:
    connector = dataverse(emu, tokens, page_size=40)
    yield connector
    await connector.aclose()


def resco(emu: EmulatorPair, password: str | None = None, **settings: Any) -> RescoConnector:
    return RescoConnector(
        RescoSettings(emu.resco_url, emu.resco_org, emu.resco_username, ca_bundle=str(emu.ca_path), **settings),
        emu.resco_password if password is None else password,
        policy=fast_policy(),
    )


@pytest_asyncio.fixture
async def rc(emu: EmulatorPair) -> AsyncIterator[RescoConnector]:
    connector = resco(emu)
    yield connector
    await connector.aclose()


class DataverseAdmin:
    """``/_emulator`` on the Dataverse side; ``restore()`` puts limits, performance and faults back."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.client, self.url = client, url
        self.saved = self.config()

    def config(self) -> dict[str, Any]:
        return self.client.get(f"{self.url}/_emulator/config").raise_for_status().json()

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        return self.client.request(method, f"{self.url}/_emulator/{path}", json=body).raise_for_status().json()

    def restore(self) -> None:
        self.call("DELETE", "faults")
        self.call("PATCH", "limits", self.saved["limits"])
        self.call("PATCH", "performance", self.saved["performance"])


@pytest.fixture
def dv_admin(admin: httpx.Client, emu: EmulatorPair) -> Iterator[DataverseAdmin]:
    control = DataverseAdmin(admin, emu.dataverse_url)
    try:
        yield control
    finally:
        control.restore()


@pytest.fixture
def resco_faults(admin: httpx.Client, emu: EmulatorPair) -> Iterator[Any]:
    def configure(**faults: Any) -> dict[str, Any]:
        return admin.patch(f"{emu.resco_url}/_emulator/faults", json=faults).raise_for_status().json()

    try:
        yield configure
    finally:
        admin.delete(f"{emu.resco_url}/_emulator/faults").raise_for_status()
