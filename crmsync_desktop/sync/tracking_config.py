"""What the server organization tracks, and changing it (the console's Tracking screen).

Two independent mechanisms make deletions visible to an incremental sync (resco.md §1.6, §2;
dataverse-web-api.md §5):

* **Dataverse change tracking** per table (``ChangeTrackingEnabled``): delta reads report
  tombstones. Switched on through :meth:`Connector.enable_change_tracking`; IRREVERSIBLE.
* **Resco tracking records** (Woodford → Plugins: tabs N:N Relationships, Delete, Owner): Resco's
  Dynamics plugins write a ``resco_mobiletracking`` row per deletion, owner change and N:N removal
  of the tables / relationships they are configured for. That configuration's real shape is not
  public; crmsync assumes rows of ``resco_mobiletrackingconfig`` (one per table or relationship with
  the flags ``resco_trackdelete``, ``resco_trackowner``, ``resco_trackdisassociate``; docs/emulator.md,
  "Resco tracking" — an ASSUMPTION TO VERIFY AGAINST A LIVE ORGANIZATION). They are read and written
  through the ordinary record API of the connector; this module is the one place that knows them.

Resco applies tracking records only when ``resco_mobiletracking`` itself is synchronized, so enabling
any tracking enables that entity in the profile too, and the run log says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from crmsync_desktop import errors
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.sync import metadata as metadata_sync
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import Ownership, Record, RelationshipKind
from crmsync_desktop.sync.deletions import TRACKING_ENTITY
from crmsync_desktop.sync.run_recorder import RunRecorder

__all__ = [
    "CONFIG_ENTITY",
    "EntityTracking",
    "RelationshipTracking",
    "TrackingChanges",
    "TrackingOverview",
    "TrackingResult",
    "apply_tracking_changes",
    "read_overview",
]

CONFIG_ENTITY = "resco_mobiletrackingconfig"
F_NAME = "resco_name"
F_ENTITY = "resco_entityname"
F_RELATIONSHIP = "resco_relationshipname"
F_DELETE = "resco_trackdelete"
F_OWNER = "resco_trackowner"
F_NN = "resco_trackdisassociate"
CONFIG_FIELDS = (F_NAME, F_ENTITY, F_RELATIONSHIP, F_DELETE, F_OWNER, F_NN)
_HIDDEN = frozenset({TRACKING_ENTITY, CONFIG_ENTITY})


@dataclass(frozen=True, slots=True)
class EntityTracking:
    """One server table: Dataverse change tracking, and whether Resco tracks its deletions / owner changes."""

    logical_name: str
    label: str
    synchronized: bool  # enabled in the profile
    change_tracking: bool
    track_delete: bool
    track_owner: bool
    user_owned: bool  # only user-owned tables have owners to change


@dataclass(frozen=True, slots=True)
class RelationshipTracking:
    """One server N:N relationship and whether Resco tracks removed links."""

    schema_name: str
    entity1: str
    entity2: str
    intersect_entity: str
    synchronized: bool  # both ends enabled in the profile
    track_removals: bool


@dataclass(frozen=True, slots=True)
class TrackingOverview:
    """What the server tracks for the profile's tables and N:N relationships."""

    entities: tuple[EntityTracking, ...] = ()
    relationships: tuple[RelationshipTracking, ...] = ()
    plugins_installed: bool = False  # the server has the Resco tracking configuration table
    mobile_tracking_synchronized: bool = False  # resco_mobiletracking is enabled in the profile

    def entity(self, name: str) -> EntityTracking | None:
        return next((e for e in self.entities if e.logical_name == name), None)

    def relationship(self, schema_name: str) -> RelationshipTracking | None:
        return next((r for r in self.relationships if r.schema_name == schema_name), None)

    def changes(
        self,
        *,
        change_tracking: Iterable[str] = (),
        delete: Mapping[str, bool] | None = None,
        owner: Mapping[str, bool] | None = None,
        relationships: Mapping[str, bool] | None = None,
    ) -> TrackingChanges:
        """The changes that turn this overview into the wanted state (only what differs)."""
        entities = {e.logical_name: e for e in self.entities}
        rels = {r.schema_name: r for r in self.relationships}
        return TrackingChanges(
            change_tracking=frozenset(n for n in change_tracking if n in entities and not entities[n].change_tracking),
            delete={n: v for n, v in (delete or {}).items() if n in entities and entities[n].track_delete != v},
            owner={n: v for n, v in (owner or {}).items() if n in entities and entities[n].track_owner != v},
            relationships={n: v for n, v in (relationships or {}).items()
                           if n in rels and rels[n].track_removals != v},
        )


@dataclass(frozen=True, slots=True)
class TrackingChanges:
    """What to change. ``change_tracking``: tables to switch Dataverse change tracking ON (irreversible);
    the others map a table / relationship to the wanted state of its Resco tracking."""

    change_tracking: frozenset[str] = frozenset()
    delete: Mapping[str, bool] = field(default_factory=dict)
    owner: Mapping[str, bool] = field(default_factory=dict)
    relationships: Mapping[str, bool] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not (self.change_tracking or self.delete or self.owner or self.relationships)

    @property
    def irreversible(self) -> tuple[str, ...]:
        """The steps that cannot be undone (to confirm before applying)."""
        return tuple(f"Switch on Dataverse change tracking for {name}" for name in sorted(self.change_tracking))


@dataclass(frozen=True, slots=True)
class TrackingResult:
    applied: tuple[str, ...] = ()
    irreversible: tuple[str, ...] = ()  # the irreversible steps that were applied
    failed: tuple[str, ...] = ()
    mobile_tracking_enabled: bool = False  # this run enabled resco_mobiletracking for synchronization

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        head = f"{len(self.applied)} tracking change(s) applied" + (f", {len(self.failed)} failed" if self.failed else "")
        return [head + ".", *self.applied, *self.failed]


@dataclass(slots=True)
class _ConfigRow:
    id: str
    entity: str
    relationship: str
    delete: bool
    owner: bool
    nn: bool


async def _read_config(server: Connector) -> tuple[str, list[_ConfigRow]]:
    meta = await server.get_entity(CONFIG_ENTITY)
    rows: list[_ConfigRow] = []
    async for page in server.read_pages(CONFIG_ENTITY, CONFIG_FIELDS):
        for r in page.records:
            rows.append(_ConfigRow(
                id=str(r.get(meta.primary_id) or "").lower(),
                entity=str(r.get(F_ENTITY) or "").lower(),
                relationship=str(r.get(F_RELATIONSHIP) or ""),
                delete=bool(r.get(F_DELETE)), owner=bool(r.get(F_OWNER)), nn=bool(r.get(F_NN)),
            ))
    return meta.primary_id, rows


async def read_overview(server: Connector, schema: metadata_sync.Schema, enabled: Mapping[str, bool]) -> TrackingOverview:
    """The tracking state of the snapshot's tables and N:N relationships, read live from the server."""
    live = {e.logical_name: e for e in await server.list_entities()}
    plugins = CONFIG_ENTITY in live
    rows = (await _read_config(server))[1] if plugins else []
    by_entity: dict[str, list[_ConfigRow]] = {}
    by_relationship: dict[str, list[_ConfigRow]] = {}
    for row in rows:
        if row.relationship:
            by_relationship.setdefault(row.relationship.lower(), []).append(row)
        elif row.entity:
            by_entity.setdefault(row.entity, []).append(row)
    entities = []
    for meta in schema.entities:
        now = live.get(meta.logical_name)
        if now is None or meta.is_intersect or meta.logical_name in _HIDDEN:
            continue
        mine = by_entity.get(meta.logical_name, [])
        entities.append(EntityTracking(
            logical_name=meta.logical_name, label=meta.label or now.label or meta.logical_name,
            synchronized=enabled.get(meta.logical_name, False), change_tracking=now.change_tracking,
            track_delete=any(r.delete for r in mine), track_owner=any(r.owner for r in mine),
            user_owned=meta.ownership is Ownership.USER,
        ))
    relationships = [
        RelationshipTracking(
            schema_name=r.schema_name, entity1=r.entity1, entity2=r.entity2, intersect_entity=r.intersect_entity,
            synchronized=enabled.get(r.entity1, False) and enabled.get(r.entity2, False),
            track_removals=any(c.nn for c in by_relationship.get(r.schema_name.lower(), [])),
        )
        for r in schema.relationships if r.kind is RelationshipKind.MANY_TO_MANY
    ]
    return TrackingOverview(
        entities=tuple(sorted(entities, key=lambda e: (e.label.casefold(), e.logical_name))),
        relationships=tuple(relationships),
        plugins_installed=plugins,
        mobile_tracking_synchronized=enabled.get(TRACKING_ENTITY, False),
    )


async def apply_tracking_changes(
    db: Database, profile: str, server: Connector, changes: TrackingChanges, rec: RunRecorder
) -> TrackingResult:
    """Apply ``changes``: Dataverse change tracking first, then the Resco tracking configuration rows,
    then enable ``resco_mobiletracking`` in the profile when anything is tracked. Every step is logged.

    A sign-in or connection problem is raised (the run fails); anything else fails only its step.
    """
    applied: list[str] = []
    irreversible: list[str] = []
    failed: list[str] = []
    snapshot = metadata_sync.snapshot_to_schema(await repos.load_metadata_snapshot(db, profile))

    # 1. Dataverse change tracking (irreversible), table by table.
    switched: list[str] = []
    for name in sorted(changes.change_tracking):
        try:
            await server.enable_change_tracking(name)
        except (errors.AuthError, errors.NetworkError):
            raise
        except errors.CrmSyncError as exc:
            failed.append(f"Change tracking for {name} could not be switched on: {exc.message}")
            rec.error(failed[-1], name)
            continue
        switched.append(name)
        line = f"Dataverse change tracking switched on for {name} (this cannot be undone)"
        applied.append(line)
        irreversible.append(line)
        rec.info(line, name)
    if switched:
        await _note_change_tracking(db, profile, snapshot, switched, rec)

    # 2. Resco tracking configuration rows.
    if changes.delete or changes.owner or changes.relationships:
        live = {e.logical_name for e in await server.list_entities()}
        if CONFIG_ENTITY not in live:
            failed.append(
                "The server has no Resco tracking configuration (table resco_mobiletrackingconfig): install Resco's "
                "Dynamics plugins on the server first. Deletions, owner changes and N:N removals are not tracked.")
            rec.error(failed[-1])
        else:
            ok, bad = await _write_config(server, snapshot, changes, rec)
            applied += ok
            failed += bad

    # 3. Resco applies tracking records only when resco_mobiletracking is synchronized too.
    enabled_now = await _ensure_mobile_tracking(db, profile, server, snapshot, changes, rec)
    if enabled_now:
        applied.append(f"{TRACKING_ENTITY} enabled for synchronization")
    if changes.delete or changes.owner or changes.relationships:
        rec.info("Resco tracks only what happens from now on; run Sync All once if the client should also lose "
                 "records deleted or reassigned before.")
    return TrackingResult(tuple(applied), tuple(irreversible), tuple(failed), enabled_now)


async def _note_change_tracking(
    db: Database, profile: str, snapshot: metadata_sync.Schema, names: list[str], rec: RunRecorder
) -> None:
    """The replicated metadata says so, and the next sync starts the table's change tracking with one full read."""
    updated = [replace(e, change_tracking=True) if e.logical_name in names else e for e in snapshot.entities]
    await repos.replace_metadata_snapshot(
        db, profile, metadata_sync.schema_to_snapshot(metadata_sync.Schema.of(updated, snapshot.relationships)))
    for name in names:
        state = await repos.get_sync_state(db, profile, name)
        if state is not None and state.token:
            await repos.put_sync_state(db, profile, replace(state, token=None))
            rec.info(f"The next sync reads {name} in full once to start change tracking", name)


async def _write_config(
    server: Connector, snapshot: metadata_sync.Schema, changes: TrackingChanges, rec: RunRecorder
) -> tuple[list[str], list[str]]:
    pk, rows = await _read_config(server)
    records: list[Record] = []
    describe: list[str] = []
    for name in sorted(set(changes.delete) | set(changes.owner)):
        flags: dict[str, bool] = {}
        if name in changes.delete:
            flags[F_DELETE] = changes.delete[name]
        if name in changes.owner:
            meta = snapshot.entity(name)
            if changes.owner[name] and meta is not None and meta.ownership is not Ownership.USER:
                rec.warning(f"{name} has no owner; owner changes cannot be tracked for it", name)
                flags.pop(F_OWNER, None)
            else:
                flags[F_OWNER] = changes.owner[name]
        if not flags:
            continue
        mine = [r for r in rows if not r.relationship and r.entity == name]
        records += _config_records(pk, mine, {F_NAME: name, F_ENTITY: name}, flags)
        describe += [_describe(name, flag, on) for flag, on in flags.items()]
    for schema_name, on in sorted(changes.relationships.items()):
        mine = [r for r in rows if r.relationship.lower() == schema_name.lower()]
        records += _config_records(pk, mine, {F_NAME: schema_name, F_RELATIONSHIP: schema_name}, {F_NN: on})
        describe.append(_describe(schema_name, F_NN, on))
    if not records:
        return [], []
    results = await server.upsert_many(CONFIG_ENTITY, records)
    bad = [f"Tracking configuration {r.id} could not be saved: {r.error}" for r in results if not r.ok]
    for line in bad:
        rec.error(line)
    if bad:
        return [], bad
    for line in describe:
        rec.info(line)
    return describe, []


def _config_records(pk: str, existing: list[_ConfigRow], identity: dict[str, str], flags: dict[str, bool]) -> list[Record]:
    """Update every existing row of the table / relationship, or create one (all flags off but these)."""
    if existing:
        return [{pk: row.id, **flags} for row in existing]
    return [{pk: str(uuid.uuid4()), **identity, F_DELETE: False, F_OWNER: False, F_NN: False, **flags}]


def _describe(name: str, flag: str, on: bool) -> str:
    what = {F_DELETE: "deletions", F_OWNER: "owner changes", F_NN: "removed links"}[flag]
    return f"Resco tracking of {what} {'switched on' if on else 'switched off'} for {name}"


async def _ensure_mobile_tracking(
    db: Database, profile: str, server: Connector, snapshot: metadata_sync.Schema, changes: TrackingChanges,
    rec: RunRecorder,
) -> bool:
    """Enable ``resco_mobiletracking`` in the profile once anything is tracked (as Resco requires)."""
    if not any([*changes.delete.values(), *changes.owner.values(), *changes.relationships.values()]):
        return False
    configs = {c.logical_name: c for c in await repos.list_entity_configs(db, profile)}
    cfg = configs.get(TRACKING_ENTITY)
    if cfg is not None and cfg.enabled:
        return False
    if cfg is None or not snapshot.has(TRACKING_ENTITY):
        rec.warning(f"{TRACKING_ENTITY} (Mobile Tracking) is not among this profile's tables, so the tracking records "
                    "cannot be applied yet: add it with Connect, then enable it.")
        return False
    await repos.save_entity_configs(db, profile, [replace(cfg, enabled=True)])
    rec.info(f"Mobile Tracking ({TRACKING_ENTITY}) was enabled for synchronization: Resco applies tracked deletions, "
             "owner changes and N:N removals only when it is synchronized too.", TRACKING_ENTITY)
    return True
