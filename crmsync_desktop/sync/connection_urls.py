"""Check and normalise the organization URLs a user types, before any request is made.

The console's Connection dialog calls these on every edit, so a typo gets a precise inline message
instead of a network error later. Both return the canonical form that is stored in the profile.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from crmsync_desktop.domain import ServerKind
from crmsync_desktop.errors import InvalidUrlError
from crmsync_desktop.sync.connectors.dataverse.auth import normalize_org_url
from crmsync_desktop.sync.organizations import parse_resco_url

__all__ = ["normalize_client_url", "normalize_server_url"]


def _require_https(url: str, example: str) -> None:
    text = url.strip()
    if not text:
        raise InvalidUrlError(f"Enter the organization's address, e.g. {example}.")
    parts = urlsplit(text if "://" in text else f"//{text}")
    if not parts.scheme:
        raise InvalidUrlError(f"The address needs https:// in front, e.g. {example}.")
    if parts.scheme != "https":
        raise InvalidUrlError(f"Only https addresses are accepted (not {parts.scheme}://), e.g. {example}.")
    host = parts.hostname or ""
    if not host or " " in text or (host != "localhost" and "." not in host):
        raise InvalidUrlError(f"{text!r} has no valid host name. Use e.g. {example}.")


def normalize_client_url(url: str) -> str:
    """A Resco Cloud organization URL, path style (``https://rescocrm.com/contoso``) or domain style."""
    _require_https(url, "https://contoso.rescocrm.com")
    base, org = parse_resco_url(url)
    path = [s for s in urlsplit(url.strip()).path.split("/") if s]
    return f"{base}/{org}" if path else base


def normalize_server_url(kind: ServerKind, url: str) -> str:
    """The server organization URL: Dataverse's ``https://contoso.crm.dynamics.com`` or a Resco Cloud one."""
    if kind is ServerKind.RESCO:
        return normalize_client_url(url)
    _require_https(url, "https://contoso.crm.dynamics.com")
    return normalize_org_url(url)
