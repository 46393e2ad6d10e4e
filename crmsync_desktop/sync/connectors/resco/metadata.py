"""Resco Cloud metadata and provisioning (list, read, create entities, fields, relationships) — ONE module.

The Resco wiki says a metadata service exists but its methods could not be read (resco.md §7.1,
§11.10). Everything below is an ASSUMPTION, kept in this one module so the lead can reconcile it
with docs/emulator.md (or a live organization) by editing a single file:

* Root ``{base}/rest/v1/metadata/{org}/`` (configurable), JSON bodies, Basic auth.
* ``GET Entities`` -> ``{"value": [Entity]}`` with Entity =
  ``{"LogicalName", "DisplayName", "DisplayCollectionName", "PrimaryIdAttribute",
  "PrimaryNameAttribute", "OwnershipType": "UserOwned"|"OrganizationOwned"|"None", "IsIntersect",
  "IsCustomEntity"}`` (labels are plain strings).
* ``GET Entities('{name}')`` -> Entity plus ``"Attributes": [Attribute]`` with Attribute =
  ``{"LogicalName", "DisplayName", "Type", "Targets": [..], "Options": [{"Value", "Label"}],
  "MaxLength", "Precision", "IsRequired", "IsPrimaryId", "IsPrimaryName", "IsCustomAttribute"}``;
  ``Type`` is one of Resco's documented data types: UniqueIdentifier, String, Integer, Float,
  Decimal, DateTime, Picklist, PicklistMap, Boolean, Money, Binary, Lookup, RowVersion, PartyList.
* ``GET Entities('{name}')/Relationships`` -> ``{"value": [Relationship]}`` with Relationship =
  ``{"SchemaName", "Type": "OneToMany"|"ManyToMany", "ReferencedEntity", "ReferencedAttribute",
  "ReferencingEntity", "ReferencingAttribute", "Entity1LogicalName", "Entity2LogicalName",
  "IntersectEntityName", "Entity1IntersectAttribute", "Entity2IntersectAttribute"}``.
* ``POST Entities`` (an Entity, plus ``"PrimaryNameMaxLength"``), ``POST Entities('{name}')/Attributes``
  (an Attribute), ``POST Relationships`` (a Relationship) -> 201/204; 409 when it already exists,
  which counts as success (provisioning is re-runnable).
"""

from __future__ import annotations

from typing import Any

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.http.transport import HttpTransport
from crmsync_desktop.sync.connectors.types import (
    EntityMeta,
    FieldMeta,
    FieldType,
    OptionMeta,
    Ownership,
    RelationshipKind,
    RelationshipMeta,
)

_FROM_RESCO = {
    "UniqueIdentifier": FieldType.UNIQUEIDENTIFIER,
    "String": FieldType.STRING,
    "Integer": FieldType.INTEGER,
    "Float": FieldType.DOUBLE,
    "Decimal": FieldType.DECIMAL,
    "DateTime": FieldType.DATETIME,
    "Picklist": FieldType.PICKLIST,
    "PicklistMap": FieldType.MULTI_PICKLIST,
    "Boolean": FieldType.BOOLEAN,
    "Money": FieldType.MONEY,
    "Binary": FieldType.BINARY,
    "Lookup": FieldType.LOOKUP,
    "RowVersion": FieldType.ROWVERSION,
}
# Lossy where Resco has no equivalent: memo -> String (long MaxLength), bigint -> Decimal, state/status -> Picklist.
_TO_RESCO = {
    FieldType.UNIQUEIDENTIFIER: "UniqueIdentifier",
    FieldType.STRING: "String",
    FieldType.MEMO: "String",
    FieldType.INTEGER: "Integer",
    FieldType.BIGINT: "Decimal",
    FieldType.DECIMAL: "Decimal",
    FieldType.DOUBLE: "Float",
    FieldType.MONEY: "Money",
    FieldType.BOOLEAN: "Boolean",
    FieldType.DATETIME: "DateTime",
    FieldType.PICKLIST: "Picklist",
    FieldType.STATE: "Picklist",
    FieldType.STATUS: "Picklist",
    FieldType.MULTI_PICKLIST: "PicklistMap",
    FieldType.LOOKUP: "Lookup",
    FieldType.OWNER: "Lookup",
    FieldType.ROWVERSION: "RowVersion",
    FieldType.BINARY: "Binary",
}
_OWNERSHIP = {"UserOwned": Ownership.USER, "OrganizationOwned": Ownership.ORGANIZATION, "None": Ownership.NONE}


def _values(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise errors.RemoteError("Resco Cloud returned a metadata list without a 'value' array.")
    return [v for v in body["value"] if isinstance(v, dict)]


def entity_from_wire(e: dict[str, Any], fields: tuple[FieldMeta, ...] = ()) -> EntityMeta:
    name = str(e["LogicalName"])
    return EntityMeta(
        logical_name=name,
        label=str(e.get("DisplayName") or ""),
        collection_label=str(e.get("DisplayCollectionName") or ""),
        entity_set_name=name,
        primary_id=str(e.get("PrimaryIdAttribute") or "id"),
        primary_name=str(e.get("PrimaryNameAttribute") or ""),
        ownership=_OWNERSHIP.get(str(e.get("OwnershipType") or "UserOwned"), Ownership.USER),
        change_tracking=False,  # row versions, but no tombstones
        is_intersect=bool(e.get("IsIntersect")),
        is_custom=bool(e.get("IsCustomEntity")),
        fields=fields,
    )


def field_from_wire(a: dict[str, Any]) -> FieldMeta:
    return FieldMeta(
        logical_name=str(a["LogicalName"]),
        type=_FROM_RESCO.get(str(a.get("Type") or ""), FieldType.OTHER),
        label=str(a.get("DisplayName") or ""),
        targets=tuple(str(t) for t in a.get("Targets") or ()),
        options=tuple(OptionMeta(int(o["Value"]), str(o.get("Label") or "")) for o in a.get("Options") or ()),
        max_length=a.get("MaxLength"),
        precision=a.get("Precision"),
        required=bool(a.get("IsRequired")),
        is_primary_id=bool(a.get("IsPrimaryId")),
        is_primary_name=bool(a.get("IsPrimaryName")),
        is_custom=bool(a.get("IsCustomAttribute")),
    )


def field_to_wire(f: FieldMeta) -> dict[str, Any]:
    if f.type not in _TO_RESCO:
        raise errors.ValidationError(f"A {f.type} field ({f.logical_name}) cannot be created in Resco Cloud.")
    body: dict[str, Any] = {
        "LogicalName": f.logical_name,
        "DisplayName": f.label or f.logical_name,
        "Type": _TO_RESCO[f.type],
        "IsRequired": f.required,
    }
    if f.targets:
        body["Targets"] = list(f.targets)
    if f.options:
        body["Options"] = [{"Value": o.value, "Label": o.label} for o in f.options]
    if f.max_length is not None:
        body["MaxLength"] = f.max_length
    elif f.type is FieldType.MEMO:
        body["MaxLength"] = 1_048_576
    if f.precision is not None:
        body["Precision"] = f.precision
    elif f.type is FieldType.BIGINT:
        body["Precision"] = 0
    return body


def relationship_from_wire(r: dict[str, Any]) -> RelationshipMeta:
    if r.get("Type") == "ManyToMany":
        return RelationshipMeta(
            schema_name=str(r["SchemaName"]),
            kind=RelationshipKind.MANY_TO_MANY,
            entity1=str(r.get("Entity1LogicalName") or ""),
            entity2=str(r.get("Entity2LogicalName") or ""),
            intersect_entity=str(r.get("IntersectEntityName") or ""),
            entity1_intersect_attribute=str(r.get("Entity1IntersectAttribute") or ""),
            entity2_intersect_attribute=str(r.get("Entity2IntersectAttribute") or ""),
            entity1_navigation=str(r["SchemaName"]),
            entity2_navigation=str(r["SchemaName"]),
        )
    return RelationshipMeta(
        schema_name=str(r["SchemaName"]),
        kind=RelationshipKind.ONE_TO_MANY,
        referenced_entity=str(r.get("ReferencedEntity") or ""),
        referenced_attribute=str(r.get("ReferencedAttribute") or ""),
        referencing_entity=str(r.get("ReferencingEntity") or ""),
        referencing_attribute=str(r.get("ReferencingAttribute") or ""),
        referencing_navigation=str(r.get("ReferencingAttribute") or ""),
    )


def relationship_to_wire(r: RelationshipMeta) -> dict[str, Any]:
    if r.kind is RelationshipKind.MANY_TO_MANY:
        return {
            "SchemaName": r.schema_name, "Type": "ManyToMany",
            "Entity1LogicalName": r.entity1, "Entity2LogicalName": r.entity2,
            "IntersectEntityName": r.intersect_entity,
            "Entity1IntersectAttribute": r.entity1_intersect_attribute,
            "Entity2IntersectAttribute": r.entity2_intersect_attribute,
        }
    return {
        "SchemaName": r.schema_name, "Type": "OneToMany",
        "ReferencedEntity": r.referenced_entity, "ReferencedAttribute": r.referenced_attribute,
        "ReferencingEntity": r.referencing_entity, "ReferencingAttribute": r.referencing_attribute,
    }


class RescoMetadata:
    """Reads (cached) and provisions Resco Cloud schema through the assumed metadata service."""

    def __init__(self, http: HttpTransport, root: str) -> None:
        self._http = http
        self._root = root
        self._full: dict[str, EntityMeta] = {}
        self._relationships: dict[str, RelationshipMeta] = {}

    def invalidate(self) -> None:
        self._full.clear()
        self._relationships.clear()

    async def list_entities(self) -> list[EntityMeta]:
        body = await self._http.get_json(f"{self._root}Entities")
        return sorted((entity_from_wire(e) for e in _values(body)), key=lambda e: e.logical_name)

    async def get_entity(self, name: str) -> EntityMeta:
        if name not in self._full:
            try:
                body = await self._http.get_json(f"{self._root}Entities('{name}')")
            except errors.NotFoundError as exc:
                raise errors.NotFoundError(
                    f"The entity {name!r} does not exist in the Resco Cloud organization. Run Update Server/metadata sync first.",
                    entity=name, status=404,
                ) from exc
            fields = tuple(sorted((field_from_wire(a) for a in body.get("Attributes") or ()), key=lambda f: f.logical_name))
            self._full[name] = entity_from_wire(body, fields)
        return self._full[name]

    async def list_relationships(self, name: str) -> list[RelationshipMeta]:
        rels = [relationship_from_wire(r) for r in _values(await self._http.get_json(f"{self._root}Entities('{name}')/Relationships"))]
        self._relationships.update({r.schema_name: r for r in rels})
        return rels

    async def relationship(self, schema_name: str, entity_hint: str = "") -> RelationshipMeta:
        if schema_name not in self._relationships and entity_hint:
            await self.list_relationships(entity_hint)
        if schema_name not in self._relationships:
            raise errors.NotFoundError(f"The relationship {schema_name!r} is not known in the Resco Cloud organization.")
        return self._relationships[schema_name]

    async def create_entity(self, entity: EntityMeta) -> None:
        body = {
            "LogicalName": entity.logical_name,
            "DisplayName": entity.label or entity.logical_name,
            "DisplayCollectionName": entity.collection_label or entity.label or entity.logical_name,
            "PrimaryNameAttribute": entity.primary_name or "name",
            "OwnershipType": {Ownership.USER: "UserOwned", Ownership.ORGANIZATION: "OrganizationOwned"}.get(entity.ownership, "None"),
            "IsIntersect": entity.is_intersect,
        }
        await self._create(f"{self._root}Entities", body)
        self._full.pop(entity.logical_name, None)

    async def create_field(self, entity: str, field: FieldMeta) -> None:
        await self._create(f"{self._root}Entities('{entity}')/Attributes", field_to_wire(field))
        self._full.pop(entity, None)

    async def create_relationship(self, relationship: RelationshipMeta) -> None:
        await self._create(f"{self._root}Relationships", relationship_to_wire(relationship))
        self._relationships[relationship.schema_name] = relationship

    async def _create(self, path: str, body: dict[str, Any]) -> None:
        try:
            await self._http.request("POST", path, json_body=body, idempotent=True)
        except errors.ConcurrencyError:
            pass  # 409: it already exists (a re-run of provisioning)
