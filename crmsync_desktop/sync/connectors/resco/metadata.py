"""Resco Cloud metadata and provisioning (list, read, create entities and fields) — ONE module.

The Resco wiki says a metadata service exists but its methods could not be read (resco.md §7.1,
§11.10). The shapes below are an ASSUMPTION TO VERIFY AGAINST A LIVE ORGANIZATION, stated once in
docs/emulator.md section "Resco Cloud" → "Metadata service" (the emulator serves exactly them):

* Root ``{base}/rest/v1/metadata/{org}/`` (configurable), JSON bodies, Basic auth.
* ``GET entities`` -> ``{"value": [Entity]}``; ``GET entities/{name}`` -> Entity, with Entity =
  ``{"name", "display_name", "primary_name", "system", "fields": [Field]}`` and Field =
  ``{"name", "type", "display_name", "max_length", "required", "options": [{"value", "label"}],
  "targets": [...], "system"}``. Types: ``string memo int bigint decimal double money bool datetime
  picklist lookup uniqueidentifier rowversion``. Every entity has the system fields ``id`` (primary
  key), ``createdon``, ``modifiedon``, ``createdby``, ``modifiedby``, ``ownerid`` and ``versionnumber``.
* ``POST entities`` ``{"name", "display_name", "primary_name"}`` and ``POST entities/{name}/fields``
  (a Field) -> 201; 409 when it already exists, which counts as success (provisioning is re-runnable).
* ``PATCH entities/{name}`` ``{"display_name"}`` and ``PATCH entities/{name}/fields/{field}`` with any of
  ``{"display_name", "max_length", "required", "options", "targets"}`` -> 200 with the changed Entity /
  Field (Update Server: relabel, widen, add choices/targets). Name and type never change; a length
  never narrows; options and targets given are added (or relabelled), never removed; 404 when it does
  not exist, 400 when the change is refused.
* Relationships are not a resource of their own: a 1:N relationship is a lookup field (its
  ``targets``), so they are derived from the fields. N:N relationships are not supported.
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

PRIMARY_ID = "id"
SYSTEM_FIELDS = frozenset({"id", "createdon", "modifiedon", "createdby", "modifiedby", "ownerid", "versionnumber"})
_FROM_RESCO = {
    "uniqueidentifier": FieldType.UNIQUEIDENTIFIER,
    "string": FieldType.STRING,
    "memo": FieldType.MEMO,
    "int": FieldType.INTEGER,
    "bigint": FieldType.BIGINT,
    "decimal": FieldType.DECIMAL,
    "double": FieldType.DOUBLE,
    "money": FieldType.MONEY,
    "bool": FieldType.BOOLEAN,
    "datetime": FieldType.DATETIME,
    "picklist": FieldType.PICKLIST,
    "lookup": FieldType.LOOKUP,
    "rowversion": FieldType.ROWVERSION,
}
# Lossy where Resco has no equivalent: state/status -> picklist, owner -> lookup.
_TO_RESCO = {
    FieldType.UNIQUEIDENTIFIER: "uniqueidentifier",
    FieldType.STRING: "string",
    FieldType.MEMO: "memo",
    FieldType.INTEGER: "int",
    FieldType.BIGINT: "bigint",
    FieldType.DECIMAL: "decimal",
    FieldType.DOUBLE: "double",
    FieldType.MONEY: "money",
    FieldType.BOOLEAN: "bool",
    FieldType.DATETIME: "datetime",
    FieldType.PICKLIST: "picklist",
    FieldType.STATE: "picklist",
    FieldType.STATUS: "picklist",
    FieldType.LOOKUP: "lookup",
    FieldType.OWNER: "lookup",
}


def _values(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise errors.RemoteError("Resco Cloud returned a metadata list without a 'value' array.")
    return [v for v in body["value"] if isinstance(v, dict)]


def field_from_wire(a: dict[str, Any], primary_name: str | None) -> FieldMeta:
    name = str(a["name"])
    kind = _FROM_RESCO.get(str(a.get("type") or ""), FieldType.OTHER)
    if name == "ownerid" and kind is FieldType.LOOKUP:
        kind = FieldType.OWNER
    system = bool(a.get("system")) or name in SYSTEM_FIELDS
    writable = not system or name == "ownerid"
    return FieldMeta(
        logical_name=name,
        type=kind,
        label=str(a.get("display_name") or ""),
        targets=tuple(str(t) for t in a.get("targets") or ()),
        options=tuple(OptionMeta(int(o["value"]), str(o.get("label") or "")) for o in a.get("options") or ()),
        max_length=a.get("max_length"),
        required=bool(a.get("required")),
        is_primary_id=name == PRIMARY_ID,
        is_primary_name=name == primary_name,
        valid_for_create=writable,
        valid_for_update=writable,
        is_custom=not system,
    )


def entity_from_wire(e: dict[str, Any], *, with_fields: bool) -> EntityMeta:
    name = str(e["name"])
    primary_name = str(e.get("primary_name") or "") or None
    fields = (
        tuple(sorted((field_from_wire(a, primary_name) for a in e.get("fields") or ()), key=lambda f: f.logical_name))
        if with_fields
        else ()
    )
    return EntityMeta(
        logical_name=name,
        label=str(e.get("display_name") or ""),
        collection_label=str(e.get("display_name") or ""),
        entity_set_name=name,
        primary_id=PRIMARY_ID,
        primary_name=primary_name or "",
        ownership=Ownership.USER,  # every Resco Cloud record has ownerid
        change_tracking=True,  # row versions + GetDeletedRecords tombstones (docs/emulator.md)
        is_intersect=False,
        is_custom=not bool(e.get("system")),
        fields=fields,
    )


def field_to_wire(f: FieldMeta) -> dict[str, Any]:
    if f.type not in _TO_RESCO:
        raise errors.ValidationError(f"A {f.type} field ({f.logical_name}) cannot be created in Resco Cloud.")
    body: dict[str, Any] = {
        "name": f.logical_name,
        "type": _TO_RESCO[f.type],
        "display_name": f.label or f.logical_name,
        "required": f.required,
    }
    if f.targets:
        body["targets"] = list(f.targets)
    if f.options:
        body["options"] = [{"value": o.value, "label": o.label} for o in f.options]
    if f.max_length is not None and f.type in (FieldType.STRING, FieldType.MEMO):
        body["max_length"] = f.max_length
    return body


def field_update_to_wire(f: FieldMeta) -> dict[str, Any]:
    """The PATCH body of a column change: what may change, never the name or type (docs/emulator.md)."""
    if f.type not in _TO_RESCO:
        raise errors.ValidationError(f"A {f.type} field ({f.logical_name}) does not exist in Resco Cloud.")
    body: dict[str, Any] = {"display_name": f.label or f.logical_name, "required": f.required}
    if f.max_length is not None and f.type in (FieldType.STRING, FieldType.MEMO):
        body["max_length"] = f.max_length
    if f.options and f.type in (FieldType.PICKLIST, FieldType.STATE, FieldType.STATUS):
        body["options"] = [{"value": o.value, "label": o.label} for o in f.options]
    if f.targets and f.type.is_lookup:
        body["targets"] = list(f.targets)
    return body


def relationships_of(entity: EntityMeta, others: list[EntityMeta]) -> list[RelationshipMeta]:
    """1:N relationships from lookup fields: those of ``entity`` and those of others pointing at it."""
    out: list[RelationshipMeta] = []
    for meta in others:
        for f in meta.fields:
            if not f.type.is_lookup:
                continue
            for target in f.targets:
                if meta.logical_name != entity.logical_name and target != entity.logical_name:
                    continue
                out.append(
                    RelationshipMeta(
                        schema_name=f"{meta.logical_name}_{f.logical_name}_{target}",
                        kind=RelationshipKind.ONE_TO_MANY,
                        referenced_entity=target,
                        referenced_attribute=PRIMARY_ID,
                        referencing_entity=meta.logical_name,
                        referencing_attribute=f.logical_name,
                        referencing_navigation=f.logical_name,
                    )
                )
    return out


class RescoMetadata:
    """Reads (cached) and provisions Resco Cloud schema through the assumed metadata service."""

    def __init__(self, http: HttpTransport, root: str) -> None:
        self._http = http
        self._root = root
        self._full: dict[str, EntityMeta] = {}

    def invalidate(self) -> None:
        self._full.clear()

    async def _all(self) -> list[EntityMeta]:
        body = await self._http.get_json(f"{self._root}entities")
        metas = [entity_from_wire(e, with_fields=True) for e in _values(body)]
        self._full.update({m.logical_name: m for m in metas})
        return metas

    async def list_entities(self) -> list[EntityMeta]:
        body = await self._http.get_json(f"{self._root}entities")
        return sorted((entity_from_wire(e, with_fields=False) for e in _values(body)), key=lambda e: e.logical_name)

    async def get_entity(self, name: str) -> EntityMeta:
        if name not in self._full:
            try:
                body = await self._http.get_json(f"{self._root}entities/{name}")
            except errors.NotFoundError as exc:
                raise errors.NotFoundError(
                    f"The entity {name!r} does not exist in the Resco Cloud organization. Run Update Server/metadata sync first.",
                    entity=name, status=404,
                ) from exc
            self._full[name] = entity_from_wire(body, with_fields=True)
        return self._full[name]

    async def list_relationships(self, name: str) -> list[RelationshipMeta]:
        entity = await self.get_entity(name)
        return relationships_of(entity, await self._all())

    async def create_entity(self, entity: EntityMeta) -> None:
        body = {
            "name": entity.logical_name,
            "display_name": entity.label or entity.logical_name,
            "primary_name": entity.primary_name or "name",
        }
        await self._create(f"{self._root}entities", body)
        self._full.pop(entity.logical_name, None)

    async def create_field(self, entity: str, field: FieldMeta) -> None:
        if field.logical_name in SYSTEM_FIELDS:
            return  # every Resco Cloud entity has them already
        await self._create(f"{self._root}entities/{entity}/fields", field_to_wire(field))
        self._full.pop(entity, None)

    async def update_entity(self, entity: EntityMeta) -> None:
        """Relabel a table (Resco Cloud has one display name: ``label``, else ``collection_label``).

        ``change_tracking`` needs nothing: Resco Cloud always tracks changes.
        """
        label = entity.label or entity.collection_label
        if label:
            await self._http.request("PATCH", f"{self._root}entities/{entity.logical_name}",
                                     json_body={"display_name": label}, idempotent=True)
        self._full.pop(entity.logical_name, None)

    async def update_field(self, entity: str, field: FieldMeta) -> None:
        """Change label, max length, options, targets, required of a column (PATCH, idempotent); never its type.

        System columns (``id``, ``createdon``, ``ownerid``, ...) are Resco Cloud's own: left alone.
        """
        if field.logical_name in SYSTEM_FIELDS:
            return
        await self._http.request("PATCH", f"{self._root}entities/{entity}/fields/{field.logical_name}",
                                 json_body=field_update_to_wire(field), idempotent=True)
        self._full.pop(entity, None)

    async def create_relationship(self, relationship: RelationshipMeta) -> None:
        """A 1:N relationship is its lookup field; N:N relationships are not supported (docs/emulator.md)."""
        if relationship.kind is RelationshipKind.MANY_TO_MANY:
            raise errors.ConfigError(
                f"Resco Cloud many-to-many relationships ({relationship.schema_name}) cannot be created by crmsync yet; "
                "create the relationship in the Resco Admin Console.",
                entity=relationship.entity1,
            )
        entity = await self.get_entity(relationship.referencing_entity)
        if entity.field(relationship.referencing_attribute) is None:
            await self.create_field(
                relationship.referencing_entity,
                FieldMeta(relationship.referencing_attribute, FieldType.LOOKUP, targets=(relationship.referenced_entity,)),
            )

    async def _create(self, path: str, body: dict[str, Any]) -> None:
        try:
            await self._http.request("POST", path, json_body=body, idempotent=True)
        except errors.ConcurrencyError:
            pass  # 409: it already exists (a re-run of provisioning)
