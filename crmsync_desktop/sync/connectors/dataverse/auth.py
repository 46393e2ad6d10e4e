"""Bearer tokens for the Dataverse Web API: scope and authority from the organization URL.

The scope is ``{org}/.default``. The authority is either configured
(``https://login.microsoftonline.com/{tenant}``) or discovered from the ``WWW-Authenticate: Bearer
authorization_uri=…`` challenge an unauthenticated request receives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from crmsync_desktop import errors
from crmsync_desktop.auth.msal_provider import TokenProvider
from crmsync_desktop.sync.connectors.http.errors import translate_transport_error

API_PATH = "/api/data/v9.2/"


def normalize_org_url(org_url: str) -> str:
    """``https://contoso.crm.dynamics.com`` — scheme and host (and port), no trailing slash or API path."""
    url = httpx.URL(org_url.strip())
    if url.scheme != "https" or not url.host:
        raise errors.InvalidUrlError(
            f"{org_url!r} is not an https organization URL. Copy it from Power Apps > Settings > "
            "Developer resources, e.g. https://contoso.crm.dynamics.com."
        )
    return str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/")


def scope_for(org_url: str) -> str:
    return f"{normalize_org_url(org_url)}/.default"


_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*"?([^",]+)"?')


def authority_from_challenge(header: str | None) -> str | None:
    """``https://host/tenant`` from ``Bearer authorization_uri=https://host/tenant/oauth2/authorize, …``."""
    if not header or not header.lower().startswith("bearer"):
        return None
    params = {k.lower(): v.strip() for k, v in _CHALLENGE_PARAM.findall(header)}
    uri = params.get("authorization_uri") or params.get("authorization")
    if not uri:
        return None
    url = httpx.URL(uri)
    segments = [s for s in url.path.split("/") if s]
    if url.scheme != "https" or not segments:
        return None
    return str(url.copy_with(path=f"/{segments[0]}", query=None, fragment=None))


async def discover_authority(
    org_url: str, *, transport: httpx.AsyncBaseTransport | None = None, verify: Any = True
) -> str:
    """Ask the organization which authority issues its tokens (an unauthenticated request's 401 challenge)."""
    org = normalize_org_url(org_url)
    async with httpx.AsyncClient(transport=transport, verify=verify, timeout=30.0) as client:
        try:
            response = await client.get(f"{org}{API_PATH}")
        except httpx.HTTPError as exc:
            raise translate_transport_error(exc, f"{org}{API_PATH}") from exc
    authority = authority_from_challenge(response.headers.get("WWW-Authenticate"))
    if authority is None:
        raise errors.AuthError(
            f"{org} did not say which sign-in authority it uses (no Bearer authorization_uri challenge). "
            "Enter the tenant id in the connection settings.",
            title="Cannot find the sign-in authority",
        )
    return authority


class BearerAuth:
    """Authorization headers from a :class:`TokenProvider` for one scope."""

    def __init__(self, provider: TokenProvider, scope: str) -> None:
        self._provider = provider
        self._scopes = [scope]

    async def headers(self) -> Mapping[str, str]:
        token = await self._provider.get_token(self._scopes)
        return {"Authorization": f"Bearer {token}"}

    async def refresh(self, challenge: str | None) -> bool:
        await self._provider.get_token(self._scopes, force_refresh=True)
        return True
