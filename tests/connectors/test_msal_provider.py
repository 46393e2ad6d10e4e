"""MsalTokenProvider against respx-mocked MSAL endpoints; encrypted token cache; authority discovery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from msal_extensions import FilePersistence

from crmsync_desktop import errors
from crmsync_desktop.auth.msal_provider import (
    CertificateLogin,
    ClientSecretLogin,
    DeviceCodeLogin,
    DeviceCodePrompt,
    MsalTokenProvider,
)
from crmsync_desktop.auth.token_cache import open_token_cache
from crmsync_desktop.sync.connectors.dataverse.auth import (
    authority_from_challenge,
    discover_authority,
    scope_for,
)

pytestmark = pytest.mark.asyncio
MS = "https://login.microsoftonline.com"
EMU = "https://login.emu.test:8443"
SCOPES = [scope_for("https://contoso.crm.example.com")]


def sts(router: respx.MockRouter, base: str, tenant: str) -> None:
    router.get(f"{base}/{tenant}/v2.0/.well-known/openid-configuration").respond(200, json={
        "issuer": f"{base}/{tenant}/v2.0",
        "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode"})
    if base == MS:  # MSAL may validate a Microsoft authority (e.g. after an error); never for a custom one
        router.get(f"{MS}/common/discovery/instance").respond(200, json={
            "tenant_discovery_endpoint": f"{MS}/{tenant}/v2.0/.well-known/openid-configuration",
            "metadata": [{"preferred_network": "login.microsoftonline.com", "preferred_cache": "login.windows.net",
                          "aliases": ["login.microsoftonline.com", "login.windows.net"]}]})


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    yield respx.MockRouter(assert_all_called=False)


def provider(router: respx.MockRouter, login: object, authority: str, **kw: object) -> MsalTokenProvider:
    return MsalTokenProvider(login, authority, http_transport=httpx.MockTransport(router.handler), **kw)  # type: ignore[arg-type]


async def test_client_credentials_cached_and_force_refreshed(router: respx.MockRouter) -> None:
    sts(router, MS, "tenant-1")
    token = router.post(f"{MS}/tenant-1/oauth2/v2.0/token")
    token.side_effect = [httpx.Response(200, json={"token_type": "Bearer", "expires_in": 3599, "access_token": "AT-1"}),
                         httpx.Response(200, json={"token_type": "Bearer", "expires_in": 3599, "access_token": "AT-2"})]
    p = provider(router, ClientSecretLogin("client-1", "s3cret"), f"{MS}/tenant-1")
    try:
        assert await p.get_token(SCOPES) == "AT-1"
        assert await p.get_token(SCOPES) == "AT-1"
        assert token.call_count == 1
        form = token.calls[0].request.content.decode()
        assert "grant_type=client_credentials" in form and "scope=https%3A%2F%2Fcontoso.crm.example.com%2F.default" in form
        assert await p.get_token(SCOPES, force_refresh=True) == "AT-2"  # the 401 path
        assert token.call_count == 2
    finally:
        p.close()
    assert "s3cret" not in repr(ClientSecretLogin("c", "s3cret"))


async def test_custom_authority_skips_instance_discovery(router: respx.MockRouter) -> None:
    sts(router, EMU, "contoso")
    router.post(f"{EMU}/contoso/oauth2/v2.0/token").respond(200, json={"token_type": "Bearer", "expires_in": "600", "access_token": "EMU"})
    p = provider(router, ClientSecretLogin("client-1", "s"), f"{EMU}/contoso")
    try:
        assert await p.get_token(SCOPES) == "EMU"
    finally:
        p.close()
    assert all("login.microsoftonline.com" not in str(c.request.url) for c in router.calls)


async def test_rejected_secret_is_an_actionable_auth_error(router: respx.MockRouter) -> None:
    sts(router, MS, "tenant-1")
    router.post(f"{MS}/tenant-1/oauth2/v2.0/token").respond(401, json={
        "error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"})
    p = provider(router, ClientSecretLogin("client-1", "s3cret"), f"{MS}/tenant-1")
    try:
        with pytest.raises(errors.AuthError, match="client secret") as info:
            await p.get_token(SCOPES)
    finally:
        p.close()
    assert "s3cret" not in info.value.message and "AADSTS7000215" in info.value.message


async def test_a_rejected_certificate_names_its_thumbprint(router: respx.MockRouter) -> None:
    from tests.fakes.certificates import make_certificate

    cert = make_certificate()
    sts(router, MS, "tenant-1")
    token = router.post(f"{MS}/tenant-1/oauth2/v2.0/token")
    token.respond(401, json={
        "error": "invalid_client", "error_description": "AADSTS700027: The certificate with identifier used to "
        "sign the client assertion is not registered on application.\r\nTrace ID: 1"})
    login = CertificateLogin("client-1", cert.key_pem().decode(), cert.thumbprint)
    p = provider(router, login, f"{MS}/tenant-1")
    try:
        with pytest.raises(errors.AuthError) as info:
            await p.get_token(SCOPES)
    finally:
        p.close()
    form = token.calls[0].request.content.decode()
    assert "client_assertion=eyJ" in form and "client_secret" not in form  # a signed assertion, no secret
    assert info.value.title == "Application credentials rejected"
    assert cert.thumbprint in info.value.message and "Certificates & secrets" in info.value.message
    assert "AADSTS700027" in info.value.message and "PRIVATE KEY" not in info.value.message
    assert "PRIVATE" not in repr(login) and cert.thumbprint in repr(login)


async def test_unreachable_or_invalid_authority(router: respx.MockRouter) -> None:
    router.get(f"{MS}/tenant-1/v2.0/.well-known/openid-configuration").mock(side_effect=httpx.ConnectError("refused"))
    p = provider(router, ClientSecretLogin("c", "s"), f"{MS}/tenant-1")
    with pytest.raises(errors.NetworkError):
        await p.get_token(SCOPES)
    p.close()
    p = provider(router, ClientSecretLogin("c", "s"), "http://127.0.0.1:9/tenant")
    with pytest.raises(errors.InvalidUrlError):
        await p.get_token(SCOPES)
    p.close()


async def test_device_code_flow_with_interval_zero(router: respx.MockRouter) -> None:
    sts(router, EMU, "contoso")
    router.post(f"{EMU}/contoso/oauth2/v2.0/devicecode").respond(200, json={
        "device_code": "DC", "user_code": "ABCD-EFGH", "verification_uri": f"{EMU}/device", "expires_in": 900,
        "interval": 0, "message": "Go to the page and enter ABCD-EFGH"})
    token = router.post(f"{EMU}/contoso/oauth2/v2.0/token")
    token.side_effect = [httpx.Response(400, json={"error": "authorization_pending"}),
                         httpx.Response(200, json={"token_type": "Bearer", "expires_in": 3599, "access_token": "USER-AT"})]
    prompts: list[DeviceCodePrompt] = []
    p = provider(router, DeviceCodeLogin("public-client", prompts.append), f"{EMU}/contoso")
    try:
        with pytest.raises(errors.AuthRequiredError):
            await p.get_token(SCOPES)  # nobody signed in yet
        await p.sign_in(SCOPES)
        assert prompts == [DeviceCodePrompt("ABCD-EFGH", f"{EMU}/device", "Go to the page and enter ABCD-EFGH", 900)]
        assert token.call_count == 2
        assert await p.get_token(SCOPES) == "USER-AT"
    finally:
        p.close()


async def test_declined_device_code_sign_in(router: respx.MockRouter) -> None:
    sts(router, EMU, "contoso")
    router.post(f"{EMU}/contoso/oauth2/v2.0/devicecode").respond(200, json={
        "device_code": "DC", "user_code": "X", "verification_uri": "v", "expires_in": 900, "interval": 0, "message": "m"})
    router.post(f"{EMU}/contoso/oauth2/v2.0/token").respond(400, json={"error": "authorization_declined"})
    p = provider(router, DeviceCodeLogin("public-client", lambda _: None), f"{EMU}/contoso")
    try:
        with pytest.raises(errors.AuthError, match="declined"):
            await p.sign_in(SCOPES)
    finally:
        p.close()


class FakeEncryptedPersistence(FilePersistence):
    """Stands in for DPAPI/Keychain/libsecret in tests (the file is not really encrypted)."""

    is_encrypted = True


async def test_token_cache_refuses_without_encryption(tmp_path: Path) -> None:
    def no_libsecret(location: str) -> object:
        raise ImportError("No module named 'gi'")

    with pytest.raises(errors.KeyringUnavailableError, match="libsecret") as info:
        open_token_cache(tmp_path / "cache.bin", persistence_factory=no_libsecret)
    assert isinstance(info.value, errors.CredentialError) and "plain text" in info.value.message
    with pytest.raises(errors.KeyringUnavailableError):
        open_token_cache(tmp_path / "cache.bin", persistence_factory=FilePersistence)  # plaintext: refused


async def test_tokens_persist_in_the_encrypted_cache(router: respx.MockRouter, tmp_path: Path) -> None:
    sts(router, MS, "tenant-1")
    token = router.post(f"{MS}/tenant-1/oauth2/v2.0/token").respond(
        200, json={"token_type": "Bearer", "expires_in": 3599, "access_token": "PERSISTED"})
    path = tmp_path / "cache" / "msal.bin"
    first = provider(router, ClientSecretLogin("c", "s"), f"{MS}/tenant-1",
                     token_cache=open_token_cache(path, persistence_factory=FakeEncryptedPersistence))
    assert await first.get_token(SCOPES) == "PERSISTED"
    first.close()
    second = provider(router, ClientSecretLogin("c", "s"), f"{MS}/tenant-1",
                      token_cache=open_token_cache(path, persistence_factory=FakeEncryptedPersistence))
    assert await second.get_token(SCOPES) == "PERSISTED"
    second.close()
    assert token.call_count == 1  # the second process was served from the persisted cache


async def test_authority_discovered_from_the_401_challenge() -> None:
    router = respx.MockRouter()
    router.get("https://contoso.crm.example.com/api/data/v9.2/").respond(401, headers={
        "WWW-Authenticate": 'Bearer authorization_uri=https://login.microsoftonline.com/72f988bf/oauth2/authorize, '
                            'resource_id=https://contoso.crm.example.com/'})
    authority = await discover_authority("https://contoso.crm.example.com/", transport=httpx.MockTransport(router.async_handler))
    assert authority == "https://login.microsoftonline.com/72f988bf"
    assert authority_from_challenge("Basic realm=x") is None
    with pytest.raises(errors.InvalidUrlError):
        scope_for("http://contoso.crm.example.com")


async def test_msal_http_client_decodes_bytes_form_values_and_restores_the_authority_port() -> None:
    from crmsync_desktop.auth.msal_provider import MsalHttpClient

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    client = MsalHttpClient(httpx.Client(transport=httpx.MockTransport(handler)), "https://127.0.0.1:8443/tenant")
    client.post("https://127.0.0.1:8443/tenant/oauth2/v2.0/token", data={"client_assertion": b"eyJhbGc", "grant_type": "x"})
    client.get("https://127.0.0.1/common/userrealm/admin@contoso.example?api-version=1.0")
    client.get("https://login.example.com/other")
    client.close()
    assert b"client_assertion=eyJhbGc" in seen[0].content and b"b%27" not in seen[0].content
    assert str(seen[1].url).startswith("https://127.0.0.1:8443/common/userrealm/")
    assert seen[2].url.host == "login.example.com" and seen[2].url.port is None
