"""The real MSAL library signs in against the emulated Entra ID over HTTPS, one test per flow."""

from __future__ import annotations

import re
import ssl
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import msal
import pytest

from tests.emulator.identity.conftest import RESOURCE, Idp, make_client_cert

SCOPE = [f"{RESOURCE}/.default"]
USER_SCOPE = [f"{RESOURCE}/user_impersonation"]


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _confidential(idp: Idp, credential: object, http) -> msal.ConfidentialClientApplication:  # type: ignore[no-untyped-def]
    return msal.ConfidentialClientApplication(
        idp.confidential.client_id,
        client_credential=credential,
        authority=idp.authority,
        instance_discovery=False,
        http_client=http,
    )


def _public(idp: Idp, http) -> msal.PublicClientApplication:  # type: ignore[no-untyped-def]
    return msal.PublicClientApplication(
        idp.public.client_id, authority=idp.authority, instance_discovery=False, http_client=http
    )


def test_client_secret(idp: Idp) -> None:
    http = idp.http()
    try:
        app = _confidential(idp, "s3cret-value", http)
        result = app.acquire_token_for_client(scopes=SCOPE)
        assert "access_token" in result, result
        assert result["token_type"] == "Bearer"
        claims = _claims(result["access_token"])
        assert claims["aud"] == RESOURCE
        assert claims["tid"] == idp.tenant.tenant_id
        assert claims["appid"] == idp.confidential.client_id
        assert claims["oid"] == idp.confidential.object_id
        assert "upn" not in claims
        principal = idp.provider.authenticate(result["access_token"], RESOURCE + "/")
        assert principal.app_id == idp.confidential.client_id and principal.upn is None
        again = app.acquire_token_for_client(scopes=SCOPE)
        assert again["token_source"] == "cache"
        assert http.calls == [
            ("GET", f"{idp.authority}/v2.0/.well-known/openid-configuration"),
            ("POST", f"{idp.authority}/oauth2/v2.0/token"),
        ]
    finally:
        http.close()


def test_wrong_secret_is_invalid_client(idp: Idp) -> None:
    http = idp.http()
    try:
        result = _confidential(idp, "wrong", http).acquire_token_for_client(scopes=SCOPE)
    finally:
        http.close()
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215:")
    assert result["error_codes"] == [7000215]
    assert result["correlation_id"] and result["trace_id"] and result["timestamp"]


def test_certificate_sha1_thumbprint(idp: Idp) -> None:
    from crmsync_desktop.emulator.identity import certificate_thumbprints

    sha1, _ = certificate_thumbprints(idp.cert.cert_pem)
    http = idp.http()
    try:
        result = _confidential(
            idp, {"private_key": idp.cert.private_key_pem, "thumbprint": sha1}, http
        ).acquire_token_for_client(scopes=SCOPE)
    finally:
        http.close()
    assert "access_token" in result, result
    assert _claims(result["access_token"])["appidacr"] == "2"


def test_certificate_public_certificate_ps256(idp: Idp) -> None:
    http = idp.http()
    try:
        result = _confidential(
            idp, {"private_key": idp.cert.private_key_pem, "public_certificate": idp.cert.cert_pem}, http
        ).acquire_token_for_client(scopes=SCOPE)
    finally:
        http.close()
    assert "access_token" in result, result


def test_unregistered_certificate_rejected(idp: Idp) -> None:
    other = make_client_cert()
    http = idp.http()
    try:
        result = _confidential(
            idp, {"private_key": other.private_key_pem, "public_certificate": other.cert_pem}, http
        ).acquire_token_for_client(scopes=SCOPE)
    finally:
        http.close()
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


def test_client_credentials_needs_default_scope_and_known_resource(idp: Idp) -> None:
    http = idp.http()
    try:
        app = _confidential(idp, "s3cret-value", http)
        bad_scope = app.acquire_token_for_client(scopes=USER_SCOPE)
        unknown = app.acquire_token_for_client(scopes=["https://fabrikam.crm.dynamics.com/.default"])
    finally:
        http.close()
    assert bad_scope["error_codes"] == [1002012]
    assert unknown["error"] == "invalid_resource" and unknown["error_codes"] == [500011]


def test_device_code_with_approval(idp: Idp) -> None:
    http = idp.http()
    try:
        app = _public(idp, http)
        flow = app.initiate_device_flow(scopes=USER_SCOPE)
        assert "user_code" in flow, flow
        assert flow["verification_uri"] == f"{idp.url}/devicelogin"
        flow["interval"] = 0

        def approve() -> None:
            time.sleep(0.2)
            with httpx.Client(verify=ssl.create_default_context(cafile=str(idp.ca_path))) as c:
                response = c.post(
                    f"{idp.url}/_emulator/devicecode/approve", json={"user_code": flow["user_code"]}
                )
                assert response.status_code == 200

        approver = threading.Thread(target=approve)
        approver.start()
        result = app.acquire_token_by_device_flow(flow)
        approver.join()
        assert "access_token" in result, result
        claims = _claims(result["access_token"])
        assert claims["upn"] == idp.user.upn and claims["aud"] == RESOURCE
        assert result["id_token_claims"]["preferred_username"] == idp.user.upn
        assert [a["username"] for a in app.get_accounts()] == [idp.user.upn]
        principal = idp.provider.authenticate(result["access_token"], RESOURCE)
        assert principal.upn == idp.user.upn and principal.object_id == idp.user.object_id
    finally:
        http.close()


def test_device_code_pending_then_expired(idp: Idp) -> None:
    http = idp.http()
    try:
        app = _public(idp, http)
        flow = app.initiate_device_flow(scopes=USER_SCOPE)
        pending = http.post(
            f"{idp.authority}/oauth2/v2.0/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": idp.public.client_id,
                "device_code": flow["device_code"],
            },
        )
        assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
        idp.provider.clock = lambda: time.time() + 3600
        flow["interval"] = 0
        result = app.acquire_token_by_device_flow(flow)
    finally:
        http.close()
    assert result["error"] == "expired_token"
    assert result["error_codes"] == [70020]


def test_password_then_silent_refresh_after_expiry(idp: Idp) -> None:
    idp.provider.access_token_lifetime = 60  # below MSAL's 5-minute refresh margin: silent must refresh
    http = idp.http()
    try:
        app = _public(idp, http)
        with pytest.warns(DeprecationWarning):
            first = app.acquire_token_by_username_password(idp.user.upn, "P@ssw0rd!", scopes=USER_SCOPE)
        assert "access_token" in first, first
        assert "refresh_token" in first and first["expires_in"] == 60
        posts_before = sum(1 for method, _ in http.calls if method == "POST")
        account = app.get_accounts(username=idp.user.upn)[0]
        second = app.acquire_token_silent(USER_SCOPE, account=account)
        assert second is not None and "access_token" in second, second
        assert second["access_token"] != first["access_token"]
        assert sum(1 for method, _ in http.calls if method == "POST") == posts_before + 1
        host = idp.url.split("//")[1].split(":")[0]
        assert ("GET", f"https://{host}/common/userrealm/{idp.user.upn}?api-version=1.0") in http.calls
        assert idp.provider.authenticate(second["access_token"], RESOURCE).upn == idp.user.upn
    finally:
        http.close()


def test_wrong_password(idp: Idp) -> None:
    http = idp.http()
    try:
        with pytest.warns(DeprecationWarning):
            result = _public(idp, http).acquire_token_by_username_password(
                idp.user.upn, "nope", scopes=USER_SCOPE
            )
    finally:
        http.close()
    assert result["error"] == "invalid_grant" and result["error_codes"] == [50126]


def _form_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))


def test_authorization_code_with_pkce(idp: Idp) -> None:
    http = idp.http()
    try:
        app = _public(idp, http)
        flow = app.initiate_auth_code_flow(
            USER_SCOPE,
            redirect_uri="http://localhost:8400",
            login_hint=idp.user.upn,
            response_mode="form_post",
        )
        page = http.client.get(flow["auth_uri"], follow_redirects=False)
        assert page.status_code == 200 and 'action="http://localhost:8400"' in page.text
        result = app.acquire_token_by_auth_code_flow(flow, _form_fields(page.text))
        assert "access_token" in result, result
        assert _claims(result["access_token"])["upn"] == idp.user.upn
        # Query response mode (a plain redirect) works too; a stolen code without the verifier is refused.
        with pytest.warns(UserWarning, match="form_post"):
            flow2 = app.initiate_auth_code_flow(USER_SCOPE, redirect_uri="http://localhost:8400")
        redirect = http.client.get(flow2["auth_uri"], follow_redirects=False)
        assert redirect.status_code == 302
        location = urlsplit(redirect.headers["location"])
        assert f"{location.scheme}://{location.netloc}" == "http://localhost:8400"
        code = dict(parse_qsl(location.query))["code"]
        stolen = http.post(
            f"{idp.authority}/oauth2/v2.0/token",
            data={
                "grant_type": "authorization_code",
                "client_id": idp.public.client_id,
                "code": code,
                "redirect_uri": "http://localhost:8400",
                "code_verifier": "not-the-verifier",
            },
        )
        assert stolen.json()["error_codes"] == [501481]
    finally:
        http.close()
