"""Who exists in the emulated directory: tenants, app registrations, users and known resources.

Entra ID keeps this in a directory the emulator cannot see, so it is a plain in-memory
structure that the runner fills at start-up. Ids are GUIDs like Entra's; callers may fix them
so test credentials stay stable across runs.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["AppRegistration", "Directory", "Tenant", "User", "certificate_thumbprints"]


def _new_id() -> str:
    return str(uuid.uuid4())


def certificate_thumbprints(cert_pem: bytes | str) -> tuple[str, str]:
    """(SHA-1 hex, SHA-256 hex) of a PEM certificate, upper case like the Azure portal shows them."""
    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    der = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper(), hashlib.sha256(der).hexdigest().upper()


@dataclass
class User:
    upn: str
    password: str
    display_name: str
    object_id: str = field(default_factory=_new_id)


@dataclass
class AppRegistration:
    """An app registration plus its service principal (the emulator does not separate them)."""

    display_name: str
    client_id: str = field(default_factory=_new_id)
    object_id: str = field(default_factory=_new_id)  # service principal object id (the ``oid`` of app tokens)
    secrets: list[str] = field(default_factory=list)
    certificates: list[bytes] = field(default_factory=list)  # PEM public certificates
    public_client: bool = False  # "Allow public client flows": device code and ROPC without a secret
    redirect_uris: list[str] = field(default_factory=lambda: ["http://localhost"])

    def certificate_for(self, sha1_hex: str | None, sha256_hex: str | None) -> bytes | None:
        for pem in self.certificates:
            sha1, sha256 = certificate_thumbprints(pem)
            if (sha1_hex and sha1_hex.upper() == sha1) or (sha256_hex and sha256_hex.upper() == sha256):
                return pem
        return None


@dataclass
class Tenant:
    domain: str  # e.g. contoso.onmicrosoft.com
    tenant_id: str = field(default_factory=_new_id)
    apps: dict[str, AppRegistration] = field(default_factory=dict)  # by client id
    users: dict[str, User] = field(default_factory=dict)  # by lower-case UPN

    def add_app(self, app: AppRegistration) -> AppRegistration:
        self.apps[app.client_id] = app
        return app

    def add_user(self, user: User) -> User:
        self.users[user.upn.lower()] = user
        return user

    def user_by_id(self, object_id: str) -> User | None:
        return next((u for u in self.users.values() if u.object_id == object_id), None)


@dataclass
class Directory:
    """All tenants plus the resources (organization URLs) tokens may be issued for."""

    tenants: dict[str, Tenant] = field(default_factory=dict)  # by tenant id
    resources: set[str] = field(default_factory=set)  # normalized: lower case, no trailing slash

    def add_tenant(self, tenant: Tenant) -> Tenant:
        self.tenants[tenant.tenant_id] = tenant
        return tenant

    def add_resource(self, url: str) -> None:
        self.resources.add(normalize_resource(url))

    def find_tenant(self, name: str) -> Tenant | None:
        """By id or verified domain; ``common``/``organizations`` mean the first tenant (see docs/emulator.md)."""
        key = name.lower()
        if key in ("common", "organizations") and self.tenants:
            return next(iter(self.tenants.values()))
        for tenant in self.tenants.values():
            if key in (tenant.tenant_id.lower(), tenant.domain.lower()):
                return tenant
        return None


def normalize_resource(url: str) -> str:
    return url.strip().rstrip("/").lower()
