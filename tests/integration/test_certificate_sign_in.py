"""Certificate sign-in through a connection profile, against the emulated Entra ID and Dataverse over HTTPS.

The profile holds the certificate file's path, the keyring its passphrase; ``ProfileConnectorFactory``
reads the file, MSAL signs a client assertion with the key, and the emulated Entra ID checks it
against the certificate uploaded to the app registration (here: added to the running emulator's
app registration for the test, and removed again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.domain import AuthKind, ConnectionProfile
from crmsync_desktop.emulator.runner import EmulatorPair
from crmsync_desktop.errors import AuthError, CertificateError, ConfigError
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.organizations import ProfileConnectorFactory
from tests.fakes.certificates import TestCertificate, make_certificate

pytestmark = pytest.mark.asyncio

PROFILE = "Unattended"
PASSPHRASE = "Pfx-Passphrase-4711"


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return make_certificate("crmsync-sync.contoso.com")


@pytest.fixture
def uploaded(emu: EmulatorPair) -> Iterator[list[bytes]]:
    """The app registration's certificates (Certificates & secrets ▸ Certificates), emptied afterwards."""
    assert emu.provider is not None
    app = emu.provider.directory.tenants[emu.tenant_id].apps[emu.client_id]
    before = list(app.certificates)
    try:
        yield app.certificates
    finally:
        app.certificates[:] = before


@pytest.fixture
def factory(emu: EmulatorPair) -> Iterator[ProfileConnectorFactory]:
    f = ProfileConnectorFactory(CredentialStore(), ca_bundle=str(emu.ca_path))
    yield f
    f.close()


def _profile(emu: EmulatorPair, path: Path | str, **changes: object) -> ConnectionProfile:
    return ConnectionProfile(
        name=PROFILE, server_url=emu.dataverse_url, server_auth_kind=AuthKind.CERTIFICATE,
        client_id=emu.client_id, certificate_path=str(path),
        client_url=f"{emu.resco_url}/{emu.resco_org}", client_user=emu.resco_username, **changes,  # type: ignore[arg-type]
    )


def _store(kind: SecretKind, value: str) -> None:
    CredentialStore().set_secret(PROFILE, kind, value)


async def test_a_profile_signs_in_with_a_protected_pfx(
    emu: EmulatorPair, factory: ProfileConnectorFactory, uploaded: list[bytes], cert: TestCertificate, tmp_path: Path
) -> None:
    uploaded.append(cert.cert_pem)
    pfx = cert.write(tmp_path, "sync.pfx", cert.pfx(PASSPHRASE))
    _store(SecretKind.SERVER_CERTIFICATE_PASSWORD, PASSPHRASE)
    _store(SecretKind.CLIENT_PASSWORD, emu.resco_password)
    profile = _profile(emu, pfx)

    pair = await factory.open(profile)
    try:
        me = await pair.server.whoami()
        assert me.organization_name == "Contoso"
    finally:
        await pair.aclose()
    token = await (await factory.token_provider(profile)).get_token([emu.dataverse_scope])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["appid"] == emu.client_id and claims["appidacr"] == "2"  # "2": signed in with a certificate


async def test_test_connection_through_the_engine_with_a_pem_file(
    emu: EmulatorPair, factory: ProfileConnectorFactory, uploaded: list[bytes], cert: TestCertificate, tmp_path: Path
) -> None:
    uploaded.append(cert.cert_pem)
    pem = cert.write(tmp_path, "sync.pem", cert.pem())  # no passphrase: nothing in the keyring for it
    db = open_store(tmp_path / "store.sqlite3", tmp_path / "backups")
    engine = SyncEngine(db, factory, credentials=CredentialStore())
    try:
        await engine.save_connection(_profile(emu, pem), {SecretKind.CLIENT_PASSWORD: emu.resco_password})
        server, client = await engine.test_connection(PROFILE)
        assert not isinstance(server, Exception), server
        assert not isinstance(client, Exception), client
        assert server.organization_name == "Contoso"
    finally:
        await engine.aclose()
        db.close()


async def test_a_certificate_missing_from_the_app_registration_is_named_by_its_thumbprint(
    emu: EmulatorPair, factory: ProfileConnectorFactory, uploaded: list[bytes], tmp_path: Path
) -> None:
    other = make_certificate("not uploaded")
    profile = _profile(emu, other.write(tmp_path, "other.pem", other.pem()))
    provider = await factory.token_provider(profile)
    with pytest.raises(AuthError) as info:
        await provider.get_token([emu.dataverse_scope])
    assert info.value.title == "Application credentials rejected"
    assert other.thumbprint in info.value.message and "Certificates & secrets" in info.value.message


async def test_a_new_certificate_file_is_used_without_restarting(
    emu: EmulatorPair, factory: ProfileConnectorFactory, uploaded: list[bytes], cert: TestCertificate, tmp_path: Path
) -> None:
    """Test connection right after a fix: the factory notices the new file instead of reusing the old sign-in."""
    stale = make_certificate("stale")
    path = stale.write(tmp_path, "sync.pem", stale.pem())
    profile = _profile(emu, path)
    with pytest.raises(AuthError):
        await (await factory.token_provider(profile)).get_token([emu.dataverse_scope])
    uploaded.append(cert.cert_pem)
    path.write_bytes(cert.pem())  # the admin replaces the file with the registered certificate
    token = await (await factory.token_provider(profile)).get_token([emu.dataverse_scope])
    assert jwt.decode(token, options={"verify_signature": False})["appidacr"] == "2"
    same = await factory.token_provider(profile)
    assert same is await factory.token_provider(profile)  # unchanged credentials: the same provider


@pytest.mark.parametrize(
    ("stored", "reason"),
    [(None, "passphrase_needed"), ("not the passphrase", "wrong_passphrase")],
)
async def test_passphrase_problems_are_reported_before_any_request(
    emu: EmulatorPair, factory: ProfileConnectorFactory, uploaded: list[bytes], cert: TestCertificate,
    tmp_path: Path, stored: str | None, reason: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    uploaded.append(cert.cert_pem)
    pfx = cert.write(tmp_path, "sync.pfx", cert.pfx(PASSPHRASE))
    if stored:
        _store(SecretKind.SERVER_CERTIFICATE_PASSWORD, stored)
    requests: list[str] = []

    async def discover(url: str, **_: object) -> str:  # the first request a sign-in would make
        requests.append(url)
        raise AssertionError("no request may be made with an unusable certificate")

    monkeypatch.setattr("crmsync_desktop.sync.organizations.discover_authority", discover)
    with pytest.raises(CertificateError) as info:
        await factory.token_provider(_profile(emu, pfx))
    assert info.value.reason == reason and str(pfx) in info.value.message
    assert PASSPHRASE not in info.value.message and (stored or PASSPHRASE) not in info.value.message
    assert requests == []


async def test_a_profile_without_a_certificate_file_says_where_to_pick_it(
    emu: EmulatorPair, factory: ProfileConnectorFactory
) -> None:
    with pytest.raises(ConfigError, match="has no certificate file. Open Connection and pick the file"):
        await factory.token_provider(_profile(emu, ""))


async def test_an_expired_certificate_is_warned_about_and_still_tried(
    emu: EmulatorPair, factory: ProfileConnectorFactory, uploaded: list[bytes], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = make_certificate("expired", days=10, valid_from_days=-40)
    uploaded.append(old.cert_pem)
    path = old.write(tmp_path, "expired.pem", old.pem())
    with caplog.at_level(logging.WARNING, logger="crmsync_desktop.auth.certificates"):
        provider = await factory.token_provider(_profile(emu, path))
        try:
            await provider.get_token([emu.dataverse_scope])  # the emulated Entra ID does not check validity
        except AuthError:
            pass  # a real Entra ID refuses it: either way the request was made
    assert "expired on" in caplog.text and str(path) in caplog.text and old.thumbprint in caplog.text
