"""An engine over a real SQLite store and two in-memory organizations (server: Dataverse, client: Resco)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crmsync_desktop.domain import ConnectionProfile
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.connectors.types import Product
from crmsync_desktop.sync.engine import OrganizationPair, SyncEngine
from crmsync_desktop.sync.events import EventBus
from tests.fakes.memory_org import MemoryOrg, sales_org

PROFILE = "Contoso"


class PairFactory:
    """Hands the engine the same two organizations each time (closing them is a no-op for MemoryOrg)."""

    def __init__(self, server: MemoryOrg, client: MemoryOrg) -> None:
        self.server, self.client = server, client
        self.opened = 0

    async def open(self, profile: ConnectionProfile) -> OrganizationPair:
        self.opened += 1
        return OrganizationPair(server=self.server, client=self.client)


@dataclass
class Rig:
    db: Database
    server: MemoryOrg
    client: MemoryOrg
    engine: SyncEngine
    events: list[object]

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run(coro)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    db = open_store(tmp_path / "store.sqlite3", tmp_path / "backups")
    asyncio.run(repos.save_profile(db, ConnectionProfile(name=PROFILE, server_url="https://contoso.crm.dynamics.com",
                                                         client_url="https://contoso.rescocrm.com", client_user="a")))
    server = sales_org(Product.DATAVERSE, name="server")
    client = MemoryOrg(Product.RESCO, name="client")
    bus = EventBus()
    events: list[object] = []
    bus.subscribe(events.append)
    engine = SyncEngine(db, PairFactory(server, client), bus)
    try:
        yield Rig(db, server, client, engine, events)
    finally:
        db.close()
