"""A running emulated Resco Cloud over HTTPS with organization ``contoso`` (user admin / Pa55word)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from crmsync_desktop.emulator.resco import FaultInjector, RescoCloud, RescoOrg, create_app
from crmsync_desktop.emulator.server import BackgroundServer
from crmsync_desktop.emulator.tls import ensure_certificates

ACCOUNT = {
    "name": "account",
    "display_name": "Account",
    "primary_name": "name",
    "fields": [
        {"name": "description", "type": "memo"},
        {"name": "numberofemployees", "type": "int"},
        {"name": "bignumber", "type": "bigint"},
        {"name": "ratio", "type": "decimal"},
        {"name": "score", "type": "double"},
        {"name": "revenue", "type": "money"},
        {"name": "donotcall", "type": "bool"},
        {"name": "lastcontacted", "type": "datetime"},
        {
            "name": "industrycode",
            "type": "picklist",
            "options": [{"value": 1, "label": "Retail"}, {"value": 2, "label": "Services"}],
        },
        {"name": "parentaccountid", "type": "lookup", "targets": ["account"]},
        {"name": "externalid", "type": "uniqueidentifier"},
    ],
}
CONTACT = {
    "name": "contact",
    "primary_name": "fullname",
    "fields": [
        {"name": "parentcustomerid", "type": "lookup", "targets": ["account", "contact"]},
        {"name": "emailaddress1", "type": "string", "max_length": 100},
    ],
}


@dataclass
class Resco:
    url: str
    cloud: RescoCloud
    app: FaultInjector
    ca_path: Path

    @property
    def org(self) -> RescoOrg:
        return self.cloud.get("contoso")

    def client(self, auth: tuple[str, str] | None = ("admin", "Pa55word"), **kw: object) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            auth=auth,
            verify=ssl.create_default_context(cafile=str(self.ca_path)),
            timeout=10.0,
            **kw,
        )  # type: ignore[arg-type]


@pytest.fixture
def resco(tmp_path: Path) -> Iterator[Resco]:
    certs = ensure_certificates(tmp_path)
    cloud = RescoCloud(tmp_path)
    cloud.provision("contoso", username="admin", password="Pa55word", fullname="Sync Admin")
    app = create_app(cloud)
    server = BackgroundServer(app, certfile=certs.cert_path, keyfile=certs.key_path).start()
    try:
        yield Resco(server.url, cloud, app, certs.ca_path)
    finally:
        server.stop()
        cloud.close()
