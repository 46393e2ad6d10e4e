"""End-to-end rig: the real engine (SQLite store, keyring, MSAL, both connectors) against an
:class:`EmulatorPair` (Entra ID + Dataverse + Resco Cloud) over loopback HTTPS.

Every test gets its own seeded pair (a few hundred milliseconds for thousands of records), so tests
can change data, metadata and faults freely. Tests drive the engine with ``asyncio.run`` on one
coroutine; ``Rig.session()`` opens the engine and a pair of connectors for editing the two
organizations "as another user" (server edits go through the Dataverse Web API, client edits
through Resco's data service). ``WriteCounter`` counts client writes per record id on the Resco
emulator, in-process; the Dataverse emulator counts requests itself (``org.request_counts``).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.domain import AuthKind, ConnectionProfile, EntityConfig
from crmsync_desktop.emulator.runner import EmulatorPair
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.connectors.types import Record
from crmsync_desktop.sync.engine import OrganizationPair, SyncEngine
from crmsync_desktop.sync.organizations import ProfileConnectorFactory
from crmsync_desktop.sync.verify import VerifyReport

PROFILE = "E2E"
PRIMARY = {"account": "accountid", "contact": "contactid", "lead": "leadid", "opportunity": "opportunityid",
           "competitor": "competitorid", "task": "activityid", "phonecall": "activityid",
           "systemuser": "systemuserid", "team": "teamid", "businessunit": "businessunitid"}


class WriteCounter:
    """Counts client writes per (entity, record id) on the Resco emulator (UpdateMultiple, OData PATCH/POST).

    ``on_write(n)`` is called after each completed write request with the running request count;
    the kill test uses it to SIGKILL the CLI right after the server accepted its n-th write.
    """

    def __init__(self, pair: EmulatorPair) -> None:
        assert pair.resco_cloud is not None
        self.org = pair.resco_cloud.get(pair.resco_org)
        self.per_record: Counter[tuple[str, str]] = Counter()
        self.requests = 0
        self.on_write: Callable[[int], None] | None = None
        self._lock = threading.Lock()
        write_many, update, create = self.org.write_many, self.org.update, self.org.create

        def counted_write_many(entity: str, items: Any, user_id: str, *, create: bool) -> Any:
            items = list(items)
            out = write_many(entity, items, user_id, create=create)
            self._count(entity, [str(rid).lower() for (rid, _), (status, _) in zip(items, out, strict=True)
                                 if status in (200, 201)])
            return out

        def counted_update(entity: str, record_id: str, *args: Any, **kwargs: Any) -> Any:
            out = update(entity, record_id, *args, **kwargs)
            self._count(entity, [str(record_id).lower()])
            return out

        def counted_create(entity: str, *args: Any, **kwargs: Any) -> Any:
            out = create(entity, *args, **kwargs)
            self._count(entity, [str(out["id"]).lower()])
            return out

        self.org.write_many = counted_write_many  # type: ignore[method-assign]
        self.org.update = counted_update  # type: ignore[method-assign]
        self.org.create = counted_create  # type: ignore[method-assign]

    def _count(self, entity: str, ids: Sequence[str]) -> None:
        with self._lock:
            self.requests += 1
            for rid in ids:
                self.per_record[(entity, rid)] += 1
            n = self.requests
        if self.on_write is not None:
            self.on_write(n)

    def reset(self) -> None:
        with self._lock:
            self.per_record.clear()
            self.requests = 0

    def total(self, entities: Sequence[str] | None = None) -> int:
        return sum(v for (e, _), v in self.per_record.items() if entities is None or e in entities)


def dataverse_requests(pair: EmulatorPair) -> dict[str, int]:
    return dict(pair.dataverse_org.request_counts_snapshot()["counts"])


def reset_dataverse_requests(pair: EmulatorPair) -> None:
    pair.dataverse_org.reset_request_counts()


# -- server metadata edits the Web API does not offer (delete a column, relabel it) ----------------

def server_remove_attribute(pair: EmulatorPair, entity: str, attribute: str) -> None:
    """Delete a column from the emulated Dataverse metadata (as an admin would in the maker portal)."""
    org = pair.dataverse_org
    with org.lock:
        org.conn.execute("DELETE FROM _md_attribute WHERE entity = ? AND logicalname = ?", (entity, attribute))
        org.md.load()


def server_relabel_attribute(pair: EmulatorPair, entity: str, attribute: str, label: str) -> None:
    org = pair.dataverse_org
    with org.lock:
        row = org.conn.execute("SELECT metadataid, json FROM _md_attribute WHERE entity = ? AND logicalname = ?",
                               (entity, attribute)).fetchone()
        meta = json.loads(row[1])
        for key in ("DisplayName",):
            value = meta[key]
            for loc in value.get("LocalizedLabels") or []:
                loc["Label"] = label
            if value.get("UserLocalizedLabel"):
                value["UserLocalizedLabel"]["Label"] = label
        org.conn.execute("UPDATE _md_attribute SET json = ? WHERE metadataid = ?", (json.dumps(meta), row[0]))
        org.md.load()


def server_set_change_tracking(pair: EmulatorPair, entity: str, enabled: bool) -> None:
    """Switch a table's change tracking (before Connect: the engine reads it from the metadata)."""
    org = pair.dataverse_org
    with org.lock:
        raw = org.conn.execute("SELECT json FROM _md_entity WHERE logicalname = ?", (entity,)).fetchone()[0]
        meta = json.loads(raw)
        meta["ChangeTrackingEnabled"] = enabled
        org.conn.execute("UPDATE _md_entity SET json = ? WHERE logicalname = ?", (json.dumps(meta), entity))
        org.md.load()


# -- the rig ---------------------------------------------------------------------------------------

@dataclass
class Session:
    """An open engine plus connectors to both organizations for making edits as other users would."""

    rig: Rig
    engine: SyncEngine
    factory: ProfileConnectorFactory
    orgs: OrganizationPair

    @property
    def server(self) -> Any:
        return self.orgs.server

    @property
    def client(self) -> Any:
        return self.orgs.client

    async def server_web_api(self, method: str, path: str, body: Any = None) -> Any:
        """A raw Dataverse Web API call as the app user (e.g. a metadata POST the connector never makes)."""
        import ssl

        import httpx

        provider = await self.factory.token_provider(self.rig.profile())
        token = await provider.get_token([f"{self.rig.pair.dataverse_url}/.default"])
        verify = ssl.create_default_context(cafile=str(self.rig.pair.ca_path))
        async with httpx.AsyncClient(verify=verify, timeout=30.0) as http:
            response = await http.request(method, f"{self.rig.pair.dataverse_url}/api/data/v9.2/{path}", json=body,
                                          headers={"Authorization": f"Bearer {token}", "OData-Version": "4.0"})
        assert response.status_code < 300, response.text
        return response

    async def reopen(self) -> None:
        """Fresh connectors (they cache metadata; call after a schema change)."""
        await self.orgs.aclose()
        self.orgs = await self.factory.open(self.rig.profile())

    async def connect(self, entities: Sequence[str]) -> Any:
        result, report = await self.engine.connect(PROFILE, list(entities))
        return result, report

    async def configs(self) -> dict[str, EntityConfig]:
        return {c.logical_name: c for c in await repos.list_entity_configs(self.rig.db, PROFILE)}

    async def configure(self, entity: str, **changes: Any) -> list[str]:
        cfg = (await self.configs())[entity]
        return await self.engine.save_entity_configs(PROFILE, [replace(cfg, **changes)])

    async def enable(self, *entities: str, **changes: Any) -> None:
        configs = await self.configs()
        await self.engine.save_entity_configs(
            PROFILE, [replace(configs[e], enabled=True, **changes) for e in entities])

    async def verify(self) -> VerifyReport:
        result, report = await self.engine.verify(PROFILE)
        assert report is not None, result
        return report

    async def ids(self, side: str, entity: str, fetch_filter: str = "") -> list[str]:
        conn = self.server if side == "server" else self.client
        out: list[str] = []
        async for page in conn.read_ids(entity, fetch_filter=fetch_filter):
            out.extend(i.lower() for i in page)
        return out

    async def records(self, side: str, entity: str, fields: Sequence[str], ids: Sequence[str] | None = None,
                      ) -> dict[str, Record]:
        from crmsync_desktop.sync.download import with_ids
        from crmsync_desktop.sync.filters import FetchFilter

        conn = self.server if side == "server" else self.client
        pid = PRIMARY[entity] if side == "server" else "id"
        out: dict[str, Record] = {}
        chunks = [list(ids[i:i + 400]) for i in range(0, len(ids), 400)] if ids is not None else [None]
        for chunk in chunks:
            xml = with_ids(FetchFilter(entity=entity), entity, pid, chunk) if chunk is not None else ""
            async for page in conn.read_pages(entity, list(fields), fetch_filter=xml):
                for r in page.records:
                    out[str(r[pid]).lower()] = r
        return out


class TunedFactory(ProfileConnectorFactory):
    """The profile's connectors, with Dataverse read pages of ``page_size`` rows and/or fast retries
    (so a server that is offline is reported in a second, not after the default back-off)."""

    def __init__(self, *args: Any, page_size: int | None = None, fast_retries: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.page_size = page_size
        self.fast_retries = fast_retries

    async def _dataverse(self, profile: ConnectionProfile) -> Any:
        import random

        from crmsync_desktop.sync.connectors.dataverse.auth import normalize_org_url
        from crmsync_desktop.sync.connectors.dataverse.client import DataverseConnector, DataverseSettings
        from crmsync_desktop.sync.connectors.http.retry import RetryPolicy

        provider = await self.token_provider(profile)
        extra = {"page_size": self.page_size} if self.page_size else {}
        settings = DataverseSettings(org_url=normalize_org_url(profile.server_url), ca_bundle=self._ca_bundle, **extra)
        policy = (RetryPolicy(max_attempts=2, base_delay_s=0.05, max_delay_s=0.1, rng=random.Random(1))
                  if self.fast_retries else None)
        return DataverseConnector(settings, provider, **({"policy": policy} if policy else {}))


@dataclass
class Rig:
    pair: EmulatorPair
    db: Database
    credentials: CredentialStore
    tmp: Path

    def profile(self) -> ConnectionProfile:
        p = self.pair
        return ConnectionProfile(
            name=PROFILE, server_url=p.dataverse_url, server_auth_kind=AuthKind.CLIENT_SECRET, tenant_id="",
            client_id=p.client_id, client_url=f"{p.resco_url}/{p.resco_org}", client_user=p.resco_username)

    @asynccontextmanager
    async def session(self, *, page_size: int | None = None, fast_retries: bool = False) -> AsyncIterator[Session]:
        """The engine (and connectors for edits). ``page_size``: Dataverse read pages of that many rows
        (smaller than the 5,000 default, so request counts show how much was read); ``fast_retries``:
        the Dataverse connector gives up after 2 quick attempts (offline tests)."""
        factory = TunedFactory(self.credentials, ca_bundle=str(self.pair.ca_path), page_size=page_size,
                               fast_retries=fast_retries)
        engine = SyncEngine(self.db, factory, credentials=self.credentials)
        await engine.save_connection(self.profile(), {
            SecretKind.SERVER_CLIENT_SECRET: self.pair.client_secret,
            SecretKind.CLIENT_PASSWORD: self.pair.resco_password,
        })
        session = Session(self, engine, factory, await factory.open(self.profile()))
        try:
            yield session
        finally:
            await engine.aclose()
            await session.orgs.aclose()
            for provider in factory._providers.values():
                provider.close()


@contextmanager
def make_rig(tmp: Path, *, seed_records: int, seed: int = 1) -> Iterator[Rig]:
    with EmulatorPair(tmp / "emulator", seed_records=seed_records, seed=seed) as pair:
        db = open_store(tmp / "store.sqlite3", tmp / "backups")
        try:
            yield Rig(pair, db, CredentialStore(), tmp)
        finally:
            db.close()


def diff_summary(report: VerifyReport) -> list[tuple[Any, ...]]:
    """The entities Verify found out of sync, with their counts and examples (for assertion messages)."""
    return [(e.entity, e.server_count, e.client_count, e.missing_on_client, e.extra_on_client, e.different,
             e.examples[:3]) for e in report.entities if not e.in_sync]


def lowered(ids: Mapping[str, Any] | Sequence[str]) -> set[str]:
    return {str(i).lower() for i in ids}
