"""Start the emulated services in-process: Entra ID + Dataverse + Resco Cloud, all HTTPS on loopback.

One object gives tests, demo mode and benchmarks everything a connector needs (URLs, tenant and
client ids, secrets, the CA file to trust) without knowing how the servers are wired. Credentials
are kept in ``data_dir/credentials.json`` and the token signing key in ``data_dir/identity`` so a
restarted emulator accepts the same secrets and the tokens it issued before.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from crmsync_desktop.emulator.auth_protocol import BearerAuthenticator
from crmsync_desktop.emulator.identity import (
    AppRegistration,
    Directory,
    IdentityProvider,
    SigningKey,
    Tenant,
    User,
    create_identity_app,
)
from crmsync_desktop.emulator.resco import FaultConfig, FaultInjector, RescoCloud
from crmsync_desktop.emulator.resco import create_app as create_resco_app
from crmsync_desktop.emulator.server import BackgroundServer, run_uvicorn
from crmsync_desktop.emulator.tls import EmulatorCertificates, ensure_certificates

__all__ = ["DataverseFactory", "EmulatorPair", "default_dataverse_factory", "run_uvicorn"]

# (dataverse url, authenticator, data dir, seed_records, seed) -> (ASGI app, org object or None)
DataverseFactory = Callable[[str, BearerAuthenticator, Path, int, int], tuple[Any, Any]]


def default_dataverse_factory(
    url: str, authenticator: BearerAuthenticator, data_dir: Path, seed_records: int, seed: int
) -> tuple[Any, Any]:
    """The Dataverse data service from ``crmsync_desktop.emulator.dataverse`` (+ ``seed.seed_sales_org``)."""
    import importlib

    def find(name: str, modules: tuple[str, ...]) -> Any:
        for module in modules:
            try:
                found = getattr(importlib.import_module(f"crmsync_desktop.emulator.{module}"), name, None)
            except ModuleNotFoundError:
                continue
            if found is not None:
                return found
        raise RuntimeError(f"crmsync_desktop.emulator.dataverse does not provide {name} yet")

    create_app = find("create_app", ("dataverse", "dataverse.app", "dataverse.service"))
    org_class = find("DataverseOrg", ("dataverse", "dataverse.org"))
    path = data_dir / "dataverse" / "org.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists()
    org = org_class.create(path, url=url) if fresh else org_class.open(path, url=url)
    if fresh and seed_records:
        seed_module = importlib.import_module("crmsync_desktop.emulator.seed")
        seed_module.seed_sales_org(org, records=seed_records, seed=seed)
    return create_app(org, authenticator), org


@dataclass
class _Credentials:
    """Emulator test credentials, stable per data folder (printing them is intended)."""

    tenant_id: str
    tenant_domain: str
    client_id: str
    client_secret: str
    public_client_id: str
    user_upn: str
    user_password: str
    user_object_id: str
    app_object_id: str
    resco_org: str
    resco_username: str
    resco_password: str

    @classmethod
    def load_or_create(cls, path: Path, resco_org: str) -> _Credentials:
        if path.exists():
            return cls(**json.loads(path.read_text()))
        creds = cls(
            tenant_id=str(uuid.uuid4()),
            tenant_domain="contoso.onmicrosoft.com",
            client_id=str(uuid.uuid4()),
            client_secret=secrets.token_urlsafe(24),
            public_client_id=str(uuid.uuid4()),
            user_upn="admin@contoso.onmicrosoft.com",
            user_password=secrets.token_urlsafe(12),
            user_object_id=str(uuid.uuid4()),
            app_object_id=str(uuid.uuid4()),
            resco_org=resco_org,
            resco_username="admin",
            resco_password=secrets.token_urlsafe(12),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(creds.__dict__, indent=2))
        path.chmod(0o600)
        return creds


@dataclass
class EmulatorPair:
    """``with EmulatorPair(tmp_path, seed_records=100) as emu:`` — see fields for what a client needs.

    ``with_dataverse=False`` skips identity + Dataverse (a Resco-only emulator); ``with_resco=False``
    skips Resco Cloud. Ports default to ephemeral (0).
    """

    data_dir: Path
    seed_records: int = 0
    seed: int = 0
    with_dataverse: bool = True
    with_resco: bool = True
    identity_port: int = 0
    dataverse_port: int = 0
    resco_port: int = 0
    resco_org: str = "contoso"
    resco_faults: FaultConfig | None = None
    access_token_lifetime: int = 3600
    dataverse_factory: DataverseFactory = default_dataverse_factory

    # filled by start()
    certificates: EmulatorCertificates | None = field(default=None, init=False)
    identity_url: str = field(default="", init=False)
    dataverse_url: str = field(default="", init=False)
    resco_url: str = field(default="", init=False)
    provider: IdentityProvider | None = field(default=None, init=False)
    dataverse_org: Any = field(default=None, init=False)
    resco_cloud: RescoCloud | None = field(default=None, init=False)
    resco_app: FaultInjector | None = field(default=None, init=False)
    _credentials: _Credentials | None = field(default=None, init=False, repr=False)
    _servers: list[BackgroundServer] = field(default_factory=list, init=False, repr=False)

    # ---- what clients need ---------------------------------------------------------------------

    @property
    def creds(self) -> _Credentials:
        if self._credentials is None:
            raise RuntimeError("EmulatorPair is not started")
        return self._credentials

    @property
    def ca_path(self) -> Path:
        assert self.certificates is not None, "EmulatorPair is not started"
        return self.certificates.ca_path

    tenant_id = property(lambda self: self.creds.tenant_id)
    client_id = property(lambda self: self.creds.client_id)
    client_secret = property(lambda self: self.creds.client_secret)
    public_client_id = property(lambda self: self.creds.public_client_id)
    user_upn = property(lambda self: self.creds.user_upn)
    user_password = property(lambda self: self.creds.user_password)
    resco_username = property(lambda self: self.creds.resco_username)
    resco_password = property(lambda self: self.creds.resco_password)

    @property
    def authority(self) -> str:
        return f"{self.identity_url}/{self.tenant_id}"

    @property
    def dataverse_scope(self) -> str:
        return f"{self.dataverse_url}/.default"

    @property
    def resco_odata_url(self) -> str:
        return f"{self.resco_url}/odata/v4/{self.resco_org}/"

    @property
    def resco_rest_url(self) -> str:
        return f"{self.resco_url}/rest/v1/data/{self.resco_org}"

    def summary(self) -> dict[str, Any]:
        """Everything worth printing (the CLI prints this)."""
        out: dict[str, Any] = {"ca_file": str(self.ca_path), "data_dir": str(self.data_dir)}
        if self.with_dataverse:
            out.update(
                {
                    "identity_url": self.identity_url,
                    "authority": self.authority,
                    "tenant_id": self.tenant_id,
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "public_client_id": self.public_client_id,
                    "user": self.user_upn,
                    "user_password": self.user_password,
                    "dataverse_url": self.dataverse_url,
                    "dataverse_scope": self.dataverse_scope,
                }
            )
        if self.with_resco:
            out.update(
                {
                    "resco_url": self.resco_url,
                    "resco_org": self.resco_org,
                    "resco_odata_url": self.resco_odata_url,
                    "resco_rest_url": self.resco_rest_url,
                    "resco_user": self.resco_username,
                    "resco_password": self.resco_password,
                }
            )
        return out

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> EmulatorPair:
        self.data_dir = Path(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._credentials = _Credentials.load_or_create(self.data_dir / "credentials.json", self.resco_org)
        self.resco_org = self._credentials.resco_org
        self.certificates = ensure_certificates(self.data_dir, [f"{self.resco_org}.localhost"])
        tls = {"certfile": self.certificates.cert_path, "keyfile": self.certificates.key_path}
        try:
            if self.with_dataverse:
                self._start_identity_and_dataverse(tls)
            if self.with_resco:
                self._start_resco(tls)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_identity_and_dataverse(self, tls: dict[str, Any]) -> None:
        creds = self.creds
        directory = Directory()
        tenant = directory.add_tenant(Tenant(creds.tenant_domain, tenant_id=creds.tenant_id))
        tenant.add_app(
            AppRegistration(
                "crmsync app user",
                client_id=creds.client_id,
                object_id=creds.app_object_id,
                secrets=[creds.client_secret],
            )
        )
        tenant.add_app(
            AppRegistration("crmsync desktop", client_id=creds.public_client_id, public_client=True)
        )
        tenant.add_user(
            User(creds.user_upn, creds.user_password, "Contoso Admin", object_id=creds.user_object_id)
        )
        key = SigningKey.load_or_create(self.data_dir / "identity" / "signing-key.pem")
        self.provider = IdentityProvider(directory, key, access_token_lifetime=self.access_token_lifetime)
        identity = BackgroundServer(create_identity_app(self.provider), port=self.identity_port, **tls)
        self.provider.base_url = self.identity_url = identity.url
        self._servers.append(identity.start())

        holder: dict[str, Any] = {}

        async def dataverse_asgi(scope: Any, receive: Any, send: Any) -> None:
            await holder["app"](scope, receive, send)

        dataverse = BackgroundServer(dataverse_asgi, port=self.dataverse_port, **tls)
        self.dataverse_url = dataverse.url
        directory.add_resource(self.dataverse_url)
        holder["app"], self.dataverse_org = self.dataverse_factory(
            self.dataverse_url, self.provider, self.data_dir, self.seed_records, self.seed
        )
        self._servers.append(dataverse.start())

    def _start_resco(self, tls: dict[str, Any]) -> None:
        creds = self.creds
        self.resco_cloud = RescoCloud(self.data_dir)
        if self.resco_org not in self.resco_cloud:
            self.resco_cloud.provision(
                self.resco_org,
                username=creds.resco_username,
                password=creds.resco_password,
                fullname="Resco Admin",
            )
        self.resco_app = create_resco_app(self.resco_cloud, self.resco_faults)
        server = BackgroundServer(self.resco_app, port=self.resco_port, **tls)
        self.resco_url = server.url
        self._servers.append(server.start())

    def stop(self) -> None:
        """Stop servers (newest first) and close databases. Close your HTTP clients first (TLS stop)."""
        while self._servers:
            self._servers.pop().stop(timeout=4.0)  # graceful 2 s, then forced 2 s
        if self.resco_cloud is not None:
            self.resco_cloud.close()
            self.resco_cloud = None
        close = getattr(self.dataverse_org, "close", None)
        if callable(close):
            close()
        self.dataverse_org = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
