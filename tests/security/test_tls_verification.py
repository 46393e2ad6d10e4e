"""TLS: certificates are verified by default; turning that off is an explicit profile setting, logged.

Against the emulated organizations (HTTPS with their own self-signed CA):

* by default (no CA bundle) both organizations are refused: the emulator's CA is not trusted;
* with the emulator's CA bundle, both connect and nothing warns;
* a profile with ``verify_tls = False`` connects without the CA bundle, and every connection opened
  for it logs a WARNING naming the host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.domain import AuthKind, ConnectionProfile
from crmsync_desktop.emulator.runner import EmulatorPair
from crmsync_desktop.errors import CrmSyncError
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.connectors.http.transport import tls_verify
from crmsync_desktop.sync.connectors.types import Identity
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.organizations import ProfileConnectorFactory

PROFILE = "Contoso"


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorPair]:
    with EmulatorPair(tmp_path_factory.mktemp("tls-emu"), seed_records=0, seed=1) as pair:
        yield pair


def _test_connection(emu: EmulatorPair, tmp_path: Path, *, verify_tls: bool, ca_bundle: str | None) -> tuple[object, object]:
    db = open_store(tmp_path / "store.sqlite3", tmp_path / "backups")
    credentials = CredentialStore()
    factory = ProfileConnectorFactory(credentials, ca_bundle=ca_bundle)
    engine = SyncEngine(db, factory, credentials=credentials)
    profile = ConnectionProfile(
        name=PROFILE, server_url=emu.dataverse_url, server_auth_kind=AuthKind.CLIENT_SECRET,
        client_id=emu.client_id, client_url=f"{emu.resco_url}/{emu.resco_org}", client_user=emu.resco_username,
        verify_tls=verify_tls,
    )

    async def go() -> tuple[object, object]:
        await engine.save_connection(profile, {SecretKind.SERVER_CLIENT_SECRET: emu.client_secret,
                                               SecretKind.CLIENT_PASSWORD: emu.resco_password})
        return await engine.test_connection(PROFILE)

    try:
        return asyncio.run(go())
    finally:
        factory.close()
        db.close()


def _unverified_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "verification is OFF" in r.getMessage()]


def test_profiles_verify_certificates_by_default() -> None:
    assert ConnectionProfile(name="x").verify_tls is True
    assert tls_verify(None) is True
    assert tls_verify(None, False) is False


def test_default_rejects_the_emulators_self_signed_ca(emu: EmulatorPair, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    server, client = _test_connection(emu, tmp_path, verify_tls=True, ca_bundle=None)
    for side in (server, client):
        assert isinstance(side, CrmSyncError), side
        assert "certificate" in side.message.lower(), side.message
    assert not _unverified_warnings(caplog)


def test_the_emulators_ca_bundle_is_trusted_without_warnings(emu: EmulatorPair, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    server, client = _test_connection(emu, tmp_path, verify_tls=True, ca_bundle=str(emu.ca_path))
    assert isinstance(server, Identity) and isinstance(client, Identity), (server, client)
    assert not _unverified_warnings(caplog)


def test_verification_off_only_when_the_profile_says_so_and_every_connection_warns(
    emu: EmulatorPair, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server, client = _test_connection(emu, tmp_path, verify_tls=False, ca_bundle=None)
    assert isinstance(server, Identity) and isinstance(client, Identity), (server, client)
    warnings = _unverified_warnings(caplog)
    assert any(emu.dataverse_url.split("//")[1] in w for w in warnings), warnings
    assert any(emu.resco_url.split("//")[1] in w for w in warnings), warnings
    assert all(f"'{PROFILE}'" in w for w in warnings)
