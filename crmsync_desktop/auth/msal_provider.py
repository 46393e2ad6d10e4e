"""Access tokens for Dataverse through MSAL: client secret, certificate, device code, interactive browser.

Connectors depend only on the :class:`TokenProvider` protocol (``await get_token(scopes)``).
:class:`MsalTokenProvider` runs MSAL's blocking calls in a worker thread, speaks HTTP through an
httpx client (custom CA bundle for the emulator; ``instance_discovery=False`` for a non-Microsoft
authority), and translates every MSAL result error and exception into :mod:`crmsync_desktop.errors`
here, once. Tokens and secrets are never logged or put in a message.

Confidential logins (secret, certificate) acquire tokens on demand. Public logins (device code,
interactive) need :meth:`MsalTokenProvider.sign_in` once; afterwards ``get_token`` refreshes silently
and raises :class:`~crmsync_desktop.errors.AuthRequiredError` when the user must sign in again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import msal

from crmsync_desktop import errors

log = logging.getLogger(__name__)

MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    }
)
EXPIRY_SKEW_S = 300.0


class TokenProvider(Protocol):
    """Something that hands out bearer tokens for scopes."""

    async def get_token(self, scopes: Sequence[str], *, force_refresh: bool = False) -> str: ...


class StaticTokenProvider:
    """A fixed token (tests, tooling). ``force_refresh`` moves to the next token in the list, if any."""

    def __init__(self, *tokens: str) -> None:
        self._tokens = list(tokens) or ["static-token"]
        self.refreshes = 0

    async def get_token(self, scopes: Sequence[str], *, force_refresh: bool = False) -> str:
        if force_refresh:
            self.refreshes += 1
            if len(self._tokens) > 1:
                self._tokens.pop(0)
        return self._tokens[0]


# -- logins ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClientSecretLogin:
    """An application user with a client secret (the secret comes from the keyring)."""

    client_id: str
    secret: str

    def __repr__(self) -> str:
        return f"ClientSecretLogin(client_id={self.client_id!r}, secret=***)"


@dataclass(frozen=True, slots=True)
class CertificateLogin:
    """An application user with a certificate: PEM private key and the certificate's SHA-1 thumbprint.

    ``crmsync_desktop.auth.certificates.load_client_certificate`` reads a PEM or PFX file into the
    unencrypted key and the thumbprint (so ``passphrase`` is normally None).
    """

    client_id: str
    private_key_pem: str
    thumbprint: str
    passphrase: str | None = None

    def __repr__(self) -> str:
        return f"CertificateLogin(client_id={self.client_id!r}, thumbprint={self.thumbprint!r})"


@dataclass(frozen=True, slots=True)
class DeviceCodePrompt:
    """What to show the user during device-code sign-in."""

    user_code: str
    verification_uri: str
    message: str
    expires_in_s: int


@dataclass(frozen=True, slots=True)
class DeviceCodeLogin:
    client_id: str
    on_prompt: Callable[[DeviceCodePrompt], None]


@dataclass(frozen=True, slots=True)
class InteractiveLogin:
    """System-browser sign-in; needs the redirect URI ``http://localhost`` on the app registration."""

    client_id: str
    login_hint: str | None = None
    timeout_s: int = 300
    port: int | None = None


Login = ClientSecretLogin | CertificateLogin | DeviceCodeLogin | InteractiveLogin


class MsalHttpClient:
    """MSAL's ``http_client`` duck type over ``httpx.Client`` (maps a str body to ``content=``).

    Two MSAL habits are corrected here (seen against a non-Microsoft authority, docs/emulator.md
    "Sign-in"): MSAL passes the certificate ``client_assertion`` as ``bytes`` in the form dict
    (httpx would send the text ``b'eyJ…'``), so bytes values are decoded; and for username/password
    sign-in MSAL asks ``https://{host}/common/userrealm/…`` without the authority's port, so the
    port of an authority on a non-443 port is put back.
    """

    def __init__(self, client: httpx.Client, authority: str | None = None) -> None:
        self._client = client
        self._origin: httpx.URL | None = None
        if authority:
            url = httpx.URL(authority)
            if url.port not in (None, 443):
                self._origin = url

    def _url(self, url: str) -> str:
        if self._origin is None:
            return url
        target = httpx.URL(url)
        if target.scheme == "https" and target.host == self._origin.host and target.port is None:
            return str(target.copy_with(port=self._origin.port))
        return url

    @staticmethod
    def _kw(kw: dict[str, Any]) -> dict[str, Any]:
        return {"timeout": kw["timeout"]} if kw.get("timeout") is not None else {}

    def get(self, url: str, params: Any = None, headers: Any = None, **kw: Any) -> httpx.Response:
        return self._client.get(self._url(url), params=params, headers=_clean(headers), **self._kw(kw))

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kw: Any) -> httpx.Response:
        body: dict[str, Any] = {}
        if isinstance(data, (str, bytes)):
            body["content"] = data
        elif isinstance(data, Mapping):
            body["data"] = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in data.items()}
        elif data is not None:
            body["data"] = data
        return self._client.post(self._url(url), params=params, headers=_clean(headers), **body, **self._kw(kw))

    def close(self) -> None:
        self._client.close()


def _clean(headers: Mapping[str, Any] | None) -> dict[str, str] | None:
    return None if headers is None else {k: str(v) for k, v in headers.items() if v is not None}


# -- the provider -------------------------------------------------------------------------------------
class MsalTokenProvider:
    """Tokens from Microsoft Entra ID (or an emulated authority) through MSAL.

    Args:
        login: which flow and credentials.
        authority: ``https://login.microsoftonline.com/<tenant>`` or the emulator's ``https://host:port/<tenant>``.
        token_cache: e.g. :func:`crmsync_desktop.auth.token_cache.open_token_cache`; in memory if omitted.
        verify: ``True`` or an ``ssl.SSLContext`` trusting a custom CA.
        http_transport: an httpx (sync) transport instead of the network (tests).
    """

    def __init__(
        self,
        login: Login,
        authority: str,
        *,
        token_cache: msal.TokenCache | None = None,
        verify: bool | ssl.SSLContext = True,
        http_transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._login = login
        self._authority = authority.rstrip("/")
        self._cache = token_cache if token_cache is not None else msal.SerializableTokenCache()
        self._http = MsalHttpClient(
            httpx.Client(verify=verify, transport=http_transport, timeout=timeout_s), self._authority
        )
        self._app: msal.ClientApplication | None = None
        self._app_lock = threading.Lock()
        self._memo: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = asyncio.Lock()

    @property
    def is_confidential(self) -> bool:
        return isinstance(self._login, (ClientSecretLogin, CertificateLogin))

    async def get_token(self, scopes: Sequence[str], *, force_refresh: bool = False) -> str:
        key = tuple(sorted(scopes))
        async with self._lock:
            memo = self._memo.get(key)
            if memo and not force_refresh and memo[1] - EXPIRY_SKEW_S > time.monotonic():
                return memo[0]
            stale = memo[0] if memo else None
            self._memo.pop(key, None)
            result = await asyncio.to_thread(self._acquire_silently, list(scopes), force_refresh, stale)
            return self._remember(key, result)

    async def sign_in(self, scopes: Sequence[str]) -> None:
        """Run the interactive or device-code flow (public logins); a no-op for confidential ones."""
        key = tuple(sorted(scopes))
        async with self._lock:
            if isinstance(self._login, DeviceCodeLogin):
                flow = await asyncio.to_thread(self._call, lambda app: app.initiate_device_flow(scopes=list(scopes)))
                if "user_code" not in flow:
                    raise _error_from_result(flow, self._authority)
                self._login.on_prompt(
                    DeviceCodePrompt(
                        user_code=str(flow["user_code"]),
                        verification_uri=str(flow.get("verification_uri") or flow.get("verification_url") or ""),
                        message=str(flow.get("message", "")),
                        expires_in_s=int(flow.get("expires_in", 0)),
                    )
                )
                result = await asyncio.to_thread(self._call, lambda app: app.acquire_token_by_device_flow(flow))
            elif isinstance(self._login, InteractiveLogin):
                login = self._login
                result = await asyncio.to_thread(
                    self._call,
                    lambda app: app.acquire_token_interactive(
                        list(scopes), login_hint=login.login_hint, timeout=login.timeout_s, port=login.port
                    ),
                )
            else:
                result = await asyncio.to_thread(self._acquire_silently, list(scopes), False, None)
            self._remember(key, result)

    async def sign_out(self) -> None:
        """Forget every cached account and token of this login."""
        def _forget(app: msal.ClientApplication) -> None:
            for account in app.get_accounts():
                app.remove_account(account)
        async with self._lock:
            self._memo.clear()
            if not self.is_confidential:
                await asyncio.to_thread(self._call, _forget)

    def close(self) -> None:
        self._http.close()

    # -- worker-thread side ------------------------------------------------------------------------
    def _acquire_silently(self, scopes: list[str], force_refresh: bool, stale: str | None) -> Mapping[str, Any]:
        def run(app: msal.ClientApplication) -> Mapping[str, Any] | None:
            if isinstance(app, msal.ConfidentialClientApplication):
                if force_refresh:
                    self._drop_access_tokens(stale)
                return app.acquire_token_for_client(scopes=scopes)
            accounts = app.get_accounts()
            if not accounts:
                return None
            return app.acquire_token_silent(scopes, account=accounts[0], force_refresh=force_refresh)

        result = self._call(run)
        if result is None:
            raise errors.AuthRequiredError(
                "Sign in to the Dataverse organization to continue (the saved sign-in is missing or has expired).",
            )
        return result

    def _drop_access_tokens(self, stale: str | None) -> None:
        # acquire_token_for_client rejects force_refresh; removing the cached access token makes it
        # fetch a new one (the rejected token, or all of them when we do not know which).
        for item in list(self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            if stale is None or item.get("secret") == stale:
                self._cache.remove_at(item)

    def _call(self, fn: Callable[[msal.ClientApplication], Any]) -> Any:
        try:
            return fn(self._application())
        except errors.CrmSyncError:
            raise
        except httpx.HTTPError as exc:
            raise _network_error(exc, self._authority) from exc
        except json.JSONDecodeError as exc:
            raise errors.AuthError(
                f"The sign-in service at {self._authority} answered with something that is not JSON. "
                "A proxy or captive portal may be in the way; check the authority URL.",
            ) from exc
        except (ValueError, RuntimeError, msal.exceptions.MsalError) as exc:
            raise _msal_exception(exc, self._authority) from exc

    def _application(self) -> msal.ClientApplication:
        with self._app_lock:
            if self._app is None:
                self._app = self._build_application()
            return self._app

    def _build_application(self) -> msal.ClientApplication:
        host = httpx.URL(self._authority).host
        common: dict[str, Any] = {
            "authority": self._authority,
            "token_cache": self._cache,
            "http_client": self._http,
            # Unknown hosts (the emulator) would otherwise be checked against login.microsoftonline.com.
            "instance_discovery": host in MICROSOFT_AUTHORITY_HOSTS,
        }
        login = self._login
        if isinstance(login, ClientSecretLogin):
            return msal.ConfidentialClientApplication(login.client_id, client_credential=login.secret, **common)
        if isinstance(login, CertificateLogin):
            credential = {"private_key": login.private_key_pem, "thumbprint": login.thumbprint}
            if login.passphrase:
                credential["passphrase"] = login.passphrase
            return msal.ConfidentialClientApplication(login.client_id, client_credential=credential, **common)
        return msal.PublicClientApplication(login.client_id, **common)

    def _remember(self, key: tuple[str, ...], result: Mapping[str, Any]) -> str:
        token = result.get("access_token")
        if not token:
            raise _error_from_result(result, self._authority, self._login)
        try:
            lifetime = float(result.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._memo[key] = (str(token), time.monotonic() + lifetime)
        log.debug("token acquired from %s (%s)", self._authority, result.get("token_source", "identity_provider"))
        return str(token)


# -- translation of MSAL outcomes (the auth boundary) ------------------------------------------------
_REQUIRED = {"invalid_grant", "interaction_required", "consent_required", "login_required", "expired_token", "code_expired"}


def _error_from_result(result: Mapping[str, Any], authority: str, login: Login | None = None) -> errors.CrmSyncError:
    code = str(result.get("error") or "unknown_error")
    desc = str(result.get("error_description") or "").strip().splitlines()
    detail = f" ({desc[0]})" if desc else ""
    if code == "invalid_client" and isinstance(login, CertificateLogin):
        return errors.AuthError(
            f"The application (client) id or the certificate was rejected. Check that the certificate with "
            f"thumbprint {login.thumbprint} is uploaded to the app registration (Certificates & secrets ▸ "
            "Certificates), that it has not expired there, and that the client id is that app "
            f"registration's.{detail}",
            title="Application credentials rejected",
        )
    if code == "invalid_client":
        return errors.AuthError(
            "The application (client) id, client secret or certificate was rejected. Check them in the "
            f"connection settings; a client secret may have expired in Entra ID and need renewing.{detail}",
            title="Application credentials rejected",
        )
    if code == "unauthorized_client":
        return errors.AuthError(
            "The app registration is not allowed to use this sign-in method. For device code or interactive "
            f"sign-in enable \"Allow public client flows\" on the app registration.{detail}",
        )
    if code in ("invalid_scope", "invalid_resource"):
        return errors.AuthError(
            f"The organization URL is not a resource this app may access. Check the URL and the app's API "
            f"permissions (Dynamics CRM user_impersonation).{detail}",
        )
    if code in ("authorization_declined", "access_denied"):
        return errors.AuthError(f"Sign-in was declined.{detail}", title="Sign-in declined")
    if code in _REQUIRED:
        return errors.AuthRequiredError(f"Sign in again: the saved sign-in is no longer valid.{detail}")
    if code in ("temporarily_unavailable", "server_error"):
        return errors.NetworkError(
            f"The sign-in service at {authority} is temporarily unavailable; the sync retries later.{detail}",
            title="Sign-in service unavailable",
        )
    if code == "invalid_request":
        return errors.AuthError(
            f"The sign-in request was refused; check the tenant id and client id.{detail}",
        )
    return errors.AuthError(f"Sign-in failed with {code}.{detail}")


def _msal_exception(exc: BaseException, authority: str) -> errors.CrmSyncError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "https" in text and "segment" in text:
        return errors.InvalidUrlError(
            f"The sign-in authority {authority!r} must be an https URL ending with the tenant, e.g. "
            "https://login.microsoftonline.com/<tenant-id>.",
        )
    if "authority" in text.lower() or "tenant" in text.lower():
        return errors.AuthError(
            f"The sign-in authority {authority} could not be used: {text}. Check the tenant id.",
            title="Unknown tenant or authority",
        )
    if isinstance(exc, msal.oauth2cli.oauth2.BrowserInteractionTimeoutError):
        return errors.AuthRequiredError("The browser sign-in timed out before it was completed. Try again.")
    return errors.AuthError(f"Sign-in failed: {text}.")


def _network_error(exc: httpx.HTTPError, authority: str) -> errors.CrmSyncError:
    cur: BaseException | None = exc
    while cur is not None:
        if isinstance(cur, ssl.SSLError):
            return errors.TlsError(
                f"The secure connection to the sign-in service {authority} failed: its certificate is not "
                "trusted. If it uses its own certificate authority, configure the CA bundle.",
            )
        cur = cur.__cause__ or cur.__context__
    if isinstance(exc, httpx.TimeoutException):
        return errors.NetworkError(f"Timed out talking to the sign-in service {authority}; the sync retries later.")
    return errors.NetworkError(
        f"Cannot reach the sign-in service {authority} ({type(exc).__name__}). Check the network and the proxy.",
    )
