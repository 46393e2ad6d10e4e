"""A running emulated Entra ID over HTTPS with one tenant, two apps and one user."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from crmsync_desktop.emulator.identity import (
    AppRegistration,
    Directory,
    IdentityProvider,
    Tenant,
    User,
    create_identity_app,
)
from crmsync_desktop.emulator.server import BackgroundServer
from crmsync_desktop.emulator.tls import ensure_certificates
from tests.emulator.identity.msal_http import MsalHttpxClient

RESOURCE = "https://contoso.crm4.dynamics.com"


@dataclass
class ClientCert:
    private_key_pem: str
    cert_pem: str


def make_client_cert() -> ClientCert:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crmsync-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return ClientCert(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        cert.public_bytes(serialization.Encoding.PEM).decode(),
    )


@dataclass
class Idp:
    provider: IdentityProvider
    url: str
    tenant: Tenant
    confidential: AppRegistration
    public: AppRegistration
    user: User
    cert: ClientCert
    ca_path: Path

    @property
    def authority(self) -> str:
        return f"{self.url}/{self.tenant.tenant_id}"

    def http(self) -> MsalHttpxClient:
        import ssl

        return MsalHttpxClient(ssl.create_default_context(cafile=str(self.ca_path)), self.url)


@pytest.fixture(scope="session")
def client_cert() -> ClientCert:
    return make_client_cert()


@pytest.fixture
def idp(tmp_path: Path, client_cert: ClientCert) -> Iterator[Idp]:
    certs = ensure_certificates(tmp_path)
    directory = Directory()
    tenant = directory.add_tenant(Tenant("contoso.onmicrosoft.com"))
    confidential = tenant.add_app(
        AppRegistration(
            "crmsync app user", secrets=["s3cret-value"], certificates=[client_cert.cert_pem.encode()]
        )
    )
    public = tenant.add_app(AppRegistration("crmsync desktop", public_client=True))
    user = tenant.add_user(User("adele@contoso.onmicrosoft.com", "P@ssw0rd!", "Adele Vance"))
    directory.add_resource(RESOURCE)
    provider = IdentityProvider(directory)
    server = BackgroundServer(create_identity_app(provider), certfile=certs.cert_path, keyfile=certs.key_path)
    provider.base_url = server.url
    server.start()
    try:
        yield Idp(provider, server.url, tenant, confidential, public, user, client_cert, certs.ca_path)
    finally:
        server.stop()
