"""The seam between the emulated Entra ID (which issues tokens) and the emulated Dataverse (which checks them).

The Dataverse emulator only needs to turn an ``Authorization`` header into a principal, or learn
why it cannot; it does not care how tokens were issued. Tests of the data service use
``StaticBearerAuthenticator``; the running emulator plugs in the identity provider's validator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid bearer token speaks for."""

    object_id: str  # Entra object id (user or service principal)
    tenant_id: str
    app_id: str  # the client application (azp / appid claim)
    display_name: str
    upn: str | None = None  # None for an application (client credentials) identity


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired, or for another resource.

    ``error`` is the RFC 6750 error code for the ``WWW-Authenticate`` header (``invalid_token``
    or ``""`` when no token was sent at all).
    """

    def __init__(self, description: str, error: str = "invalid_token") -> None:
        super().__init__(description)
        self.description = description
        self.error = error


class BearerAuthenticator(Protocol):
    """Validates bearer tokens for one resource (an organization URL)."""

    @property
    def authorization_uri(self) -> str:
        """The tenant's authorize endpoint, advertised in ``WWW-Authenticate`` like real Dataverse."""
        ...

    def authenticate(self, token: str | None, resource: str) -> Principal:
        """Return the principal of ``token`` for ``resource`` or raise ``InvalidToken``."""
        ...


class StaticBearerAuthenticator:
    """A fixed token -> principal table, for tests of a data service without the identity provider."""

    def __init__(self, tokens: dict[str, Principal], authorization_uri: str) -> None:
        self._tokens = dict(tokens)
        self._authorization_uri = authorization_uri

    @property
    def authorization_uri(self) -> str:
        return self._authorization_uri

    def authenticate(self, token: str | None, resource: str) -> Principal:
        if not token:
            raise InvalidToken("Bearer token is required", error="")
        principal = self._tokens.get(token)
        if principal is None:
            raise InvalidToken("The token is not valid")
        return principal
