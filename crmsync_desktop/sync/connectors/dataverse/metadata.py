"""Dataverse table, column and relationship definitions (docs §3), cached per connector.

Also resolves what writes need: entity set names, and the case-sensitive navigation property
behind a lookup column (``ManyToOneRelationships.ReferencingEntityNavigationPropertyName``).
Metadata queries are never paged (docs §3.1).
"""

from __future__ import annotations

import asyncio
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

ENTITY_SELECT = (
    "LogicalName,SchemaName,EntitySetName,DisplayName,DisplayCollectionName,PrimaryIdAttribute,"
    "PrimaryNameAttribute,OwnershipType,ChangeTrackingEnabled,IsIntersect,IsCustomEntity"
)
ATTRIBUTE_SELECT = (
    "LogicalName,SchemaName,AttributeType,AttributeTypeName,DisplayName,IsPrimaryId,IsPrimaryName,"
    "IsValidForCreate,IsValidForUpdate,RequiredLevel,AttributeOf,IsCustomAttribute"
)
M2O_SELECT = (
    "SchemaName,ReferencedEntity,ReferencedAttribute,ReferencingEntity,ReferencingAttribute,"
    "ReferencingEntityNavigationPropertyName,ReferencedEntityNavigationPropertyName"
)
N2N_SELECT = (
    "SchemaName,Entity1LogicalName,Entity2LogicalName,IntersectEntityName,Entity1IntersectAttribute,"
    "Entity2IntersectAttribute,Entity1NavigationPropertyName,Entity2NavigationPropertyName"
)
_TYPES = {
    "String": FieldType.STRING,
    "Memo": FieldType.MEMO,
    "Integer": FieldType.INTEGER,
    "BigInt": FieldType.BIGINT,
    "Decimal": FieldType.DECIMAL,
    "Double": FieldType.DOUBLE,
    "Money": FieldType.MONEY,
    "Boolean": FieldType.BOOLEAN,
    "DateTime": FieldType.DATETIME,
    "Picklist": FieldType.PICKLIST,
    "State": FieldType.STATE,
    "Status": FieldType.STATUS,
    "Lookup": FieldType.LOOKUP,
    "Customer": FieldType.LOOKUP,
    "Owner": FieldType.OWNER,
    "Uniqueidentifier": FieldType.UNIQUEIDENTIFIER,
}
_OPTION_CASTS = {
    "PicklistAttributeMetadata": "OptionSet,GlobalOptionSet",
    "MultiSelectPicklistAttributeMetadata": "OptionSet,GlobalOptionSet",
    "StateAttributeMetadata": "OptionSet",
    "StatusAttributeMetadata": "OptionSet",
}


def label_of(value: Any) -> str:
    """The user's label from a Label complex value (``UserLocalizedLabel``, else the first localized one)."""
    if not isinstance(value, dict):
        return ""
    user = value.get("UserLocalizedLabel")
    if isinstance(user, dict) and user.get("Label"):
        return str(user["Label"])
    for loc in value.get("LocalizedLabels") or ():
        if isinstance(loc, dict) and loc.get("Label"):
            return str(loc["Label"])
    return ""


def _single(body: Any) -> dict[str, Any]:
    """A single-key GET answers with an object, or (docs §12) with a one-element ``value`` array."""
    if isinstance(body, dict) and isinstance(body.get("value"), list):
        if not body["value"]:
            raise errors.NotFoundError("The requested definition does not exist in the organization.", status=404)
        return dict(body["value"][0])
    if not isinstance(body, dict):
        raise errors.RemoteError("The organization returned a metadata answer that is not an object.")
    return body


def _values(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise errors.RemoteError("The organization returned a metadata list without a 'value' array.")
    return [v for v in body["value"] if isinstance(v, dict)]


def entity_from_wire(e: dict[str, Any], fields: tuple[FieldMeta, ...] = ()) -> EntityMeta:
    ownership = str(e.get("OwnershipType") or "")
    return EntityMeta(
        logical_name=str(e["LogicalName"]),
        label=label_of(e.get("DisplayName")),
        collection_label=label_of(e.get("DisplayCollectionName")),
        schema_name=str(e.get("SchemaName") or ""),
        entity_set_name=str(e.get("EntitySetName") or ""),
        primary_id=str(e.get("PrimaryIdAttribute") or ""),
        primary_name=str(e.get("PrimaryNameAttribute") or ""),
        ownership=(
            Ownership.USER
            if ownership in ("UserOwned", "TeamOwned")
            else Ownership.NONE
            if ownership == "None"
            else Ownership.ORGANIZATION
        ),
        change_tracking=bool(e.get("ChangeTrackingEnabled")),
        is_intersect=bool(e.get("IsIntersect")),
        is_custom=bool(e.get("IsCustomEntity")),
        fields=fields,
    )


def field_type_of(a: dict[str, Any]) -> FieldType:
    type_name = (a.get("AttributeTypeName") or {}).get("Value") if isinstance(a.get("AttributeTypeName"), dict) else None
    if type_name == "MultiSelectPicklistType":
        return FieldType.MULTI_PICKLIST
    return _TYPES.get(str(a.get("AttributeType") or ""), FieldType.OTHER)


def options_of(a: dict[str, Any]) -> tuple[OptionMeta, ...]:
    opts: list[OptionMeta] = []
    for key in ("OptionSet", "GlobalOptionSet"):
        oset = a.get(key)
        if isinstance(oset, dict):
            for o in oset.get("Options") or ():
                if isinstance(o, dict) and o.get("Value") is not None:
                    opts.append(OptionMeta(value=int(o["Value"]), label=label_of(o.get("Label"))))
            if opts:
                break
    return tuple(opts)


def relationship_from_wire(r: dict[str, Any]) -> RelationshipMeta:
    if r.get("IntersectEntityName") or str(r.get("@odata.type", "")).endswith("ManyToManyRelationshipMetadata"):
        return RelationshipMeta(
            schema_name=str(r["SchemaName"]),
            kind=RelationshipKind.MANY_TO_MANY,
            entity1=str(r.get("Entity1LogicalName") or ""),
            entity2=str(r.get("Entity2LogicalName") or ""),
            intersect_entity=str(r.get("IntersectEntityName") or ""),
            entity1_intersect_attribute=str(r.get("Entity1IntersectAttribute") or ""),
            entity2_intersect_attribute=str(r.get("Entity2IntersectAttribute") or ""),
            entity1_navigation=str(r.get("Entity1NavigationPropertyName") or ""),
            entity2_navigation=str(r.get("Entity2NavigationPropertyName") or ""),
        )
    return RelationshipMeta(
        schema_name=str(r["SchemaName"]),
        kind=RelationshipKind.ONE_TO_MANY,
        referenced_entity=str(r.get("ReferencedEntity") or ""),
        referenced_attribute=str(r.get("ReferencedAttribute") or ""),
        referencing_entity=str(r.get("ReferencingEntity") or ""),
        referencing_attribute=str(r.get("ReferencingAttribute") or ""),
        referencing_navigation=str(r.get("ReferencingEntityNavigationPropertyName") or ""),
        referenced_navigation=str(r.get("ReferencedEntityNavigationPropertyName") or ""),
    )


class MetadataService:
    """Reads and caches definitions. Clear the cache (:meth:`invalidate`) when the schema changes."""

    def __init__(self, http: HttpTransport) -> None:
        self._http = http
        self._entities: dict[str, EntityMeta] | None = None
        self._full: dict[str, EntityMeta] = {}
        self._m2o: dict[str, list[RelationshipMeta]] = {}
        self._n2n: dict[str, RelationshipMeta] = {}
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._entities = None
        self._full.clear()
        self._m2o.clear()
        self._n2n.clear()

    async def list_entities(self) -> list[EntityMeta]:
        if self._entities is None:
            body = await self._http.get_json("EntityDefinitions", params={"$select": ENTITY_SELECT})
            self._entities = {e.logical_name: e for e in map(entity_from_wire, _values(body))}
        return sorted(self._entities.values(), key=lambda e: e.logical_name)

    async def entity_set(self, logical_name: str) -> str:
        """The entity set name used in data URLs (``account`` -> ``accounts``)."""
        if logical_name in self._full:
            return self._full[logical_name].entity_set_name
        await self.list_entities()
        assert self._entities is not None
        meta = self._entities.get(logical_name)
        if meta is None or not meta.entity_set_name:
            raise errors.NotFoundError(
                f"The entity {logical_name!r} does not exist in the Dataverse organization (or has no entity set).",
                entity=logical_name,
            )
        return meta.entity_set_name

    async def get_entity(self, logical_name: str) -> EntityMeta:
        if logical_name in self._full:
            return self._full[logical_name]
        async with self._lock:
            if logical_name not in self._full:
                self._full[logical_name] = await self._load_entity(logical_name)
        return self._full[logical_name]

    async def _load_entity(self, name: str) -> EntityMeta:
        base = f"EntityDefinitions(LogicalName='{name}')"
        try:
            ent = _single(
                await self._http.get_json(
                    base, params={"$select": ENTITY_SELECT, "$expand": f"Attributes($select={ATTRIBUTE_SELECT})"}
                )
            )
        except errors.NotFoundError as exc:
            raise errors.NotFoundError(
                f"The entity {name!r} does not exist in the Dataverse organization.", entity=name, status=404
            ) from exc
        targets: dict[str, tuple[str, ...]] = {}
        for a in _values(
            await self._http.get_json(
                f"{base}/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata",
                params={"$select": "LogicalName,Targets"},
            )
        ):
            targets[str(a["LogicalName"])] = tuple(str(t) for t in a.get("Targets") or ())
        options: dict[str, tuple[OptionMeta, ...]] = {}
        for cast, expand in _OPTION_CASTS.items():
            for a in _values(
                await self._http.get_json(
                    f"{base}/Attributes/Microsoft.Dynamics.CRM.{cast}",
                    params={"$select": "LogicalName", "$expand": expand},
                )
            ):
                options[str(a["LogicalName"])] = options_of(a)
        max_lengths: dict[str, int] = {}
        for a in _values(
            await self._http.get_json(
                f"{base}/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata",
                params={"$select": "LogicalName,MaxLength"},
            )
        ):
            if a.get("MaxLength") is not None:
                max_lengths[str(a["LogicalName"])] = int(a["MaxLength"])
        fields: list[FieldMeta] = []
        for a in ent.get("Attributes") or ():
            if not isinstance(a, dict) or a.get("AttributeOf"):
                continue  # shadow columns such as <lookup>name
            ln = str(a["LogicalName"])
            required = a.get("RequiredLevel")
            fields.append(
                FieldMeta(
                    logical_name=ln,
                    type=field_type_of(a),
                    label=label_of(a.get("DisplayName")),
                    schema_name=str(a.get("SchemaName") or ""),
                    targets=targets.get(ln, ()),
                    options=options.get(ln, ()),
                    max_length=max_lengths.get(ln),
                    required=isinstance(required, dict)
                    and required.get("Value") in ("ApplicationRequired", "SystemRequired"),
                    is_primary_id=bool(a.get("IsPrimaryId")),
                    is_primary_name=bool(a.get("IsPrimaryName")),
                    valid_for_create=a.get("IsValidForCreate") is not False,
                    valid_for_update=a.get("IsValidForUpdate") is not False,
                    is_custom=bool(a.get("IsCustomAttribute")),
                )
            )
        return entity_from_wire(ent, tuple(sorted(fields, key=lambda f: f.logical_name)))

    async def enable_change_tracking(self, name: str) -> bool:
        """Switch on ``ChangeTrackingEnabled`` (docs §3.2/§5): retrieve the complete definition, set it, PUT it back.

        Metadata cannot be PATCHed: the whole definition goes back with ``MSCRM.MergeLabels: true`` so
        labels in other languages are kept. Irreversible. Returns ``False`` when it was on already.
        Raises ``ValidationError`` when the table cannot be tracked (``CanChangeTrackingBeEnabled``).
        """
        key = f"EntityDefinitions(LogicalName='{name}')"
        try:
            definition = _single(await self._http.get_json(key))
        except errors.NotFoundError as exc:
            raise errors.NotFoundError(
                f"The entity {name!r} does not exist in the Dataverse organization.", entity=name, status=404
            ) from exc
        if definition.get("ChangeTrackingEnabled"):
            return False
        can = definition.get("CanChangeTrackingBeEnabled")
        if isinstance(can, dict) and can.get("Value") is False:
            raise errors.ValidationError(
                f"Dataverse does not allow change tracking for the table {name!r}; use another deletion method.",
                entity=name,
            )
        body = {k: v for k, v in definition.items() if "@" not in k}
        body["@odata.type"] = "Microsoft.Dynamics.CRM.EntityMetadata"
        body["ChangeTrackingEnabled"] = True
        target = f"EntityDefinitions({definition['MetadataId']})" if definition.get("MetadataId") else key
        await self._http.request("PUT", target, json_body=body, headers={"MSCRM.MergeLabels": "true"})
        self.invalidate()
        return True

    async def many_to_one(self, logical_name: str) -> list[RelationshipMeta]:
        if logical_name not in self._m2o:
            body = await self._http.get_json(
                f"EntityDefinitions(LogicalName='{logical_name}')/ManyToOneRelationships",
                params={"$select": M2O_SELECT},
            )
            self._m2o[logical_name] = [relationship_from_wire(r) for r in _values(body)]
        return self._m2o[logical_name]

    async def list_relationships(self, logical_name: str) -> list[RelationshipMeta]:
        base = f"EntityDefinitions(LogicalName='{logical_name}')"
        m2o = await self.many_to_one(logical_name)
        o2m = _values(await self._http.get_json(f"{base}/OneToManyRelationships", params={"$select": M2O_SELECT}))
        n2n = _values(await self._http.get_json(f"{base}/ManyToManyRelationships", params={"$select": N2N_SELECT}))
        rels = m2o + [relationship_from_wire(r) for r in o2m]
        for r in n2n:
            meta = relationship_from_wire({**r, "@odata.type": "#Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata"})
            self._n2n[meta.schema_name] = meta
            rels.append(meta)
        return rels

    async def many_to_many(self, schema_name: str) -> RelationshipMeta:
        if schema_name not in self._n2n:
            try:
                body = _single(await self._http.get_json(f"RelationshipDefinitions(SchemaName='{schema_name}')"))
            except errors.NotFoundError as exc:
                raise errors.NotFoundError(
                    f"The relationship {schema_name!r} does not exist in the Dataverse organization.", status=404
                ) from exc
            meta = relationship_from_wire(body)
            if meta.kind is not RelationshipKind.MANY_TO_MANY:
                raise errors.ValidationError(f"{schema_name!r} is not a many-to-many relationship.")
            self._n2n[schema_name] = meta
        return self._n2n[schema_name]

    async def navigation_property(self, entity: str, attribute: str, target: str) -> str:
        """The single-valued navigation property to bind ``attribute`` of ``entity`` to a ``target`` record.

        Polymorphic lookups (Customer, Regarding) have one per target, e.g. ``parentcustomerid_account``.
        """
        if attribute == "ownerid":
            return "ownerid"
        for rel in await self.many_to_one(entity):
            if rel.referencing_attribute == attribute and rel.referenced_entity == target and rel.referencing_navigation:
                return rel.referencing_navigation
        raise errors.ValidationError(
            f"{entity}.{attribute} cannot point to a {target} record: no relationship links them in the "
            "Dataverse organization. Check the field mapping.",
            entity=entity,
        )
