"""Builds the signed-in connectors of a connection profile: the only place that knows which product is where.

The server is Dataverse (MSAL sign-in with a client secret from the keyring, a certificate file whose
passphrase is in the keyring, a device code or the browser; the authority from the tenant or
discovered from the organization's own 401 challenge) or, experimentally, another Resco Cloud
organization; the client is always Resco Cloud (user and password from the keyring). The engine
receives two ``Connector`` values and never learns which is which product.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from crmsync_desktop.auth.certificates import load_client_certificate
from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.auth.msal_provider import (
    CertificateLogin,
    ClientSecretLogin,
    DeviceCodeLogin,
    DeviceCodePrompt,
    InteractiveLogin,
    Login,
    MsalTokenProvider,
)
from crmsync_desktop.auth.token_cache import open_token_cache
from crmsync_desktop.domain import AuthKind, ConnectionProfile, ServerKind
from crmsync_desktop.errors import AuthRequiredError, ConfigError, InvalidUrlError, SecretMissingError
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.dataverse.auth import discover_authority, normalize_org_url, scope_for
from crmsync_desktop.sync.connectors.dataverse.client import DataverseConnector, DataverseSettings
from crmsync_desktop.sync.connectors.resco.client import RescoConnector, RescoSettings
from crmsync_desktop.sync.engine import OrganizationPair

PUBLIC_AUTH = (AuthKind.DEVICE_CODE, AuthKind.INTERACTIVE)
log = logging.getLogger(__name__)


def parse_resco_url(url: str) -> tuple[str, str]:
    """``(server base URL, organization)`` from a Resco Cloud organization URL.

    Accepts the path style ``https://rescocrm.com/contoso`` and the domain style
    ``https://contoso.rescocrm.com``; anything else is refused with an example.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidUrlError(
            f"{url!r} is not a Resco Cloud organization URL. Use e.g. https://contoso.rescocrm.com "
            "or https://rescocrm.com/contoso."
        )
    base = f"{parts.scheme}://{parts.netloc}"
    segments = [s for s in parts.path.split("/") if s]
    if segments:
        return base, segments[0]
    labels = parts.hostname.split(".")
    if len(labels) >= 3:
        return base, labels[0]
    raise InvalidUrlError(
        f"{url!r} does not name an organization. Add it as a path (https://rescocrm.com/contoso) "
        "or use your organization's own address (https://contoso.rescocrm.com)."
    )


class ProfileConnectorFactory:
    """Opens both organizations of a profile with the secrets stored in the OS keyring.

    Args:
        credentials: the keyring.
        token_cache_path: encrypted MSAL cache (needed only by device-code and browser sign-in).
        ca_bundle: a PEM file of an extra CA to trust (the emulated organizations); None for the system store.
        on_device_code: shows the device code to the user (console dialog, CLI prompt).
    """

    def __init__(
        self,
        credentials: CredentialStore,
        *,
        token_cache_path: Path | None = None,
        ca_bundle: str | None = None,
        on_device_code: Callable[[DeviceCodePrompt], None] | None = None,
    ) -> None:
        self._credentials = credentials
        self._token_cache_path = token_cache_path
        self._ca_bundle = ca_bundle
        self._on_device_code = on_device_code
        self._providers: dict[tuple[str, str, bool, str], MsalTokenProvider] = {}
        self._logins: dict[tuple[str, str, bool, str], Login] = {}
        self._retired: list[MsalTokenProvider] = []  # replaced after a credential change; closed at exit

    def close(self) -> None:
        """Release the sign-in providers' HTTP connections (the composition root calls this at exit)."""
        for provider in [*self._providers.values(), *self._retired]:
            provider.close()
        self._providers.clear()
        self._logins.clear()
        self._retired.clear()

    async def open(self, profile: ConnectionProfile) -> OrganizationPair:
        client = await self._resco(profile.client_url, profile.client_user, profile.name, SecretKind.CLIENT_PASSWORD,
                                   profile.verify_tls)
        try:
            if profile.server_kind is ServerKind.RESCO:
                server = await self._resco(
                    profile.server_url, profile.server_user, profile.name, SecretKind.SERVER_PASSWORD,
                    profile.verify_tls,
                )
            else:
                server = await self._dataverse(profile)
        except BaseException:
            await client.aclose()
            raise
        return OrganizationPair(server=server, client=client)

    def _verify(self, verify_tls: bool = True) -> bool | ssl.SSLContext:
        if not verify_tls:
            return False
        return ssl.create_default_context(cafile=self._ca_bundle) if self._ca_bundle else True

    @staticmethod
    def _warn_unverified(profile: str, url: str) -> None:
        log.warning(
            "TLS certificate verification is OFF for %s (connection profile '%s' has verify_tls = false): "
            "the connection is encrypted but the server is not authenticated. Turn verification back on "
            "unless this is a test organization.", url, profile,
        )

    async def _resco(self, url: str, user: str, profile: str, kind: SecretKind, verify_tls: bool = True) -> Connector:
        if not url or not user:
            raise ConfigError(f"Profile '{profile}' has no Resco Cloud URL or user. Open Connection and enter them.")
        base, org = parse_resco_url(url)
        password = await self._credentials.aget_secret(profile, kind)
        if not verify_tls:
            self._warn_unverified(profile, base)
        return RescoConnector(RescoSettings(base_url=base, organization=org, user=user, ca_bundle=self._ca_bundle,
                                            verify_tls=verify_tls), password)

    async def _dataverse(self, profile: ConnectionProfile) -> Connector:
        org_url = normalize_org_url(profile.server_url)
        provider = await self.token_provider(profile)
        if not profile.verify_tls:
            self._warn_unverified(profile.name, org_url)
        return DataverseConnector(DataverseSettings(org_url=org_url, ca_bundle=self._ca_bundle,
                                                    verify_tls=profile.verify_tls), provider)

    async def ensure_signed_in(self, profile: ConnectionProfile) -> None:
        """For device-code and browser sign-in: use the cached sign-in, or run the flow now.

        Called for the user's own actions (Test connection, Connect, Sign in): scheduled runs never
        start an interactive flow; they report "sign-in needed" instead.
        """
        if profile.server_kind is not ServerKind.DATAVERSE or profile.server_auth_kind not in PUBLIC_AUTH:
            return
        provider = await self.token_provider(profile)
        scope = [scope_for(profile.server_url)]
        try:
            await provider.get_token(scope)
        except AuthRequiredError:
            await provider.sign_in(scope)

    async def token_provider(self, profile: ConnectionProfile) -> MsalTokenProvider:
        """The profile's MSAL provider (kept for the app's lifetime so its memory cache is reused).

        The sign-in credentials are read first (keyring, certificate file), so a missing secret or an
        unusable certificate is reported before any request. When they changed since the provider
        was made (a new client secret, another certificate file or passphrase, another sign-in
        method), a new provider replaces it: Test connection right after a fix uses the fix.
        """
        login = await self._login(profile)
        key = (profile.name, profile.server_url, profile.verify_tls, profile.tenant_id)
        if key in self._providers:
            if self._logins.get(key) == login:
                return self._providers[key]
            self._retired.append(self._providers.pop(key))  # a running sync may still hold it
        verify = self._verify(profile.verify_tls)
        if profile.tenant_id:
            authority = f"https://login.microsoftonline.com/{profile.tenant_id}"
        else:
            authority = await discover_authority(profile.server_url, verify=verify)
        cache = None
        if profile.server_auth_kind in PUBLIC_AUTH and self._token_cache_path is not None:
            cache = open_token_cache(self._token_cache_path)
        provider = MsalTokenProvider(login, authority, token_cache=cache, verify=verify)
        self._providers[key] = provider
        self._logins[key] = login
        return provider

    async def _login(self, profile: ConnectionProfile) -> Login:
        if not profile.client_id:
            raise ConfigError(
                f"Profile '{profile.name}' has no application (client) id. Enter the app registration's id."
            )
        kind = profile.server_auth_kind
        if kind is AuthKind.CLIENT_SECRET:
            secret = await self._credentials.aget_secret(profile.name, SecretKind.SERVER_CLIENT_SECRET)
            return ClientSecretLogin(profile.client_id, secret)
        if kind is AuthKind.CERTIFICATE:
            return await self._certificate_login(profile)
        if kind is AuthKind.DEVICE_CODE:
            return DeviceCodeLogin(profile.client_id, self._on_device_code or _no_prompt)
        if kind is AuthKind.INTERACTIVE:
            return InteractiveLogin(profile.client_id, login_hint=profile.server_user or None)
        raise ConfigError(
            f"Sign-in with {kind.value.replace('_', ' ')} is not available for Dynamics 365 in this version. "
            "Use a client secret, a certificate, a device code or the browser."
        )

    async def _certificate_login(self, profile: ConnectionProfile) -> CertificateLogin:
        """The certificate file of the profile, opened with the passphrase from the keyring (if one is stored)."""
        if not profile.certificate_path:
            raise ConfigError(
                f"Profile '{profile.name}' signs in with a certificate but has no certificate file. Open Connection "
                "and pick the file (PEM or PFX with the private key), or run 'crmsync profiles add "
                f"\"{profile.name}\" … --certificate PATH'."
            )
        try:
            passphrase: str | None = await self._credentials.aget_secret(
                profile.name, SecretKind.SERVER_CERTIFICATE_PASSWORD
            )
        except SecretMissingError:
            passphrase = None  # a file without a passphrase; if it has one, reading it says so
        certificate = await asyncio.to_thread(load_client_certificate, profile.certificate_path, passphrase)
        return CertificateLogin(profile.client_id, certificate.private_key_pem, certificate.info.thumbprint)


def _no_prompt(prompt: DeviceCodePrompt) -> None:
    raise ConfigError(f"Device-code sign-in needs a window to show the code: {prompt.message}")
