"""HTTP face of the emulated Entra ID: the URLs MSAL calls, plus a sign-in page and an approval API.

Paths mirror ``login.microsoftonline.com`` (tenant-scoped OpenID discovery, v2 and v1 token
endpoints, device code, authorize, JWKS, user realm). Everything under ``/_emulator`` is the
emulator's own control surface and has no Entra counterpart.
"""

from __future__ import annotations

import base64
import html
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from crmsync_desktop.emulator.identity.errors import AadError
from crmsync_desktop.emulator.identity.provider import IdentityProvider

__all__ = ["create_identity_app"]


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def _form(request: Request) -> dict[str, str]:
    """urlencoded body without python-multipart (stack-recipes §5)."""
    return dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return unquote(user), unquote(password)


def create_identity_app(provider: IdentityProvider) -> Starlette:
    """The Starlette app serving ``provider``; run it over HTTPS (MSAL refuses plain http)."""

    def error(exc: AadError, request: Request) -> Response:
        return exc.response(request.headers.get("client-request-id"))

    async def openid_v2(request: Request) -> Response:
        name = request.path_params["tenant"]
        tenant = provider.directory.find_tenant(name)
        if tenant is None:
            return _discovery_error(name)
        base, tid = _base(request), tenant.tenant_id
        seg = name  # endpoints keep the segment the client used, as Entra does
        return JSONResponse(
            {
                "token_endpoint": f"{base}/{seg}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/{seg}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/{tid}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{base}/oidc/userinfo",
                "authorization_endpoint": f"{base}/{seg}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{seg}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{seg}/oauth2/v2.0/logout",
                "claims_supported": [
                    "sub",
                    "iss",
                    "cloud_instance_name",
                    "cloud_instance_host_name",
                    "cloud_graph_host_name",
                    "msgraph_host",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "acr",
                    "nonce",
                    "preferred_username",
                    "name",
                    "tid",
                    "ver",
                    "at_hash",
                    "c_hash",
                    "email",
                ],
                "kerberos_endpoint": f"{base}/{seg}/kerberos",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            }
        )

    async def openid_v1(request: Request) -> Response:
        name = request.path_params["tenant"]
        tenant = provider.directory.find_tenant(name)
        if tenant is None:
            return _discovery_error(name)
        base, seg = _base(request), name
        return JSONResponse(
            {
                "token_endpoint": f"{base}/{seg}/oauth2/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/{seg}/discovery/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
                "scopes_supported": ["openid"],
                "issuer": f"https://sts.windows.net/{tenant.tenant_id}/",
                "microsoft_multi_refresh_token": True,
                "authorization_endpoint": f"{base}/{seg}/oauth2/authorize",
                "device_authorization_endpoint": f"{base}/{seg}/oauth2/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{seg}/oauth2/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            }
        )

    async def keys(request: Request) -> Response:
        return JSONResponse(provider.signing_key.jwks())

    async def token(request: Request) -> Response:
        form = await _form(request)
        endpoint_url = f"{_base(request)}{request.url.path}"
        try:
            body = provider.token(request.path_params["tenant"], form, endpoint_url, _basic(request))
        except AadError as exc:
            return error(exc, request)
        return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    async def devicecode(request: Request) -> Response:
        form = await _form(request)
        try:
            body = provider.start_device_flow(
                request.path_params["tenant"], form, f"{_base(request)}/devicelogin"
            )
        except AadError as exc:
            return error(exc, request)
        return JSONResponse(body)

    async def authorize(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            redirect_uri, answer = provider.authorize(request.path_params["tenant"], params)
        except AadError as exc:
            return error(exc, request)
        if params.get("response_mode") == "form_post":
            fields = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in answer.items()
            )
            return HTMLResponse(
                f'<html><body onload="document.forms[0].submit()"><form method="post" '
                f'action="{html.escape(redirect_uri)}">{fields}<noscript><button>Continue</button></noscript>'
                "</form></body></html>"
            )
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(answer)}", status_code=302)

    async def userrealm(request: Request) -> Response:
        """MSAL asks before a password grant; "Managed" means: just post the password."""
        username = request.path_params["username"]
        domain = username.rpartition("@")[2]
        return JSONResponse(
            {
                "ver": "1.0",
                "account_type": "Managed",
                "domain_name": domain,
                "cloud_instance_name": "microsoftonline.com",
                "cloud_audience_urn": "urn:federation:MicrosoftOnline",
            }
        )

    async def devicelogin_page(request: Request) -> Response:
        return HTMLResponse(_DEVICE_PAGE.format(message=""))

    async def devicelogin_submit(request: Request) -> Response:
        form = await _form(request)
        try:
            upn = provider.approve_device_code(
                form.get("user_code", ""), form.get("username") or None, form.get("password", "")
            )
        except (KeyError, PermissionError) as exc:
            text = (
                "Invalid username or password."
                if isinstance(exc, PermissionError)
                else "That code is not valid."
            )
            return HTMLResponse(_DEVICE_PAGE.format(message=html.escape(text)), status_code=400)
        return HTMLResponse(f"<p>Signed in as {html.escape(upn)}. You may close this window.</p>")

    async def approve(request: Request) -> Response:
        """``POST /_emulator/devicecode/approve`` {"user_code": ..., "username"?: ..., "decline"?: bool}."""
        data: dict[str, Any] = await request.json()
        try:
            upn = provider.approve_device_code(
                str(data.get("user_code", "")), data.get("username"), decline=bool(data.get("decline", False))
            )
        except KeyError:
            return JSONResponse(
                {"error": "unknown_user_code", "user_code": data.get("user_code")}, status_code=404
            )
        return JSONResponse({"approved": not data.get("decline", False), "username": upn})

    async def health(request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "tenants": [t.tenant_id for t in provider.directory.tenants.values()]}
        )

    routes = [
        Route("/_emulator/health", health),
        Route("/_emulator/devicecode/approve", approve, methods=["POST"]),
        Route("/devicelogin", devicelogin_page, methods=["GET"]),
        Route("/devicelogin", devicelogin_submit, methods=["POST"]),
        Route("/common/userrealm/{username}", userrealm),
        Route("/common/discovery/keys", keys),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_v2),
        Route("/{tenant}/.well-known/openid-configuration", openid_v1),
        Route("/{tenant}/discovery/v2.0/keys", keys),
        Route("/{tenant}/discovery/keys", keys),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/{tenant}/oauth2/token", token, methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/devicecode", devicecode, methods=["POST"]),
        Route("/{tenant}/oauth2/devicecode", devicecode, methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/authorize", authorize),
        Route("/{tenant}/oauth2/authorize", authorize),
    ]
    return Starlette(routes=routes)


def _discovery_error(name: str) -> Response:
    exc = AadError(400, "invalid_tenant", 90002, f"Tenant '{quote(name)}' not found.")
    return exc.response()


_DEVICE_PAGE = """<!doctype html><html><head><title>Sign in (emulated Entra ID)</title></head><body>
<h1>Enter code</h1><p>{message}</p>
<form method="post" action="/devicelogin">
<label>Code <input name="user_code" autofocus></label><br>
<label>Username <input name="username"></label><br>
<label>Password <input name="password" type="password"></label><br>
<button type="submit">Sign in</button></form></body></html>"""
