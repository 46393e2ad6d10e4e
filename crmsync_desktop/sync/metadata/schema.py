"""The schema of one organization (:class:`Schema`), how to read it, and its stored snapshot form.

``read_schema`` asks a :class:`~crmsync_desktop.sync.connectors.base.Connector` for entities with
their fields and the relationships among them. ``schema_to_snapshot``/``snapshot_to_schema``
convert to and from the store's :class:`~crmsync_desktop.store.values.MetadataSnapshot` without
loss (everything travels in ``raw`` as JSON), so "Update Server" can diff against what was last
replicated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from crmsync_desktop import errors
from crmsync_desktop.store.values import (
    MetadataEntity,
    MetadataField,
    MetadataRelationship,
    MetadataSnapshot,
)
from crmsync_desktop.store.values import RelationshipKind as StoredKind
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import (
    EntityMeta,
    FieldMeta,
    FieldType,
    OptionMeta,
    Ownership,
    RelationshipKind,
    RelationshipMeta,
)
from crmsync_desktop.sync.filters import AttributeInfo, AttributeType, MetadataMap

__all__ = [
    "ALWAYS_SYNCED",
    "NEVER_SYNCED",
    "Schema",
    "compatible",
    "filter_metadata",
    "read_schema",
    "schema_to_snapshot",
    "snapshot_to_schema",
]

ALWAYS_SYNCED = ("businessunit", "systemuser", "team")
"""Read and replicated whatever the selection, so owners and business units resolve."""

NEVER_SYNCED = frozenset({"calendarrule", "commitment", "plugintype", "resco_questionnairefolder"})
"""Entities Resco's own sync threw exceptions on (resco.md §1.4); left out of "every entity"."""

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Schema:
    """Entities (with fields) and the relationships among them, sorted by logical / schema name.

    ``catalog`` is every entity name the organization listed when this schema was read (empty when
    unknown, e.g. decoded from a snapshot): it tells "deleted on the server" from "not read".
    Build one with :meth:`of` (which sorts and indexes); look up with :meth:`entity`, :meth:`field`,
    :meth:`relationship`.
    """

    entities: tuple[EntityMeta, ...] = ()
    relationships: tuple[RelationshipMeta, ...] = ()
    catalog: frozenset[str] = field(default=frozenset(), compare=False)
    _entities: dict[str, EntityMeta] = field(init=False, repr=False, compare=False)
    _relationships: dict[str, RelationshipMeta] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_entities", {e.logical_name: e for e in self.entities})
        object.__setattr__(self, "_relationships", {r.schema_name: r for r in self.relationships})

    @classmethod
    def of(
        cls,
        entities: Iterable[EntityMeta],
        relationships: Iterable[RelationshipMeta] = (),
        catalog: Iterable[str] = (),
    ) -> Schema:
        return cls(
            tuple(sorted(entities, key=lambda e: e.logical_name)),
            tuple(sorted(relationships, key=lambda r: r.schema_name)),
            frozenset(catalog),
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The entity logical names."""
        return tuple(self._entities)

    def has(self, entity: str) -> bool:
        return entity in self._entities

    def entity(self, name: str) -> EntityMeta | None:
        return self._entities.get(name)

    def field(self, entity: str, name: str) -> FieldMeta | None:
        e = self._entities.get(entity)
        return e.field(name) if e is not None else None

    def relationship(self, schema_name: str) -> RelationshipMeta | None:
        return self._relationships.get(schema_name)

    def relationships_of(self, entity: str) -> list[RelationshipMeta]:
        return [
            r for r in self.relationships
            if entity in (r.referenced_entity, r.referencing_entity, r.entity1, r.entity2, r.intersect_entity)
        ]


# --- type compatibility ---------------------------------------------------------------------------

_CHOICES = frozenset({FieldType.PICKLIST, FieldType.STATE, FieldType.STATUS})
_LOOKUPS = frozenset({FieldType.LOOKUP, FieldType.OWNER})
_HOLDS: dict[FieldType, frozenset[FieldType]] = {
    FieldType.STRING: frozenset({FieldType.STRING, FieldType.MEMO}),
    FieldType.MEMO: frozenset({FieldType.MEMO, FieldType.STRING}),
    FieldType.INTEGER: frozenset({FieldType.INTEGER, FieldType.BIGINT, FieldType.DECIMAL}),
    FieldType.BIGINT: frozenset({FieldType.BIGINT, FieldType.DECIMAL}),
    FieldType.MONEY: frozenset({FieldType.MONEY, FieldType.DECIMAL}),
    FieldType.PICKLIST: _CHOICES,
    FieldType.STATE: _CHOICES,
    FieldType.STATUS: _CHOICES,
    FieldType.LOOKUP: _LOOKUPS,
    FieldType.OWNER: _LOOKUPS,
}


def compatible(server: FieldType, client: FieldType) -> bool:
    """Whether a client column of type ``client`` can hold the values of a server column of ``server``.

    Covers the Resco Cloud connector's lossy mapping (memo -> string, bigint -> decimal, state and
    status -> picklist, owner -> lookup), so a client created from the server is always compatible.
    """
    return client in _HOLDS.get(server, frozenset({server}))


_ATTRIBUTE_TYPE: dict[FieldType, AttributeType] = {
    FieldType.MULTI_PICKLIST: AttributeType.MULTISELECT_PICKLIST,
    FieldType.ROWVERSION: AttributeType.BIGINT,
    FieldType.BINARY: AttributeType.FILE,
    FieldType.OTHER: AttributeType.VIRTUAL,
}


def filter_metadata(schema: Schema) -> MetadataMap:
    """The ``FilterMetadata`` that ``validate_filter`` checks sync and upload filters against."""
    return MetadataMap({
        e.logical_name: {
            f.logical_name: AttributeInfo(_ATTRIBUTE_TYPE.get(f.type) or AttributeType(f.type.value), f.targets)
            for f in e.fields
        }
        for e in schema.entities
    })


# --- reading --------------------------------------------------------------------------------------

async def _map_bounded(fn: Callable[[_T], Awaitable[_R]], items: Sequence[_T], limit: int) -> list[_R]:
    """``[await fn(x) for x in items]`` with at most ``limit`` at a time; the first error cancels the rest."""
    gate = asyncio.Semaphore(limit)

    async def one(item: _T) -> _R:
        async with gate:
            return await fn(item)

    tasks = [asyncio.ensure_future(one(x)) for x in items]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _syncable(entity: EntityMeta) -> EntityMeta:
    return replace(entity, fields=tuple(f for f in entity.fields if f.type is not FieldType.OTHER))


async def read_schema(conn: Connector, entities: Sequence[str] | None = None, *, concurrency: int = 4) -> Schema:
    """The entities (with their fields, minus ``FieldType.OTHER`` ones) and relationships of an organization.

    Args:
        conn: either organization.
        entities: the logical names to read; ``None`` for every entity worth syncing (all but
            :data:`NEVER_SYNCED`). :data:`ALWAYS_SYNCED` are always added, and so are the intersect
            entities of N:N relationships between read entities. Names the organization does not
            have are left out (reading the client with the server's names tells what it lacks).
        concurrency: how many metadata requests run at once.

    Relationships are kept only when both of their entities were read.
    """
    listed = {e.logical_name: e for e in await conn.list_entities()}
    if entities is None:
        wanted = [n for n in listed if n not in NEVER_SYNCED]
    else:
        wanted = [n for n in dict.fromkeys(entities) if n in listed]
    wanted += [n for n in ALWAYS_SYNCED if n in listed and n not in wanted]
    names = set(wanted)

    found: dict[str, RelationshipMeta] = {}
    for rels in await _map_bounded(conn.list_relationships, sorted(names), concurrency):
        for r in rels:
            found.setdefault(r.schema_name, r)
    intersects = sorted(
        {r.intersect_entity for r in found.values()
         if r.kind is RelationshipKind.MANY_TO_MANY and r.entity1 in names and r.entity2 in names
         and r.intersect_entity and r.intersect_entity in listed} - names
    )
    names.update(intersects)

    metas = await _map_bounded(conn.get_entity, sorted(names), concurrency)
    relationships = [
        r for r in found.values()
        if (r.kind is RelationshipKind.ONE_TO_MANY and r.referenced_entity in names and r.referencing_entity in names)
        or (r.kind is RelationshipKind.MANY_TO_MANY and r.entity1 in names and r.entity2 in names)
    ]
    return Schema.of((_syncable(m) for m in metas), relationships, listed)


# --- snapshot codec -------------------------------------------------------------------------------

def _json(value: Any) -> Any:
    if isinstance(value, OptionMeta):
        return {"value": value.value, "label": value.label}
    if isinstance(value, (tuple, list)):
        return [_json(v) for v in value]
    if isinstance(value, (FieldType, Ownership, RelationshipKind)):
        return value.value
    return value


def _raw(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.name: _json(getattr(obj, f.name)) for f in fields(obj) if f.name not in skip}


def _known(cls: type, raw: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in raw.items() if k in names}


def _field_type(value: Any) -> FieldType:
    try:
        return FieldType(str(value))
    except ValueError:
        return FieldType.OTHER  # a type this version does not know: not copied


def schema_to_snapshot(schema: Schema) -> MetadataSnapshot:
    """The store form of ``schema`` (usually the server's, just replicated)."""
    entities = tuple(
        MetadataEntity(
            logical_name=e.logical_name,
            display_name=e.label,
            primary_id_attribute=e.primary_id,
            primary_name_attribute=e.primary_name,
            entity_set_name=e.entity_set_name,
            change_tracking=e.change_tracking,
            is_intersect=e.is_intersect,
            fields=tuple(
                MetadataField(logical_name=f.logical_name, type=f.type.value, label=f.label, raw=_raw(f))
                for f in e.fields
            ),
            raw=_raw(e, skip=("fields",)),
        )
        for e in schema.entities
    )
    relationships = []
    for r in schema.relationships:
        if r.kind is RelationshipKind.ONE_TO_MANY:
            ends = (r.referenced_entity, r.referencing_entity, r.referenced_attribute, r.referencing_attribute)
        else:
            ends = (r.entity1, r.entity2, r.entity1_intersect_attribute, r.entity2_intersect_attribute)
        relationships.append(
            MetadataRelationship(
                schema_name=r.schema_name,
                kind=StoredKind(r.kind.value),
                entity1=ends[0],
                entity2=ends[1],
                attribute1=ends[2],
                attribute2=ends[3],
                intersect_entity=r.intersect_entity or None,
                raw=_raw(r),
            )
        )
    return MetadataSnapshot(entities=entities, relationships=tuple(relationships))


def _decode_field(f: MetadataField) -> FieldMeta:
    raw = _known(FieldMeta, f.raw)
    raw.setdefault("logical_name", f.logical_name)
    raw["type"] = _field_type(raw.get("type", f.type))
    raw.setdefault("label", f.label)
    raw["targets"] = tuple(raw.get("targets") or ())
    raw["options"] = tuple(OptionMeta(int(o["value"]), str(o.get("label", ""))) for o in raw.get("options") or ())
    return FieldMeta(**raw)


def _decode_entity(e: MetadataEntity) -> EntityMeta:
    raw = _known(EntityMeta, e.raw)
    raw.pop("fields", None)
    raw.setdefault("logical_name", e.logical_name)
    raw.setdefault("label", e.display_name)
    raw.setdefault("primary_id", e.primary_id_attribute)
    raw.setdefault("primary_name", e.primary_name_attribute)
    raw.setdefault("entity_set_name", e.entity_set_name)
    raw.setdefault("change_tracking", e.change_tracking)
    raw.setdefault("is_intersect", e.is_intersect)
    raw["ownership"] = Ownership(raw.get("ownership", Ownership.USER.value))
    return EntityMeta(**raw, fields=tuple(_decode_field(f) for f in e.fields))


def _decode_relationship(r: MetadataRelationship) -> RelationshipMeta:
    raw = _known(RelationshipMeta, r.raw)
    if raw:
        raw["kind"] = RelationshipKind(raw["kind"])
        return RelationshipMeta(**raw)
    if RelationshipKind(str(r.kind)) is RelationshipKind.ONE_TO_MANY:  # a row without raw: from the columns
        return RelationshipMeta(
            r.schema_name, RelationshipKind.ONE_TO_MANY, referenced_entity=r.entity1,
            referenced_attribute=r.attribute1, referencing_entity=r.entity2, referencing_attribute=r.attribute2,
        )
    return RelationshipMeta(
        r.schema_name, RelationshipKind.MANY_TO_MANY, entity1=r.entity1, entity2=r.entity2,
        intersect_entity=r.intersect_entity or "", entity1_intersect_attribute=r.attribute1,
        entity2_intersect_attribute=r.attribute2,
    )


def snapshot_to_schema(snapshot: MetadataSnapshot) -> Schema:
    """The :class:`Schema` a stored snapshot describes (``catalog`` is empty: a snapshot has none)."""
    try:
        return Schema.of(
            (_decode_entity(e) for e in snapshot.entities),
            (_decode_relationship(r) for r in snapshot.relationships),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.StoreCorruptError(
            f"The stored metadata snapshot cannot be read ({exc!r}). Run Update Server to replicate it again."
        ) from exc
