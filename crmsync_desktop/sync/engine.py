"""The engine facade: the one object the console, the tray and the CLI call.

It owns one run per profile at a time (a second request while one runs waits for the lock rather
than running twice), turns entity configuration and replicated metadata into per-entity plans,
drives metadata sync, download, deletions and verify, records every run with its counts and log
lines, and publishes plain events. It never imports Qt and never knows which product is behind a
connector.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from datetime import UTC, datetime, timedelta
from typing import Any, AsyncIterator, Protocol, TypeVar

from crmsync_desktop.domain import (
    ConnectionProfile,
    ConnectionState,
    DeletionStrategy,
    EntityConfig,
    RunStatus,
    RunTrigger,
    TransactionStatus,
)
from crmsync_desktop.errors import (
    AuthRequiredError,
    CrmSyncError,
    FilterError,
    NetworkError,
    ProfileNotFoundError,
    ThrottledError,
)
from crmsync_desktop.store import repos
from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.values import JobRun, RunLogLine
from crmsync_desktop.sync import metadata as metadata_sync
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import EntityMeta, Identity, RelationshipKind
from crmsync_desktop.sync.deletions import TRACKING_ENTITY, apply_tracking, sweep
from crmsync_desktop.sync.download import EntityDownloader, EntityPlan
from crmsync_desktop.sync.events import EngineState, EventBus, StateChanged
from crmsync_desktop.sync.metadata.schema import ALWAYS_SYNCED
from crmsync_desktop.sync.owner_mapping import (
    USER_ENTITY,
    UserMapping,
    UserMatch,
    read_user_mapping,
    save_user_mapping,
)
from crmsync_desktop.sync.filters import (
    EvaluationContext,
    FetchFilter,
    can_evaluate_locally,
    parse_filter,
    render_filter,
    validate_filter,
)
from crmsync_desktop.sync.records import plan_fields
from crmsync_desktop.sync.process_lock import ProcessLock
from crmsync_desktop.sync.run_recorder import RunRecorder
from crmsync_desktop.sync.tracking_config import (
    TrackingChanges,
    TrackingOverview,
    TrackingResult,
    apply_tracking_changes,
    read_overview,
)
from crmsync_desktop.sync.upload.plans import CLIENT_TOKEN_PREFIX, UploadPlan, build_upload_plans
from crmsync_desktop.sync.upload.service import OrganizationPairLike, Planner, UploadService, UploadSettings
from crmsync_desktop.sync.verify import VerifyReport, verify

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class OrganizationPair:
    """The two signed-in connectors of a profile."""

    server: Connector
    client: Connector

    async def aclose(self) -> None:
        await asyncio.gather(self.server.aclose(), self.client.aclose(), return_exceptions=True)


class ConnectorFactory(Protocol):
    """Builds the signed-in connectors of a profile (the composition root knows keyring and MSAL)."""

    async def open(self, profile: ConnectionProfile) -> OrganizationPair: ...


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: int
    status: RunStatus
    summary: str
    counts: dict[str, dict[str, int]]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FilterPreview:
    entity: str
    count: int
    count_is_lower_bound: bool
    sample: tuple[tuple[str, str], ...]  # (id, primary name)


@dataclass(frozen=True, slots=True)
class EntityStatus:
    """One row of the entity grid: configuration plus what the last syncs did."""

    config: EntityConfig
    display_name: str
    change_detection: str  # "change tracking" or "watermark"
    resolved_deletion: DeletionStrategy
    last_sync_at: datetime | None
    records_held: int
    waiting_retries: int


def resolve_deletion(config: EntityConfig, *, change_tracking: bool, tracking_available: bool) -> DeletionStrategy:
    """What removes deleted/reassigned records for one entity (shown to the admin as chosen).

    Sync Deletion off: nothing is removed (fastest). On: the admin's explicit strategy, or, when
    left on "off", the cheapest available: the table's own change tracking, Resco's tracking
    records, then the id sweep.
    """
    if not config.sync_deletion:
        return DeletionStrategy.OFF
    if config.deletion_strategy is not DeletionStrategy.OFF:
        return config.deletion_strategy
    if change_tracking:
        return DeletionStrategy.CHANGE_TRACKING
    if tracking_available:
        return DeletionStrategy.TRACKING
    return DeletionStrategy.SWEEP


class SyncEngine:
    """Connect, Update Server, Sync All, incremental sync, Verify, entity configuration and runs."""

    def __init__(
        self,
        db: Database,
        connectors: ConnectorFactory,
        bus: EventBus | None = None,
        credentials: CredentialStore | None = None,
        lock_dir: Path | None = None,
        upload_settings: UploadSettings | None = None,
    ) -> None:
        self._upload_settings = upload_settings
        self._lock_dir = lock_dir
        self._owners: dict[str, tuple[ProcessLock, int]] = {}
        self._db = db
        self._connectors = connectors
        self._credentials = credentials or CredentialStore()
        self.bus = bus or EventBus()
        self._locks: dict[str, asyncio.Lock] = {}
        self._uploads: dict[str, UploadService] = {}
        self._auto_uploads = False  # set by start_uploads: newly connected profiles upload too
        self._upload_tasks: dict[str, asyncio.Task[None]] = {}

    # -- plumbing -----------------------------------------------------------------------

    def _lock(self, profile: str) -> asyncio.Lock:
        return self._locks.setdefault(profile, asyncio.Lock())

    def is_running(self, profile: str) -> bool:
        return self._lock(profile).locked()

    def _take_owner(self, profile: str) -> None:
        """Hold the profile's cross-process lock (counted: uploads and runs share it)."""
        if self._lock_dir is None:
            return
        lock, count = self._owners.get(profile, (None, 0))
        if lock is None:
            lock = ProcessLock(self._lock_dir, profile)
            lock.acquire()  # ProfileBusyError when another crmsync process works on this profile
        self._owners[profile] = (lock, count + 1)

    def _drop_owner(self, profile: str) -> None:
        if profile not in self._owners:
            return
        lock, count = self._owners[profile]
        if count <= 1:
            lock.release()
            del self._owners[profile]
        else:
            self._owners[profile] = (lock, count - 1)

    @asynccontextmanager
    async def _session(self, profile_name: str) -> AsyncIterator[tuple[ConnectionProfile, OrganizationPair]]:
        profile = await repos.get_profile(self._db, profile_name)
        pair = await self._connectors.open(profile)
        try:
            yield profile, pair
        finally:
            await pair.aclose()

    async def _run(
        self,
        profile: str,
        kind: str,
        trigger: RunTrigger,
        body: Callable[[RunRecorder, ConnectionProfile, OrganizationPair], Awaitable[T]],
    ) -> tuple[RunResult, T | None]:
        async with self._lock(profile):
            self._take_owner(profile)
            try:
                return await self._run_owned(profile, kind, trigger, body)
            finally:
                self._drop_owner(profile)

    async def _run_owned(
        self,
        profile: str,
        kind: str,
        trigger: RunTrigger,
        body: Callable[[RunRecorder, ConnectionProfile, OrganizationPair], Awaitable[T]],
    ) -> tuple[RunResult, T | None]:
        """One run under the profile's locks: recorded, with its state events; errors become a failed run."""
        recorder = await RunRecorder(self._db, self.bus, profile, kind).start(trigger)
        self.bus.publish(StateChanged(profile, EngineState.SYNCING, kind))
        value: T | None = None
        try:
            async with self._session(profile) as (p, pair):
                value = await body(recorder, p, pair)
        except asyncio.CancelledError:
            recorder.warning("Cancelled")
            await asyncio.shield(recorder.finish(RunStatus.CANCELLED, "cancelled"))
            self.bus.publish(StateChanged(profile, EngineState.IDLE, "cancelled"))
            raise
        except CrmSyncError as exc:
            recorder.error(f"{exc.title}: {exc.message}")
            await recorder.finish(RunStatus.FAILED, exc.message)
            self.bus.publish(StateChanged(profile, _state_for(exc), exc.message, _throttled_until(exc)))
            result = RunResult(recorder.run_id, RunStatus.FAILED, recorder.summary(),
                               _plain(recorder), exc.message)
            return result, None
        except Exception as exc:
            log.exception("Unexpected error during %s of %s", kind, profile)
            recorder.error(f"Unexpected error: {type(exc).__name__}: {exc}")
            await recorder.finish(RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
            self.bus.publish(StateChanged(profile, EngineState.ERROR, str(exc)))
            raise
        status = RunStatus.SUCCEEDED if recorder.errors == 0 else RunStatus.FAILED
        error = None if status is RunStatus.SUCCEEDED else f"{recorder.errors} error(s); see the run log"
        await recorder.finish(status, error)
        self.bus.publish(StateChanged(profile, EngineState.IDLE if error is None else EngineState.ERROR,
                                      error or ""))
        return RunResult(recorder.run_id, status, recorder.summary(), _plain(recorder), error), value

    # -- uploads (client -> server) ---------------------------------------------------------

    def uploads(self, profile: str) -> UploadService:
        """The profile's offline-transaction queue and upload loop (created on first use)."""
        svc = self._uploads.get(profile)
        if svc is None:
            svc = UploadService(
                self._db, profile, self._connectors, self.bus, exclusive=self._lock(profile),
                planner=self._upload_planner(profile), settings=self._upload_settings,
            )
            self._uploads[profile] = svc
        return svc

    def _upload_planner(self, profile: str) -> Planner:
        async def planner(pair: OrganizationPairLike) -> Sequence[UploadPlan]:
            schema = metadata_sync.snapshot_to_schema(await repos.load_metadata_snapshot(self._db, profile))
            enabled = [c.logical_name for c in await repos.list_entity_configs(self._db, profile) if c.enabled]
            order = list(metadata_sync.sync_order(schema, enabled))
            return await build_upload_plans(
                self._db, profile, pair.server, pair.client,
                server_entities={e.logical_name: e for e in schema.entities}, order=order,
            )

        return planner

    async def start_uploads(self) -> list[str]:
        """Run the upload loop of every connected profile in the background; returns their names."""
        self._auto_uploads = True
        started = []
        for p in await repos.list_profiles(self._db):
            if p.state is ConnectionState.CONNECTED and p.name not in self._upload_tasks:
                try:
                    self._take_owner(p.name)
                except CrmSyncError as exc:
                    log.warning("Uploads of %s are not started here: %s", p.name, exc.message)
                    continue
                self._upload_tasks[p.name] = asyncio.create_task(self.uploads(p.name).run_forever(),
                                                                 name=f"uploads:{p.name}")
                started.append(p.name)
        return started

    async def stop_uploads(self, profile: str | None = None) -> None:
        names = [profile] if profile else list(self._uploads)
        for name in names:
            svc = self._uploads.get(name)
            if svc is None:
                continue
            svc.stop()
            task = self._upload_tasks.pop(name, None)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                self._drop_owner(name)
            await svc.aclose()
            self._uploads.pop(name, None)

    async def aclose(self) -> None:
        """Stop background uploads (the composition root calls this before closing the database)."""
        await self.stop_uploads()

    # -- metadata -----------------------------------------------------------------------

    async def connect(self, profile: str, entities: Sequence[str] | None = None) -> tuple[RunResult, Any]:
        """Create (or extend) the client organization with the server's entities, fields, relationships."""

        await self.sign_in(profile)  # the user started Connect: an interactive sign-in may run now

        async def body(rec: RunRecorder, p: ConnectionProfile, pair: OrganizationPair) -> Any:
            rec.info("Reading the server's metadata")
            server = await metadata_sync.read_schema(pair.server, entities)
            client = await metadata_sync.read_schema(pair.client, None)
            plan = await self._supported(metadata_sync.plan_connect(server, client), pair.client, rec)
            report = await metadata_sync.apply_plan(
                plan, pair.client, lambda what, done, total: rec.progress(what, "schema", done, total)
            )
            for line in report.lines():
                rec.info(line)
            for problem in report.problems():
                rec.error(problem)
            await repos.replace_metadata_snapshot(self._db, p.name, metadata_sync.schema_to_snapshot(server))
            await self._map_users(p.name, pair, rec, show=True)  # owner mapping, shown to the admin
            await self._ensure_entity_configs(p.name, [e.logical_name for e in server.entities])
            await repos.save_profile(self._db, _with_state(p, ConnectionState.CONNECTED))
            return report

        result, report = await self._run(profile, "connect", RunTrigger.CONNECT, body)
        if self._auto_uploads:
            await self.start_uploads()  # a newly connected profile starts uploading its client changes
        return result, report

    async def update_server(self, profile: str) -> tuple[RunResult, Any]:
        """Copy the server's metadata changes since the last Connect/Update to the client (never back)."""

        async def body(rec: RunRecorder, p: ConnectionProfile, pair: OrganizationPair) -> Any:
            snapshot = metadata_sync.snapshot_to_schema(await repos.load_metadata_snapshot(self._db, p.name))
            names = [e.logical_name for e in snapshot.entities]
            server = await metadata_sync.read_schema(pair.server, names)
            client = await metadata_sync.read_schema(pair.client, None)
            plan = await self._supported(metadata_sync.plan_update(snapshot, server, client), pair.client, rec)
            report = await metadata_sync.apply_plan(
                plan, pair.client, lambda what, done, total: rec.progress(what, "schema", done, total)
            )
            for line in report.lines():
                rec.info(line)
            for problem in report.problems():
                rec.error(problem)
            if report.ok:  # a partial apply keeps the old snapshot, so the next Update Server re-plans it
                await repos.replace_metadata_snapshot(self._db, p.name, metadata_sync.schema_to_snapshot(server))
            if p.name in self._uploads:
                self._uploads[p.name].invalidate_plans()
            return report

        return await self._run(profile, "update_server", RunTrigger.UPDATE_SERVER, body)

    @staticmethod
    async def _supported(plan: metadata_sync.SchemaPlan, client: Connector, rec: RunRecorder) -> metadata_sync.SchemaPlan:
        """Drop the operations the client organization cannot perform, with a warning that says what to do."""
        caps = await client.capabilities()
        if caps.many_to_many:
            return plan
        kept = []
        for op in plan.operations:
            rel = getattr(op, "relationship", None)
            if rel is not None and rel.kind is RelationshipKind.MANY_TO_MANY:
                rec.warning(
                    f"The N:N relationship {rel.schema_name} ({rel.entity1} - {rel.entity2}) is not synchronized: "
                    "this client organization's connection cannot create or link N:N relationships yet. "
                    "Create it in Woodford if you need it on the client; records of both entities still sync."
                )
                continue
            kept.append(op)
        return replace(plan, operations=tuple(kept))

    async def _ensure_entity_configs(self, profile: str, names: Sequence[str]) -> None:
        """A configuration row per server entity; users, teams and business units start enabled so owners resolve."""
        existing = {c.logical_name for c in await repos.list_entity_configs(self._db, profile)}
        new = [EntityConfig(logical_name=n, enabled=n in ALWAYS_SYNCED) for n in names if n not in existing]
        if new:
            await repos.save_entity_configs(self._db, profile, new)

    # -- entity configuration -------------------------------------------------------------

    async def save_entity_configs(self, profile: str, configs: Sequence[EntityConfig]) -> list[str]:
        """Validate filters against the server's metadata, store, and schedule a full sync where needed.

        Returns the entities that will be fully synchronized next time (newly enabled, fields or
        sync filter changed). Raises FilterError listing every problem; nothing is saved then.
        """
        snapshot = await repos.load_metadata_snapshot(self._db, profile)
        schema = metadata_sync.snapshot_to_schema(snapshot)
        meta = metadata_sync.filter_metadata(schema)
        problems: list[str] = []
        for cfg in configs:
            for label, xml in (("sync filter", cfg.sync_filter), ("upload filter", cfg.upload_filter)):
                if not xml.strip():
                    continue
                try:
                    parsed = parse_filter(xml, entity=cfg.logical_name)
                    for problem in validate_filter(parsed, meta):
                        problems.append(f"{cfg.logical_name} {label}: {problem}")
                except FilterError as exc:
                    problems.append(f"{cfg.logical_name} {label}: {exc.message}")
        if problems:
            raise FilterError("The filters have problems; nothing was saved:\n" + "\n".join(problems))
        before = {c.logical_name: c for c in await repos.list_entity_configs(self._db, profile)}
        resync = []
        for cfg in configs:
            old = before.get(cfg.logical_name)
            if cfg.enabled and (
                old is None or not old.enabled or old.sync_filter != cfg.sync_filter or old.fields != cfg.fields
            ):
                resync.append(cfg.logical_name)
        await repos.save_entity_configs(self._db, profile, list(configs))
        for name in resync:
            # Forget the cursor (the next sync reads everything) but keep what the client holds,
            # so records that left a changed filter are still recognised and removed.
            state = await repos.get_sync_state(self._db, profile, name)
            if state is not None and state.token:
                await repos.put_sync_state(self._db, profile, replace(state, token=None))
        if profile in self._uploads:
            self._uploads[profile].invalidate_plans()
        return resync

    async def entity_statuses(self, profile: str) -> list[EntityStatus]:
        configs = await repos.list_entity_configs(self._db, profile)
        schema = metadata_sync.snapshot_to_schema(await repos.load_metadata_snapshot(self._db, profile))
        by_name = {e.logical_name: e for e in schema.entities}
        states = {s.entity: s for s in await repos.list_sync_states(self._db, profile)}
        held = await repos.count_record_states(self._db, profile)
        retries = await repos.count_download_retries(self._db, profile)
        tracking = TRACKING_ENTITY in by_name
        out = []
        for cfg in configs:
            meta = by_name.get(cfg.logical_name)
            ct = bool(meta and meta.change_tracking)
            state = states.get(cfg.logical_name)
            out.append(
                EntityStatus(
                    config=cfg,
                    display_name=(meta.label if meta else "") or cfg.logical_name,
                    change_detection="change tracking" if ct else "watermark",
                    resolved_deletion=resolve_deletion(cfg, change_tracking=ct, tracking_available=tracking),
                    last_sync_at=state.last_sync_at if state else None,
                    records_held=held.get(cfg.logical_name, 0),
                    waiting_retries=retries.get(cfg.logical_name, 0),
                )
            )
        return out

    # -- connection -------------------------------------------------------------------------

    async def sign_in(self, profile: str) -> None:
        """Run the interactive sign-in of a device-code or browser profile now (if the cache cannot)."""
        p = await repos.get_profile(self._db, profile)
        ensure = getattr(self._connectors, "ensure_signed_in", None)
        if ensure is not None:
            await ensure(p)
            self.bus.publish(StateChanged(profile, EngineState.IDLE, "signed in"))

    async def test_connection(self, profile: str) -> tuple[Identity | CrmSyncError, Identity | CrmSyncError]:
        """Sign in to both organizations and ask who we are; each side's failure is returned, not raised."""
        p = await repos.get_profile(self._db, profile)
        try:
            await self.sign_in(profile)
        except CrmSyncError as exc:
            return exc, await self._client_identity(p)
        try:
            pair = await self._connectors.open(p)
        except CrmSyncError as exc:
            return exc, exc
        try:
            results = []
            for conn in (pair.server, pair.client):
                try:
                    results.append(await conn.whoami())
                except CrmSyncError as exc:
                    results.append(exc)
            return results[0], results[1]
        finally:
            await pair.aclose()

    async def list_profiles(self) -> list[ConnectionProfile]:
        return await repos.list_profiles(self._db)

    async def get_profile(self, profile: str) -> ConnectionProfile:
        return await repos.get_profile(self._db, profile)

    async def save_connection(self, profile: ConnectionProfile, secrets: Mapping[SecretKind, str]) -> None:
        """Store the connection settings, and each given secret straight into the OS keyring.

        Secrets are stored first: if the keyring refuses, nothing is saved and the error says why.
        An empty secret leaves the stored one unchanged.
        """
        for kind, value in secrets.items():
            if value:
                await self._credentials.aset_secret(profile.name, kind, value)
        try:
            stored = await repos.get_profile(self._db, profile.name)
        except ProfileNotFoundError:
            stored = None
        if stored is not None:
            # The connection state belongs to the engine (Connect/Disconnect), not to a settings form
            # that may have been opened before a Connect finished.
            profile = replace(profile, state=stored.state, metadata_updated_at=stored.metadata_updated_at)
        await repos.save_profile(self._db, profile)

    async def stored_secrets(self, profile: str) -> set[SecretKind]:
        """Which secrets the keyring holds for ``profile`` (never their values)."""
        found = set()
        for kind in SecretKind:
            if await asyncio.to_thread(self._credentials.has_secret, profile, kind):
                found.add(kind)
        return found

    async def _client_identity(self, p: ConnectionProfile) -> Identity | CrmSyncError:
        try:
            pair = await self._connectors.open(p)
        except CrmSyncError as exc:
            return exc
        try:
            return await pair.client.whoami()
        except CrmSyncError as exc:
            return exc
        finally:
            await pair.aclose()

    async def disconnect(self, profile: str, credentials: CredentialStore | None = None) -> None:
        """End the connection: forget sync and record state and the stored secrets; keep the configuration.

        Offline transactions still waiting are kept (they may be the only copy of a user's change);
        deleting the client organization is a separate, confirmed action.
        """
        await self.stop_uploads(profile)
        async with self._lock(profile):
            p = await repos.get_profile(self._db, profile)
            for cfg in await repos.list_entity_configs(self._db, profile):
                await repos.reset_entity_state(self._db, profile, cfg.logical_name)
            await repos.save_profile(self._db, replace(p, state=ConnectionState.DISCONNECTED))
            await (credentials or self._credentials).adelete_profile(profile)
            self.bus.publish(StateChanged(profile, EngineState.IDLE, "disconnected"))

    # -- metadata for the console -------------------------------------------------------------

    async def server_schema(self, profile: str) -> metadata_sync.Schema:
        """The server's entities, fields and relationships as last replicated (for pickers and editors)."""
        return metadata_sync.snapshot_to_schema(await repos.load_metadata_snapshot(self._db, profile))

    async def preview_filter(
        self, profile: str, entity: str, fetch_xml: str, *, sample_size: int = 10, count_limit: int = 100_000
    ) -> FilterPreview:
        """How many server records a filter matches (counted up to ``count_limit``) and a sample of them."""
        parsed = parse_filter(fetch_xml, entity=entity) if fetch_xml.strip() else FetchFilter(entity=entity)
        schema = await self.server_schema(profile)
        problems = validate_filter(parsed, metadata_sync.filter_metadata(schema))
        if problems:
            raise FilterError("; ".join(str(p) for p in problems), entity=entity)
        meta = schema.entity(entity)
        xml = render_filter(parsed if not parsed.is_empty else FetchFilter(entity=entity))
        async with self._session(profile) as (_, pair):
            count = 0
            async for ids in pair.server.read_ids(entity, fetch_filter=xml):
                count += len(ids)
                if count >= count_limit:
                    break
            sample: list[tuple[str, str]] = []
            fields = [f for f in (meta.primary_id, meta.primary_name) if f]
            async for page in pair.server.read_pages(entity, fields, fetch_filter=xml, page_size=sample_size):
                sample = [(str(r.get(meta.primary_id, "")), str(r.get(meta.primary_name, "") or "")) for r in
                          page.records[:sample_size]]
                break
        return FilterPreview(entity, min(count, count_limit), count >= count_limit, tuple(sample))

    # -- runs ---------------------------------------------------------------------------

    async def list_runs(self, profile: str | None = None, *, limit: int = 50) -> list[JobRun]:
        return await repos.list_runs(self._db, profile, limit=limit)

    async def run_log(self, run_id: int, *, limit: int = 5000) -> list[RunLogLine]:
        return await repos.list_log_lines(self._db, run_id, limit=limit)

    # -- data ---------------------------------------------------------------------------

    async def _plans(
        self, profile: str, pair: OrganizationPair, entities: Sequence[str] | None
    ) -> tuple[list[EntityPlan], EvaluationContext, dict[str, EntityMeta]]:
        configs = [c for c in await repos.list_entity_configs(self._db, profile) if c.enabled]
        if entities:
            wanted = set(entities)
            unknown = wanted - {c.logical_name for c in configs}
            if unknown:
                raise FilterError(
                    f"Not enabled for synchronization: {', '.join(sorted(unknown))}. Enable them first."
                )
            configs = [c for c in configs if c.logical_name in wanted]
        schema = metadata_sync.snapshot_to_schema(await repos.load_metadata_snapshot(self._db, profile))
        server_meta = {e.logical_name: e for e in schema.entities}
        tracking = TRACKING_ENTITY in server_meta
        who = await pair.server.whoami()
        context = EvaluationContext(who.user_id, who.business_unit_id, datetime.now(UTC))
        enabled = frozenset(c.logical_name for c in configs)
        plans: list[EntityPlan] = []
        order = metadata_sync.sync_order(schema, [c.logical_name for c in configs])
        by_name = {c.logical_name: c for c in configs}
        for name in order:
            cfg = by_name.get(name)
            if cfg is None:  # a security entity the admin did not enable: owners stay as they are
                continue
            meta = server_meta.get(name)
            if meta is None:
                raise FilterError(f"{name} is not in the replicated metadata. Run Update Server first.")
            client_meta = await pair.client.get_entity(name)
            sync_filter = parse_filter(cfg.sync_filter, entity=name) if cfg.sync_filter.strip() else FetchFilter()
            filter_fields: tuple[str, ...] = ()
            if not sync_filter.is_empty and can_evaluate_locally(sync_filter) and sync_filter.filter is not None:
                filter_fields = tuple(
                    c.attribute for c in sync_filter.filter.walk_conditions() if meta.field(c.attribute) is not None
                )
            plans.append(
                EntityPlan(
                    entity=name,
                    fields=plan_fields(meta, client_meta, cfg.fields),
                    sync_filter=sync_filter,
                    deletion=resolve_deletion(cfg, change_tracking=meta.change_tracking, tracking_available=tracking),
                    synced_entities=enabled,
                    filter_fields=filter_fields,
                )
            )
        return plans, context, server_meta

    async def sync(
        self,
        profile: str,
        *,
        full: bool = False,
        entities: Sequence[str] | None = None,
        trigger: RunTrigger = RunTrigger.MANUAL,
    ) -> RunResult:
        """Download server changes (everything when ``full``) for the enabled entities."""
        result, _ = await self._sync(profile, full=full, entities=entities, trigger=trigger, dry_run=False)
        return result

    async def dry_run(
        self, profile: str, *, full: bool = False, entities: Sequence[str] | None = None
    ) -> tuple[RunResult, dict[tuple[str, str], list[str]]]:
        """What a sync would create, update and delete per entity (counts and example ids); writes nothing.

        Tracking records are not read in a dry run (reading them moves their cursor).
        """
        result, examples = await self._sync(profile, full=full, entities=entities, trigger=RunTrigger.MANUAL,
                                            dry_run=True)
        return result, examples or {}

    async def _sync(
        self,
        profile: str,
        *,
        full: bool,
        entities: Sequence[str] | None,
        trigger: RunTrigger,
        dry_run: bool,
    ) -> tuple[RunResult, dict[tuple[str, str], list[str]] | None]:
        async def body(rec: RunRecorder, p: ConnectionProfile, pair: OrganizationPair) -> dict[tuple[str, str], list[str]]:
            if not dry_run and p.name in self._upload_tasks:
                # Uploads run for this profile (service mode, the console): client edits not captured
                # yet (made since the last probe, or while the process was down) are queued now, so
                # the download below does not overwrite them (found by the chaos soak).
                captured = await self.uploads(p.name).capture_once(lock_held=True)
                if captured:
                    rec.info(f"Queued {captured} client change(s) made since the last capture before downloading")
            if not dry_run and (await repos.count_transactions(self._db, p.name)).get(TransactionStatus.PENDING):
                # Upload before download (as Resco does): the client's pending changes reach the
                # server first, so the download does not overwrite them.
                drained = await self.uploads(p.name).drain_once()
                if drained.reached_server:
                    rec.info(f"Uploaded {drained.delivered} pending client change(s) first "
                             f"({drained.failed} failed, {drained.retrying} to retry, {drained.conflicts} conflicts)")
            plans, context, server_meta = await self._plans(p.name, pair, entities)
            # Owner mapping (sync/owner_mapping.py): shown in the log of every Sync All.
            users, remapped = await self._map_users(p.name, pair, rec, show=full, store=not dry_run)
            # Entities whose client changes are captured for upload (capture has a client token):
            # the download there never overwrites a client edit capture has not seen yet.
            captured = frozenset(st.entity.removeprefix(CLIENT_TOKEN_PREFIX)
                                 for st in await repos.list_sync_states(self._db, p.name)
                                 if st.entity.startswith(CLIENT_TOKEN_PREFIX))
            downloader = EntityDownloader(
                db=self._db, profile=p.name, server=pair.server, client=pair.client, recorder=rec, context=context,
                dry_run=dry_run, users=users, remapped_users=frozenset(remapped), captured_entities=captured,
            )
            if remapped:  # records pointing at users whose mapping changed are read again and rewritten
                downloader.arrived.setdefault(USER_ENTITY, set()).update(remapped)
            for plan in plans:
                await downloader.sync(plan, full=full)
                if plan.deletion is DeletionStrategy.SWEEP:
                    await sweep(self._db, p.name, pair.server, pair.client, plan, rec,
                                render_filter(_entity_filter(plan)), dry_run=dry_run)
            if dry_run:
                await rec.flush()
                return downloader.examples
            if any(plan.deletion is DeletionStrategy.TRACKING for plan in plans):
                await apply_tracking(self._db, p.name, pair.server, pair.client,
                                     {plan.entity: plan for plan in plans}, downloader, rec)
            if not full:  # (a full sync reads every record anyway)
                await downloader.complete_lookups(plans, {
                    name: {f.logical_name: f.targets for f in meta.fields if f.type.is_lookup and f.targets}
                    for name, meta in server_meta.items()})
            for plan in plans:  # failed and deferred records, now that every entity has been written
                waiting = await downloader.retry_pending(plan)
                if waiting:
                    rec.warning(f"{waiting} record(s) still wait for a retry", plan.entity)
            await rec.flush()
            return downloader.examples

        kind = ("dry_run_" if dry_run else "") + ("sync_all" if full else "incremental")
        return await self._run(profile, kind, trigger, body)

    async def verify(self, profile: str, entities: Sequence[str] | None = None) -> tuple[RunResult, VerifyReport | None]:
        """Compare both organizations for the enabled entities under their sync filters."""

        async def body(rec: RunRecorder, p: ConnectionProfile, pair: OrganizationPair) -> VerifyReport:
            plans, _, _ = await self._plans(p.name, pair, entities)
            return await verify(self._db, p.name, pair.server, pair.client,
                                [(plan, render_filter(_entity_filter(plan))) for plan in plans], rec)

        return await self._run(profile, "verify", RunTrigger.MANUAL, body)

    # -- owner mapping (sync/owner_mapping.py) ---------------------------------------------------

    async def user_mapping(self, profile: str) -> list[UserMatch]:
        """How each server user maps to the client organization's users, read live (no run recorded)."""
        async with self._session(profile) as (_, pair):
            mapping = await read_user_mapping(pair.server, pair.client)
        return list(mapping.matches) if mapping is not None else []

    async def _map_users(
        self, profile: str, pair: OrganizationPair, rec: RunRecorder, *, show: bool, store: bool = True
    ) -> tuple[UserMapping | None, set[str]]:
        """Match the server's users to the client's own (by email): stored, and logged when ``show``.

        Returns the mapping (None when either side has no user entity yet) and the server users
        whose mapping changed since it was last stored.
        """
        mapping = await read_user_mapping(pair.server, pair.client)
        if mapping is None:
            return None, set()
        new: set[str] = set()
        if store:
            new = await save_user_mapping(self._db, profile, mapping)
        if show:
            info, warnings = mapping.log_lines()
            for line in info:
                rec.info(line, USER_ENTITY)
            for line in warnings:
                rec.warning(line, USER_ENTITY)
        return mapping, new

    # -- tracking on the server (console: Tracking dialog; logic in sync/tracking_config.py) --------

    async def tracking_overview(self, profile: str) -> TrackingOverview:
        """Per server table: Dataverse change tracking, Resco-tracked deletions / owner changes; per N:N
        relationship: tracked removals. Read live from the server (no run is recorded)."""
        schema = await self.server_schema(profile)
        enabled = {c.logical_name: c.enabled for c in await repos.list_entity_configs(self._db, profile)}
        async with self._session(profile) as (_, pair):
            return await read_overview(pair.server, schema, enabled)

    async def apply_tracking(self, profile: str, changes: TrackingChanges) -> tuple[RunResult, TrackingResult | None]:
        """Apply tracking changes (Dataverse change tracking first: IRREVERSIBLE), recorded as a "tracking" run."""

        async def body(rec: RunRecorder, p: ConnectionProfile, pair: OrganizationPair) -> TrackingResult:
            result = await apply_tracking_changes(self._db, p.name, pair.server, changes, rec)
            if p.name in self._uploads:
                self._uploads[p.name].invalidate_plans()
            return result

        return await self._run(profile, "tracking", RunTrigger.MANUAL, body)


def _entity_filter(plan: EntityPlan) -> FetchFilter:
    f = plan.sync_filter
    return f if not f.is_empty else FetchFilter(entity=plan.entity)


def _with_state(profile: ConnectionProfile, state: ConnectionState) -> ConnectionProfile:
    return replace(profile, state=state)


def _plain(rec: RunRecorder) -> dict[str, dict[str, int]]:
    return {k: dict(v) for k, v in rec.counts_snapshot().items()}


def _state_for(exc: CrmSyncError) -> EngineState:
    if isinstance(exc, ThrottledError):
        return EngineState.THROTTLED
    if isinstance(exc, NetworkError):
        return EngineState.OFFLINE
    if isinstance(exc, AuthRequiredError):
        return EngineState.SIGN_IN_NEEDED
    return EngineState.ERROR


def _throttled_until(exc: CrmSyncError) -> datetime | None:
    if isinstance(exc, ThrottledError):
        return datetime.now(UTC) + timedelta(seconds=exc.retry_after)
    return None
