"""Two in-memory organizations, a migrated store, an injected clock and an UploadService between them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crmsync_desktop.domain import AuthKind, ConnectionProfile, EntityConfig, ServerKind, TransactionStatus
from crmsync_desktop.store import Database, open_database, repos, upgrade
from crmsync_desktop.store.values import OfflineTransaction, RecordState
from crmsync_desktop.sync.connectors.types import Product, Record, RecordResult
from crmsync_desktop.sync.events import EventBus
from crmsync_desktop.sync.records import content_hash, project
from crmsync_desktop.sync.upload import UploadPlan, UploadService, UploadSettings
from tests.fakes.memory_org import MemoryOrg, sales_org

PROFILE = "Contoso"
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Pair:
    server: Any
    client: Any
    closed: bool = False

    async def aclose(self) -> None:
        self.closed = True


class Spy:
    """Wraps a MemoryOrg: records write calls in order; ``crash_after_upsert`` raises after a real upsert."""

    def __init__(self, org: MemoryOrg) -> None:
        self.org = org
        self.calls: list[tuple[str, str, Any]] = []
        self.crash_after_upsert = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.org, name)

    async def upsert_many(self, entity: str, records: Sequence[Record], *, if_match: Any = None) -> list[RecordResult]:
        self.calls.append(("upsert", entity, [dict(r) for r in records]))
        results = await self.org.upsert_many(entity, records, if_match=if_match)
        if self.crash_after_upsert:
            self.crash_after_upsert -= 1
            raise RuntimeError("the app crashed right after the server accepted the records")
        return results

    async def delete_many(self, entity: str, ids: Sequence[str]) -> list[RecordResult]:
        self.calls.append(("delete", entity, list(ids)))
        return await self.org.delete_many(entity, ids)

    async def assign(self, entity: str, record_id: str, owner: Any) -> None:
        self.calls.append(("assign", entity, (record_id, owner)))
        await self.org.assign(entity, record_id, owner)

    async def associate(self, relationship: str, id1: str, id2: str) -> None:
        self.calls.append(("associate", relationship, (id1, id2)))
        await self.org.associate(relationship, id1, id2)

    async def disassociate(self, relationship: str, id1: str, id2: str) -> None:
        self.calls.append(("disassociate", relationship, (id1, id2)))
        await self.org.disassociate(relationship, id1, id2)

    def upserted_ids(self, entity: str | None = None) -> list[str]:
        return [str(r[f"{e}id"]) for kind, e, records in self.calls
                if kind == "upsert" and entity in (None, e) for r in records]


@dataclass
class Env:
    db: Database
    clock: Clock
    server_org: MemoryOrg
    client: MemoryOrg
    server: Spy
    bus: EventBus
    events: list[Any] = field(default_factory=list)
    services: list[UploadService] = field(default_factory=list)

    def service(self, **kwargs: Any) -> UploadService:
        kwargs.setdefault("clock", self.clock)
        svc = UploadService(self.db, PROFILE, Pair(self.server, self.client), self.bus, **kwargs)
        self.services.append(svc)
        return svc

    async def plan(self, entity: str, svc: UploadService | None = None) -> UploadPlan:
        svc = svc or (self.services[0] if self.services else self.service())
        return next(p for p in await svc.plans() if p.entity == entity)

    async def synced(self, entity: str, record: Record) -> str:
        """What a download leaves behind: the record on both sides and its record_state."""
        rid = self.server_org.put(entity, record)
        plan = await self.plan(entity)
        server_record = project(self.server_org.get(entity, rid) or {}, plan.fields)
        self.client.put(entity, server_record)
        await repos.upsert_record_states(self.db, PROFILE, entity, [
            RecordState(rid, self.clock(), self.server_org.etag_of(entity, rid), None,
                        content_hash(server_record, plan.fields.fields))
        ])
        return rid

    async def transactions(self, status: TransactionStatus | None = None) -> list[OfflineTransaction]:
        out: list[OfflineTransaction] = []
        for s in [status] if status else list(TransactionStatus):
            page = await repos.list_transactions(self.db, PROFILE, s, limit=100_000, newest_first=False)
            out += page.items
        return sorted(out, key=lambda t: t.id)

    async def same_on_both_sides(self, entity: str) -> bool:
        plan = await self.plan(entity)
        fields = plan.fields.fields
        server = {r[plan.primary_id]: content_hash(project(r, plan.fields), fields)
                  for r in self.server_org.records(entity)}
        client = {r[plan.primary_id]: content_hash(project(r, plan.fields), fields) for r in self.client.records(entity)}
        return server == client

    def close(self) -> None:
        self.db.close()


async def make_env(tmp_path: Path, configs: Sequence[EntityConfig], *, client_tombstones: bool = False) -> Env:
    path = tmp_path / "data" / "crmsync.sqlite3"
    upgrade(path, tmp_path / "data" / "backups")
    db = open_database(path)
    profile = ConnectionProfile(name=PROFILE, server_kind=ServerKind.DATAVERSE, server_auth_kind=AuthKind.CLIENT_SECRET)

    await repos.save_profile(db, profile)
    await repos.save_entity_configs(db, PROFILE, list(configs))
    clock = Clock()
    server = sales_org(Product.DATAVERSE, now=clock)
    client = sales_org(Product.RESCO, now=clock, tombstones=client_tombstones)
    bus = EventBus()
    env = Env(db, clock, server, client, Spy(server), bus)
    bus.subscribe(env.events.append)
    return env


def settings(**kwargs: Any) -> UploadSettings:
    return UploadSettings(**kwargs)
