"""IdentityProvider as the Dataverse emulator's BearerAuthenticator, and the discovery documents."""

from __future__ import annotations

import ssl
import time

import httpx
import pytest

from crmsync_desktop.emulator.auth_protocol import BearerAuthenticator, InvalidToken
from tests.emulator.identity.conftest import RESOURCE, Idp


def _app_token(idp: Idp) -> str:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(idp.ca_path))) as client:
        response = client.post(
            f"{idp.authority}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": idp.confidential.client_id,
                "client_secret": "s3cret-value",
                "scope": f"{RESOURCE}/.default",
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    return body["access_token"]


def test_is_a_bearer_authenticator(idp: Idp) -> None:
    authenticator: BearerAuthenticator = idp.provider
    assert authenticator.authorization_uri == f"{idp.url}/{idp.tenant.tenant_id}/oauth2/authorize"


def test_expired_token_rejected(idp: Idp) -> None:
    token = _app_token(idp)
    assert idp.provider.authenticate(token, RESOURCE).object_id == idp.confidential.object_id
    idp.provider.clock = lambda: time.time() + 3601
    with pytest.raises(InvalidToken, match="expired") as caught:
        idp.provider.authenticate(token, RESOURCE)
    assert caught.value.error == "invalid_token"


def test_wrong_audience_tampering_and_missing_token(idp: Idp) -> None:
    token = _app_token(idp)
    with pytest.raises(InvalidToken, match="audience"):
        idp.provider.authenticate(token, "https://fabrikam.crm.dynamics.com")
    head, payload, signature = token.split(".")
    with pytest.raises(InvalidToken, match="signature"):
        idp.provider.authenticate(f"{head}.{payload}.{signature[:-4]}AAAA", RESOURCE)
    with pytest.raises(InvalidToken) as missing:
        idp.provider.authenticate(None, RESOURCE)
    assert missing.value.error == ""


def test_discovery_documents(idp: Idp) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(idp.ca_path))) as client:
        v2 = client.get(f"{idp.url}/{idp.tenant.domain}/v2.0/.well-known/openid-configuration").json()
        v1 = client.get(f"{idp.authority}/.well-known/openid-configuration").json()
        keys = client.get(v2["jwks_uri"]).json()
        unknown = client.get(f"{idp.url}/nosuchtenant.example/v2.0/.well-known/openid-configuration")
        v1_token = client.post(
            v1["token_endpoint"],
            data={
                "grant_type": "client_credentials",
                "client_id": idp.confidential.client_id,
                "client_secret": "s3cret-value",
                "resource": RESOURCE,
            },
        )
    assert v2["issuer"] == f"{idp.url}/{idp.tenant.tenant_id}/v2.0"
    assert v2["token_endpoint"] == f"{idp.url}/{idp.tenant.domain}/oauth2/v2.0/token"
    assert v2["device_authorization_endpoint"].endswith("/oauth2/v2.0/devicecode")
    assert v1["token_endpoint"] == f"{idp.authority}/oauth2/token"
    assert keys["keys"][0]["kid"] == idp.provider.signing_key.kid
    assert unknown.status_code == 400 and unknown.json()["error_codes"] == [90002]
    assert v1_token.status_code == 200
    assert (
        idp.provider.authenticate(v1_token.json()["access_token"], RESOURCE).app_id
        == idp.confidential.client_id
    )


def test_device_login_page_approves_with_password(idp: Idp) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(idp.ca_path))) as client:
        flow = client.post(
            f"{idp.authority}/oauth2/v2.0/devicecode",
            data={
                "client_id": idp.public.client_id,
                "scope": f"{RESOURCE}/user_impersonation offline_access",
            },
        ).json()
        bad = client.post(
            f"{idp.url}/devicelogin",
            data={"user_code": flow["user_code"], "username": idp.user.upn, "password": "wrong"},
        )
        good = client.post(
            f"{idp.url}/devicelogin",
            data={"user_code": flow["user_code"].lower(), "username": idp.user.upn, "password": "P@ssw0rd!"},
        )
        token = client.post(
            f"{idp.authority}/oauth2/v2.0/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": idp.public.client_id,
                "device_code": flow["device_code"],
            },
        )
    assert bad.status_code == 400 and good.status_code == 200
    assert token.status_code == 200 and "refresh_token" in token.json()
