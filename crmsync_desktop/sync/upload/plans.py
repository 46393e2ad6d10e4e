"""What upload knows about one entity (``UploadPlan``), how it is built, and payload encoding.

The field plan MUST be the one the download uses for the same entity: echo suppression compares
``content_hash(project(client record, plan.fields))`` with the hash the download stored in
``record_state``. ``build_upload_plans`` builds it the way the engine does (``plan_fields`` over
the server and client metadata and the admin's field selection); the engine can instead pass its
own plans through :func:`upload_plan`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crmsync_desktop.domain import ConflictPolicy, EntityConfig
from crmsync_desktop.errors import CrmSyncError
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import (
    EntityMeta,
    FieldType,
    FieldValue,
    LookupValue,
    Record,
    RelationshipKind,
    RelationshipMeta,
)
from crmsync_desktop.sync.filters import NO_FILTER, FetchFilter, can_evaluate_locally, parse_filter
from crmsync_desktop.sync.records import FieldPlan, content_hash, plan_fields, record_digests

__all__ = [
    "CLIENT_TOKEN_PREFIX",
    "IntersectLink",
    "UploadPlan",
    "build_upload_plans",
    "decode_record",
    "decode_value",
    "dependency_order",
    "encode_record",
    "encode_value",
    "field_digests",
    "same_value",
    "upload_plan",
]

log = logging.getLogger(__name__)

CLIENT_TOKEN_PREFIX = "client:"
"""``sync_state.entity`` of the client change token of an entity: ``"client:account"``."""

OWNER_FIELD = "ownerid"
MODIFIED_FIELD = "modifiedon"


@dataclass(frozen=True, slots=True)
class IntersectLink:
    """The N:N relationship an intersect entity stands for (associate/disassociate)."""

    relationship: str
    entity1: str
    entity2: str
    attribute1: str
    attribute2: str


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """Everything capture and delivery need to know about one entity.

    Attributes:
        fields: the fields that travel (same as the download's: the content hash depends on it).
        conflict_policy: what happens when the server changed the record since the last sync.
        upload_filter: only client records matching it are uploaded (NO_FILTER: all).
        filter_fields: extra client fields the local filter check needs.
        create_fields / update_fields: the fields the server accepts on create / update (None: all).
        owner_field: "ownerid" when ownership travels (its changes become Assign transactions).
        modified_field: the client's "modified on" column, read for Newer wins (None if absent).
        server_modified_field: the server's "modified on" column, read on a conflict for Newer wins.
        intersect: set for an N:N intersect entity (its rows become Associate/Disassociate).
    """

    entity: str
    fields: FieldPlan
    conflict_policy: ConflictPolicy = ConflictPolicy.SERVER_WINS
    upload_filter: FetchFilter = NO_FILTER
    filter_fields: tuple[str, ...] = ()
    create_fields: frozenset[str] | None = None
    update_fields: frozenset[str] | None = None
    owner_field: str | None = None
    modified_field: str | None = None
    server_modified_field: str | None = None
    intersect: IntersectLink | None = None

    @property
    def primary_id(self) -> str:
        return self.fields.primary_id

    @property
    def read_fields(self) -> tuple[str, ...]:
        extra = (self.modified_field,) if self.modified_field else ()
        return tuple(dict.fromkeys((*self.fields.fields, *self.filter_fields, *extra)))

    @property
    def client_read_fields(self) -> tuple[str, ...]:
        """``read_fields`` under the client's names (the primary key is matched by role)."""
        pid, cid = self.fields.primary_id, self.fields.client_id_name
        return tuple(cid if f == pid else f for f in self.read_fields)

    @property
    def filter_is_local(self) -> bool:
        return self.upload_filter.is_empty or can_evaluate_locally(self.upload_filter)


def upload_plan(
    config: EntityConfig,
    fields: FieldPlan,
    *,
    server_meta: EntityMeta | None = None,
    client_meta: EntityMeta | None = None,
    intersect: IntersectLink | None = None,
) -> UploadPlan:
    """The upload plan of one entity from its configuration and (download's) field plan."""
    name = config.logical_name
    upload_filter = parse_filter(config.upload_filter, entity=name) if config.upload_filter.strip() else NO_FILTER
    filter_fields: tuple[str, ...] = ()
    if not upload_filter.is_empty and can_evaluate_locally(upload_filter) and upload_filter.filter is not None:
        filter_fields = tuple(
            dict.fromkeys(
                c.attribute
                for c in upload_filter.filter.walk_conditions()
                if client_meta is None or client_meta.field(c.attribute) is not None
            )
        )
    create_fields = update_fields = None
    if server_meta is not None and server_meta.fields:
        create_fields = frozenset(f.logical_name for f in server_meta.fields if f.valid_for_create)
        update_fields = frozenset(f.logical_name for f in server_meta.fields if f.valid_for_update)
    modified = None
    if client_meta is not None and (f := client_meta.field(MODIFIED_FIELD)) is not None and f.type is FieldType.DATETIME:
        modified = MODIFIED_FIELD
    server_modified = None
    if server_meta is not None and (f := server_meta.field(MODIFIED_FIELD)) is not None:
        server_modified = MODIFIED_FIELD if f.type is FieldType.DATETIME else None
    return UploadPlan(
        entity=name,
        fields=fields,
        conflict_policy=config.conflict_policy,
        upload_filter=upload_filter,
        filter_fields=filter_fields,
        create_fields=create_fields,
        update_fields=update_fields,
        owner_field=OWNER_FIELD if OWNER_FIELD in fields.fields else None,
        modified_field=modified,
        server_modified_field=server_modified,
        intersect=intersect,
    )


async def build_upload_plans(
    db: Database,
    profile: str,
    server: Connector,
    client: Connector,
    *,
    server_entities: Mapping[str, EntityMeta] | None = None,
    order: Sequence[str] | None = None,
    relationships: Sequence[RelationshipMeta] = (),
) -> list[UploadPlan]:
    """Upload plans of the enabled entities, parents before children.

    Args:
        server_entities: the server metadata the download plans from (the replicated snapshot);
            entities missing from it are read from the server.
        order: the engine's sync order (parents first); computed from the lookups when None.
        relationships: N:N relationships to find intersect entities in; asked of the client if empty.
    """
    configs = [c for c in await repos.list_entity_configs(db, profile) if c.enabled]
    server_meta: dict[str, EntityMeta] = {}
    client_meta: dict[str, EntityMeta] = {}
    for cfg in configs:
        name = cfg.logical_name
        known = (server_entities or {}).get(name)
        server_meta[name] = known if known is not None and known.fields else await server.get_entity(name)
        client_meta[name] = await client.get_entity(name)
    plans: dict[str, UploadPlan] = {}
    for cfg in configs:
        name = cfg.logical_name
        smeta, cmeta = server_meta[name], client_meta[name]
        link = None
        if smeta.is_intersect or cmeta.is_intersect:
            link = await _find_intersect(client, cmeta, relationships)
        plans[name] = upload_plan(
            cfg, plan_fields(smeta, cmeta, cfg.fields), server_meta=smeta, client_meta=cmeta, intersect=link
        )
    names = [n for n in (order or ()) if n in plans]
    names += [n for n in dependency_order(list(server_meta.values())) if n not in names]
    return [plans[n] for n in names]


async def _find_intersect(
    client: Connector, meta: EntityMeta, relationships: Sequence[RelationshipMeta]
) -> IntersectLink | None:
    candidates = list(relationships)
    if not any(r.intersect_entity == meta.logical_name for r in candidates):
        names = [meta.logical_name]
        names += [f.logical_name[:-2] for f in meta.fields
                  if f.logical_name.endswith("id") and not f.is_primary_id and f.logical_name != meta.primary_id]
        for name in dict.fromkeys(names):
            try:
                candidates.extend(await client.list_relationships(name))
            except CrmSyncError as exc:  # a guessed entity that does not exist is simply not the one
                log.debug("No relationships of %s: %s", name, exc)
                continue
            if any(r.intersect_entity == meta.logical_name for r in candidates):
                break
    for r in candidates:
        if r.kind is RelationshipKind.MANY_TO_MANY and r.intersect_entity == meta.logical_name:
            return IntersectLink(r.schema_name, r.entity1, r.entity2, r.entity1_intersect_attribute,
                                 r.entity2_intersect_attribute)
    return None


def dependency_order(entities: Sequence[EntityMeta]) -> list[str]:
    """Entity names with lookup targets before the entities that point to them.

    Self-references are ignored; a cycle (account <-> contact) is broken by taking, among the
    entities left, the one with the fewest unresolved targets (ties by name). Record-level order
    within a delivery batch takes care of the rest.
    """
    names = {e.logical_name for e in entities}
    deps = {
        e.logical_name: {t for f in e.fields if f.type.is_lookup for t in f.targets if t in names}
        - {e.logical_name}
        for e in entities
    }
    done: list[str] = []
    left = set(names)
    while left:
        ready = sorted(n for n in left if not (deps[n] & left))
        if not ready:
            ready = [min(left, key=lambda n: (len(deps[n] & left), n))]
        for n in ready:
            done.append(n)
            left.discard(n)
    return done


# -- values in payloads -------------------------------------------------------------------------

_LOOKUP = "@lookup"


def encode_value(value: FieldValue) -> Any:
    if isinstance(value, LookupValue):
        return {_LOOKUP: [value.entity, value.id]}
    return value


def decode_value(value: Any) -> FieldValue:
    if isinstance(value, dict) and _LOOKUP in value:
        entity, rid = value[_LOOKUP]
        return LookupValue(str(entity), str(rid))
    return value  # type: ignore[no-any-return]


def encode_record(record: Mapping[str, FieldValue]) -> dict[str, Any]:
    """A record as JSON for a transaction payload (lookups become ``{"@lookup": [entity, id]}``)."""
    return {k: encode_value(v) for k, v in record.items()}


def decode_record(data: Mapping[str, Any]) -> Record:
    return {k: decode_value(v) for k, v in data.items()}


def field_digests(record: Mapping[str, object], plan: UploadPlan) -> dict[str, str]:
    """Per-field short digests (absent and null alike are left out); intersect rows keep their ids."""
    if plan.intersect is None:
        return record_digests(record, plan.fields)
    out: dict[str, str] = {}
    for name in plan.fields.data_fields:
        value = record.get(name)
        if value is not None:
            out[name] = str(value.id if isinstance(value, LookupValue) else value).lower()
    return out


def same_value(a: object, b: object) -> bool:
    """Whether two field values are the same data (the content hash's notion: null == absent)."""
    return content_hash({"v": a}, ("v",)) == content_hash({"v": b}, ("v",))
