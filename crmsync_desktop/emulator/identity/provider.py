"""The emulated Entra ID: grants, token minting, and bearer-token validation for the Dataverse emulator.

Kept free of HTTP so the rules (which grant needs which credential, which AADSTS error wins) are
in one readable place; ``identity.app`` only parses requests and renders responses. The same
object is the ``BearerAuthenticator`` the Dataverse emulator uses, because only the issuer knows
its signing key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography import x509

from crmsync_desktop.emulator.auth_protocol import InvalidToken, Principal
from crmsync_desktop.emulator.identity import errors
from crmsync_desktop.emulator.identity.errors import AadError
from crmsync_desktop.emulator.identity.registry import (
    AppRegistration,
    Directory,
    Tenant,
    User,
    normalize_resource,
)
from crmsync_desktop.emulator.identity.tokens import SigningKey, b64url

__all__ = ["IdentityProvider"]

OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class _Grant:
    """What a refresh token, device code or authorization code stands for."""

    tenant_id: str
    client_id: str
    user_id: str | None
    scopes: list[str]
    expires_at: float
    # device code only
    user_code: str = ""
    declined: bool = False
    # authorization code only
    redirect_uri: str = ""
    code_challenge: str = ""
    code_challenge_method: str = ""
    nonce: str = ""


@dataclass
class _ClientAuth:
    app: AppRegistration
    appidacr: str  # "0" public client, "1" secret, "2" certificate


@dataclass
class IdentityProvider:
    """Issues tokens for ``directory`` and validates them as an ``auth_protocol.BearerAuthenticator``."""

    directory: Directory
    signing_key: SigningKey = field(default_factory=SigningKey.generate)
    base_url: str = "https://127.0.0.1"  # set by the runner once the port is known
    access_token_lifetime: int = 3600
    refresh_token_lifetime: int = 90 * 24 * 3600
    device_code_lifetime: int = 900
    device_code_interval: int = 5
    auth_code_lifetime: int = 600
    interactive_upn: str | None = None  # who /authorize signs in when no login_hint matches
    clock: Callable[[], float] = time.time
    _refresh_tokens: dict[str, _Grant] = field(default_factory=dict, repr=False)
    _device_codes: dict[str, _Grant] = field(default_factory=dict, repr=False)
    _auth_codes: dict[str, _Grant] = field(default_factory=dict, repr=False)

    # ---- BearerAuthenticator -------------------------------------------------------------------

    @property
    def default_tenant(self) -> Tenant:
        return next(iter(self.directory.tenants.values()))

    @property
    def authorization_uri(self) -> str:
        """What real Dataverse advertises in ``WWW-Authenticate`` (the v1 authorize endpoint)."""
        return f"{self.base_url}/{self.default_tenant.tenant_id}/oauth2/authorize"

    def authenticate(self, token: str | None, resource: str) -> Principal:
        if not token:
            raise InvalidToken("Bearer token is required", error="")
        try:
            claims = self.signing_key.verify(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"The access token signature is invalid: {exc}") from exc
        if claims.get("ver") != "1.0" or "appid" not in claims:
            raise InvalidToken("The token is not an access token")
        if float(claims.get("exp", 0)) <= self.clock():
            raise InvalidToken("The access token is expired")
        if float(claims.get("nbf", 0)) > self.clock() + 300:
            raise InvalidToken("The access token is not yet valid")
        if normalize_resource(str(claims.get("aud", ""))) != normalize_resource(resource):
            raise InvalidToken(
                f"The access token audience '{claims.get('aud')}' is not valid for '{resource}'"
            )
        tenant = self.directory.tenants.get(str(claims.get("tid")))
        if tenant is None:
            raise InvalidToken("The token was issued by an unknown tenant")
        return Principal(
            object_id=claims["oid"],
            tenant_id=claims["tid"],
            app_id=claims["appid"],
            display_name=claims.get("name") or claims.get("app_displayname") or claims["appid"],
            upn=claims.get("upn"),
        )

    # ---- token endpoint ------------------------------------------------------------------------

    def token(
        self,
        tenant_name: str,
        form: Mapping[str, str],
        endpoint_url: str,
        basic_auth: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Handle one ``POST /{tenant}/oauth2/v2.0/token``; raise ``AadError`` like Entra ID would."""
        tenant = self._tenant(tenant_name)
        grant = form.get("grant_type", "")
        if not grant:
            raise errors.missing_parameter("grant_type")
        if grant == "client_credentials":
            client = self._client(tenant, form, endpoint_url, basic_auth, confidential=True)
            resource, scope = self._resource_from_scopes(tenant, form, app_only=True)
            return self._issue(
                tenant, client, None, resource, scope, user_flow=False, endpoint_url=endpoint_url
            )
        if grant == "password":
            client = self._client(tenant, form, endpoint_url, basic_auth, confidential=False)
            resource, scope = self._resource_from_scopes(tenant, form)
            user = self._check_password(tenant, form.get("username", ""), form.get("password", ""))
            return self._issue(
                tenant, client, user, resource, scope, user_flow=True, amr="pwd", endpoint_url=endpoint_url
            )
        if grant == DEVICE_CODE_GRANT:
            return self._redeem_device_code(tenant, form, endpoint_url, basic_auth)
        if grant == "refresh_token":
            return self._redeem_refresh_token(tenant, form, endpoint_url, basic_auth)
        if grant == "authorization_code":
            return self._redeem_auth_code(tenant, form, endpoint_url, basic_auth)
        raise errors.unsupported_grant(grant)

    def _tenant(self, name: str) -> Tenant:
        tenant = self.directory.find_tenant(name)
        if tenant is None:
            raise errors.tenant_not_found(name)
        return tenant

    def _client(
        self,
        tenant: Tenant,
        form: Mapping[str, str],
        endpoint_url: str,
        basic_auth: tuple[str, str] | None,
        *,
        confidential: bool,
    ) -> _ClientAuth:
        client_id = form.get("client_id") or (basic_auth[0] if basic_auth else "")
        if not client_id:
            raise errors.missing_parameter("client_id")
        app = tenant.apps.get(client_id)
        if app is None:
            raise errors.app_not_found(client_id, tenant.tenant_id)
        secret = form.get("client_secret") or (basic_auth[1] if basic_auth else None)
        if secret is not None:
            if secret not in app.secrets:
                raise errors.invalid_client_secret(client_id)
            return _ClientAuth(app, "1")
        if form.get("client_assertion"):
            self._check_assertion(app, form, endpoint_url)
            return _ClientAuth(app, "2")
        if confidential or not app.public_client:
            raise errors.missing_client_credential()
        return _ClientAuth(app, "0")

    def _check_assertion(self, app: AppRegistration, form: Mapping[str, str], endpoint_url: str) -> None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise errors.missing_parameter("client_assertion_type")
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise errors.bad_client_assertion(f"The assertion is not a JWT: {exc}") from exc
        sha1 = _thumb_hex(header.get("x5t"))
        sha256 = _thumb_hex(header.get("x5t#S256"))
        pem = app.certificate_for(sha1, sha256)
        if pem is None:
            raise errors.bad_client_assertion(
                f"The key was not found. Thumbprint of key used by client: '{sha256 or sha1}'."
            )
        public_key = x509.load_pem_x509_certificate(pem).public_key()
        try:
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256", "PS256"],
                audience=endpoint_url,
                issuer=app.client_id,
                options={"require": ["exp", "aud", "iss", "sub"]},
                leeway=300,
            )
        except jwt.ExpiredSignatureError as exc:
            raise errors.assertion_time_range() from exc
        except jwt.InvalidAudienceError as exc:
            raise AadError(
                401,
                "invalid_client",
                700212,
                f"No matching federated identity record found for presented assertion audience "
                f"'{jwt.decode(assertion, options={'verify_signature': False}).get('aud')}'.",
            ) from exc
        except jwt.PyJWTError as exc:
            raise errors.bad_client_assertion(str(exc)) from exc
        if claims.get("sub") != app.client_id:
            raise errors.bad_client_assertion("The 'sub' claim must be the client id.")

    def _resource_from_scopes(
        self,
        tenant: Tenant,
        form: Mapping[str, str],
        *,
        app_only: bool = False,
        scope_text: str | None = None,
    ) -> tuple[str, str]:
        """Map ``{org_url}/.default`` or ``{org_url}/user_impersonation`` to the resource URL (the aud)."""
        text = scope_text if scope_text is not None else form.get("scope", "")
        if "resource" in form and not text:  # v1 endpoint: resource=<url>
            text = form["resource"].rstrip("/") + "/.default"
        scopes = [s for s in text.split() if s not in OIDC_SCOPES]
        if not scopes:
            raise errors.missing_parameter("scope") if app_only else errors.invalid_scope(text or "''")
        scope = scopes[0]
        resource, _, permission = scope.rstrip("/").rpartition("/")
        # Dataverse quirk: "https://org.crm.dynamics.com//.default" is accepted too.
        resource = resource.rstrip("/")
        if not resource.startswith(("https://", "http://")):
            raise errors.invalid_scope(scope)
        if app_only and permission != ".default":
            raise errors.client_credentials_needs_default(scope)
        if permission not in (".default", "user_impersonation"):
            raise errors.invalid_scope(scope)
        if normalize_resource(resource) not in self.directory.resources:
            raise errors.resource_not_found(resource, tenant.tenant_id)
        return resource, scope

    def _check_password(self, tenant: Tenant, username: str, password: str) -> User:
        if not username:
            raise errors.missing_parameter("username")
        user = tenant.users.get(username.lower())
        if user is None:
            raise errors.user_not_found(tenant.tenant_id)
        if not secrets.compare_digest(user.password.encode(), password.encode()):
            raise errors.bad_credentials()
        return user

    # ---- device code ---------------------------------------------------------------------------

    def start_device_flow(
        self, tenant_name: str, form: Mapping[str, str], verification_uri: str
    ) -> dict[str, Any]:
        tenant = self._tenant(tenant_name)
        client_id = form.get("client_id", "")
        if not client_id:
            raise errors.missing_parameter("client_id")
        app = tenant.apps.get(client_id)
        if app is None:
            raise errors.app_not_found(client_id, tenant.tenant_id)
        self._resource_from_scopes(tenant, form)
        user_code = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(9))
        device_code = secrets.token_urlsafe(48)
        self._device_codes[device_code] = _Grant(
            tenant.tenant_id,
            client_id,
            None,
            form.get("scope", "").split(),
            self.clock() + self.device_code_lifetime,
            user_code=user_code,
        )
        return {
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": verification_uri,
            "expires_in": self.device_code_lifetime,
            "interval": self.device_code_interval,
            "message": f"To sign in, use a web browser to open the page {verification_uri} and enter the code "
            f"{user_code} to authenticate.",
        }

    def approve_device_code(
        self, user_code: str, upn: str | None = None, password: str | None = None, *, decline: bool = False
    ) -> str:
        """Sign ``upn`` (default: the tenant's first user) in for a pending code; return the UPN.

        Raises ``KeyError`` for an unknown or expired code and ``PermissionError`` for a bad password
        (only checked when one is given, as the browser form does).
        """
        code = user_code.strip().upper()
        grant = next((g for g in self._device_codes.values() if g.user_code == code), None)
        if grant is None or grant.expires_at <= self.clock():
            raise KeyError(user_code)
        tenant = self.directory.tenants[grant.tenant_id]
        user = tenant.users.get(upn.lower()) if upn else next(iter(tenant.users.values()), None)
        if user is None:
            raise KeyError(upn or "no users")
        if password is not None and not secrets.compare_digest(user.password.encode(), password.encode()):
            raise PermissionError("invalid username or password")
        grant.user_id = user.object_id
        grant.declined = decline
        return user.upn

    def _redeem_device_code(
        self, tenant: Tenant, form: Mapping[str, str], endpoint_url: str, basic_auth: tuple[str, str] | None
    ) -> dict[str, Any]:
        code = form.get("device_code", "")
        if not code:
            raise errors.missing_parameter("device_code")
        grant = self._device_codes.get(code)
        if grant is None or grant.tenant_id != tenant.tenant_id:
            raise errors.bad_device_code()
        client = self._client(tenant, form, endpoint_url, basic_auth, confidential=False)
        if client.app.client_id != grant.client_id:
            raise errors.bad_device_code()
        if grant.expires_at <= self.clock():
            del self._device_codes[code]
            raise errors.device_code_expired()
        if grant.declined:
            del self._device_codes[code]
            raise errors.authorization_declined()
        if grant.user_id is None:
            raise errors.authorization_pending()
        del self._device_codes[code]
        user = tenant.user_by_id(grant.user_id)
        assert user is not None
        resource, scope = self._resource_from_scopes(tenant, form, scope_text=" ".join(grant.scopes))
        return self._issue(
            tenant, client, user, resource, scope, user_flow=True, amr="pwd", endpoint_url=endpoint_url
        )

    # ---- refresh token -------------------------------------------------------------------------

    def _redeem_refresh_token(
        self, tenant: Tenant, form: Mapping[str, str], endpoint_url: str, basic_auth: tuple[str, str] | None
    ) -> dict[str, Any]:
        token = form.get("refresh_token", "")
        if not token:
            raise errors.missing_parameter("refresh_token")
        grant = self._refresh_tokens.get(token)
        if grant is None or grant.tenant_id != tenant.tenant_id:
            raise errors.bad_refresh_token()
        client = self._client(tenant, form, endpoint_url, basic_auth, confidential=False)
        if client.app.client_id != grant.client_id:
            raise errors.bad_refresh_token()
        if grant.expires_at <= self.clock():
            del self._refresh_tokens[token]
            raise errors.refresh_token_expired()
        user = tenant.user_by_id(grant.user_id or "")
        if user is None:
            raise errors.bad_refresh_token()
        # A refresh token is good for any resource the user may reach (Entra's multi-resource RT).
        scope_text = form.get("scope") or " ".join(grant.scopes)
        resource, scope = self._resource_from_scopes(tenant, form, scope_text=scope_text)
        return self._issue(
            tenant, client, user, resource, scope, user_flow=True, amr="pwd", endpoint_url=endpoint_url
        )

    # ---- authorization code with PKCE ----------------------------------------------------------

    def authorize(self, tenant_name: str, params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """Auto-consent as ``login_hint`` / ``interactive_upn`` / the first user.

        Returns the redirect URI and the response parameters (code, state, client_info); the app
        delivers them in the query or, for ``response_mode=form_post``, as an auto-submitted form.
        """
        tenant = self._tenant(tenant_name)
        client_id = params.get("client_id", "")
        app = tenant.apps.get(client_id)
        if app is None:
            raise errors.app_not_found(client_id, tenant.tenant_id)
        redirect_uri = params.get("redirect_uri") or app.redirect_uris[0]
        if not _redirect_allowed(redirect_uri, app.redirect_uris):
            raise errors.redirect_mismatch(client_id)
        if params.get("response_type", "code") != "code":
            raise errors.unsupported_grant(params.get("response_type", ""))
        scope_text = params.get("scope", "")
        if "resource" in params and not scope_text:
            scope_text = params["resource"].rstrip("/") + "/user_impersonation"
        self._resource_from_scopes(tenant, params, scope_text=scope_text)
        hint = (params.get("login_hint") or "").lower()
        user = (
            tenant.users.get(hint)
            or tenant.users.get((self.interactive_upn or "").lower())
            or next(iter(tenant.users.values()), None)
        )
        if user is None:
            raise errors.user_not_found(tenant.tenant_id)
        code = secrets.token_urlsafe(48)
        self._auth_codes[code] = _Grant(
            tenant.tenant_id,
            client_id,
            user.object_id,
            scope_text.split(),
            self.clock() + self.auth_code_lifetime,
            redirect_uri=redirect_uri,
            code_challenge=params.get("code_challenge", ""),
            code_challenge_method=params.get("code_challenge_method", "plain"),
            nonce=params.get("nonce", ""),
        )
        query = {
            "code": code,
            "client_info": _client_info(user.object_id, tenant.tenant_id),
            "session_state": str(uuid.uuid4()),
        }
        if "state" in params:
            query["state"] = params["state"]
        return redirect_uri, query

    def _redeem_auth_code(
        self, tenant: Tenant, form: Mapping[str, str], endpoint_url: str, basic_auth: tuple[str, str] | None
    ) -> dict[str, Any]:
        code = form.get("code", "")
        if not code:
            raise errors.missing_parameter("code")
        grant = self._auth_codes.pop(code, None)
        if grant is None or grant.tenant_id != tenant.tenant_id or grant.expires_at <= self.clock():
            raise errors.bad_auth_code()
        client = self._client(tenant, form, endpoint_url, basic_auth, confidential=False)
        if client.app.client_id != grant.client_id:
            raise errors.bad_auth_code()
        if form.get("redirect_uri", grant.redirect_uri) != grant.redirect_uri:
            raise errors.redirect_mismatch(client.app.client_id)
        if grant.code_challenge:
            verifier = form.get("code_verifier", "")
            expected = (
                b64url(hashlib.sha256(verifier.encode()).digest())
                if grant.code_challenge_method.upper() == "S256"
                else verifier
            )
            if not secrets.compare_digest(expected, grant.code_challenge):
                raise errors.pkce_mismatch()
        user = tenant.user_by_id(grant.user_id or "")
        assert user is not None
        resource, scope = self._resource_from_scopes(tenant, form, scope_text=" ".join(grant.scopes))
        return self._issue(
            tenant,
            client,
            user,
            resource,
            scope,
            user_flow=True,
            amr="pwd",
            nonce=grant.nonce,
            endpoint_url=endpoint_url,
        )

    # ---- minting -------------------------------------------------------------------------------

    def _issue(
        self,
        tenant: Tenant,
        client: _ClientAuth,
        user: User | None,
        resource: str,
        scope: str,
        *,
        user_flow: bool,
        amr: str = "pwd",
        nonce: str = "",
        endpoint_url: str = "",
    ) -> dict[str, Any]:
        now = int(self.clock())
        lifetime = self.access_token_lifetime
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{tenant.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": client.app.client_id,
            "appidacr": client.appidacr,
            "idp": f"https://sts.windows.net/{tenant.tenant_id}/",
            "tid": tenant.tenant_id,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "1.0",
            "rh": "0.emulator.",
        }
        if user is not None:
            claims.update(
                {
                    "oid": user.object_id,
                    "sub": b64url(hashlib.sha256(f"{user.object_id}|{resource}".encode()).digest()),
                    "upn": user.upn,
                    "unique_name": user.upn,
                    "name": user.display_name,
                    "scp": "user_impersonation",
                    "amr": [amr],
                }
            )
        else:
            claims.update(
                {
                    "oid": client.app.object_id,
                    "sub": client.app.object_id,
                    "idtyp": "app",
                    "app_displayname": client.app.display_name,
                }
            )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.signing_key.sign(claims),
        }
        if user_flow and user is not None:
            body["scope"] = scope
            refresh = secrets.token_urlsafe(64)
            self._refresh_tokens[refresh] = _Grant(
                tenant.tenant_id,
                client.app.client_id,
                user.object_id,
                [scope, "offline_access"],
                self.clock() + self.refresh_token_lifetime,
            )
            body["refresh_token"] = refresh
            body["refresh_token_expires_in"] = self.refresh_token_lifetime
            body["id_token"] = self._id_token(
                tenant, client.app, user, nonce, _origin(endpoint_url) or self.issuer_base
            )
            body["client_info"] = _client_info(user.object_id, tenant.tenant_id)
        return body

    def _id_token(self, tenant: Tenant, app: AppRegistration, user: User, nonce: str, base: str) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "ver": "2.0",
            "iss": f"{base}/{tenant.tenant_id}/v2.0",
            "aud": app.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "tid": tenant.tenant_id,
            "oid": user.object_id,
            "sub": b64url(hashlib.sha256(f"{user.object_id}|{app.client_id}".encode()).digest()),
            "preferred_username": user.upn,
            "name": user.display_name,
            "rh": "0.emulator.",
            "uti": b64url(secrets.token_bytes(16)),
            "aio": b64url(secrets.token_bytes(24)),
        }
        if nonce:
            claims["nonce"] = nonce
        return self.signing_key.sign(claims)

    @property
    def issuer_base(self) -> str:
        return self.base_url.rstrip("/")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme else ""


def _thumb_hex(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    padded = value + "=" * (-len(value) % 4)
    return base64.urlsafe_b64decode(padded).hex().upper()


def _client_info(uid: str, utid: str) -> str:
    return b64url(json.dumps({"uid": uid, "utid": utid}, separators=(",", ":")).encode())


def _redirect_allowed(uri: str, registered: list[str]) -> bool:
    """Entra ignores the port of ``http://localhost`` redirect URIs registered for desktop apps."""
    if uri in registered:
        return True
    parts = urlsplit(uri)
    if parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1"):
        for reg in registered:
            rp = urlsplit(reg)
            if (
                rp.scheme == "http"
                and rp.hostname == parts.hostname
                and rp.path.rstrip("/") == parts.path.rstrip("/")
            ):
                return True
    return False
