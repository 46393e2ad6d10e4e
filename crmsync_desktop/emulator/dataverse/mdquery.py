"""Metadata endpoints: ``EntityDefinitions`` (list, by id, by LogicalName, navigation collections,
attribute type casts), ``RelationshipDefinitions``, ``GlobalOptionSetDefinitions``, and the POSTs that
create tables, columns and relationships. Metadata is never paged.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from odata_query import ast as oast

from . import errors, schema
from .metadata import Attr, Entity, Metadata
from .odata import parse_expand, parse_filter, split_top

_CAST_RE = re.compile(r"^Microsoft\.Dynamics\.CRM\.([A-Za-z]+)$")
_KEY_RE = re.compile(r"^([A-Za-z]+)(?:\((.*)\))?$")
ENTITY_NAVS = ("Attributes", "Keys", "ManyToOneRelationships", "OneToManyRelationships", "ManyToManyRelationships")
_ATTR_NAVS = ("OptionSet", "GlobalOptionSet")
_RELATIONSHIP_BASE = {"MetadataId", "SchemaName", "RelationshipType", "IsCustomRelationship", "IsManaged",
                      "IsValidForAdvancedFind", "IsCustomizable", "SecurityTypes", "IntroducedVersion", "HasChanged"}


def _bad_property(type_name: str, name: str) -> errors.DataverseError:
    return errors.bad_request(f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{type_name}'.")


# ---- $filter evaluation over metadata objects ---------------------------------------------------------
def _eval(node: oast._Node, obj: dict[str, Any], type_name: str) -> Any:
    if isinstance(node, oast.Identifier):
        if node.name not in obj:
            raise _bad_property(type_name, node.name)
        return obj[node.name]
    if isinstance(node, oast.Attribute):
        owner = _eval(node.owner, obj, type_name)
        return owner.get(node.attr) if isinstance(owner, dict) else None
    if isinstance(node, oast.Null):
        return None
    if isinstance(node, oast.Boolean):
        return node.val == "true"
    if isinstance(node, (oast.String, oast.Integer, oast.Float)):
        return node.py_val
    if isinstance(node, oast.GUID):
        return str(node.val).lower()
    if isinstance(node, oast.List):
        return [_eval(n, obj, type_name) for n in node.val]
    if isinstance(node, oast.BoolOp):
        left = _eval(node.left, obj, type_name)
        if isinstance(node.op, oast.And):
            return bool(left) and bool(_eval(node.right, obj, type_name))
        return bool(left) or bool(_eval(node.right, obj, type_name))
    if isinstance(node, oast.UnaryOp) and isinstance(node.op, oast.Not):
        return not _eval(node.operand, obj, type_name)
    if isinstance(node, oast.Compare):
        left, right = _eval(node.left, obj, type_name), _eval(node.right, obj, type_name)
        if isinstance(left, str) and isinstance(right, str) and _looks_guid(right):
            left, right = left.lower(), right.lower()
        c = node.comparator
        if isinstance(c, oast.Eq):
            return left == right
        if isinstance(c, oast.NotEq):
            return left != right
        if isinstance(c, oast.In):
            return left in (right or [])
        if left is None or right is None:
            return False
        ops = {oast.Lt: lambda a, b: a < b, oast.LtE: lambda a, b: a <= b, oast.Gt: lambda a, b: a > b,
               oast.GtE: lambda a, b: a >= b}
        return ops[type(c)](left, right)
    if isinstance(node, oast.Call):
        name = node.func.name.lower()
        args = [_eval(a, obj, type_name) for a in node.args]
        if name in ("contains", "startswith", "endswith"):
            if not isinstance(args[0], str) or not isinstance(args[1], str):
                return False
            a, b = args[0].lower(), args[1].lower()
            return {"contains": b in a, "startswith": a.startswith(b), "endswith": a.endswith(b)}[name]
        if name in ("tolower", "toupper"):
            return args[0].lower() if name == "tolower" else args[0].upper()
    raise errors.bad_request("The metadata $filter uses an unsupported expression.")


def _looks_guid(s: str) -> bool:
    return bool(re.match(r"^[0-9a-fA-F-]{36}$", s))


def _filter(items: list[dict[str, Any]], text: str | None, type_name: str) -> list[dict[str, Any]]:
    if not text:
        return items
    tree = parse_filter(text)
    return [i for i in items if _eval(tree, i, type_name)]


def _select(obj: dict[str, Any], text: str | None, allowed: set[str] | None, type_name: str,
            keep: tuple[str, ...] = ("MetadataId",)) -> dict[str, Any]:
    if not text:
        return obj
    names = [n.strip() for n in text.split(",") if n.strip()]
    out: dict[str, Any] = {}
    if "@odata.type" in obj:
        out["@odata.type"] = obj["@odata.type"]
    for n in names:
        if (allowed is not None and n not in allowed) or (allowed is None and n not in obj):
            raise _bad_property(type_name, n)
        out[n] = obj.get(n)
    for k in keep:
        out.setdefault(k, obj.get(k))
    return out


# ---- rendering ---------------------------------------------------------------------------------------
def attribute_json(a: Attr, *, expand: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {k: v for k, v in a.meta.items() if k not in _ATTR_NAVS}
    for nav in expand:
        out[nav] = copy.deepcopy(a.meta.get(nav))
    return out


class MetadataApi:
    """Resolves and renders metadata URLs (path segments after the service root)."""

    def __init__(self, md: Metadata, root: str) -> None:
        self.md = md
        self.root = root

    def _entity_from_key(self, key: str) -> Entity:
        m = re.match(r"^LogicalName='([^']*)'$", key)
        ent = self.md.entities.get(m.group(1)) if m else self.md.by_id.get(key.strip("'").lower())
        if ent is None:
            raise errors.DataverseError(404, errors.OBJECT_DOES_NOT_EXIST,
                                        f"Could not find an entity with {key}.")
        return ent

    def entity_json(self, ent: Entity, query: dict[str, str]) -> dict[str, Any]:
        base = dict(ent.meta)
        out = _select(base, query.get("$select"), set(base), "EntityMetadata")
        for item in parse_expand(query.get("$expand")):
            if item.nav not in ENTITY_NAVS:
                raise _bad_property("EntityMetadata", item.nav)
            sub = {"$select": item.select or "", "$filter": item.filter or ""}
            if item.nav == "Attributes":
                out["Attributes"] = self._attributes(ent, None, sub, nested=True)
            else:
                out[item.nav] = self._nav_collection(ent, item.nav, sub)
        return out

    def get(self, segments: list[str], query: dict[str, str]) -> dict[str, Any]:
        head = _KEY_RE.match(segments[0])
        if head is None:
            raise errors.segment_not_found(segments[0])
        name, key = head.group(1), head.group(2)
        if name == "EntityDefinitions":
            return self._get_entity_definitions(key, segments[1:], query)
        if name == "RelationshipDefinitions":
            return self._get_relationships(key, segments[1:], query)
        if name == "GlobalOptionSetDefinitions":
            if key is not None:
                raise errors.DataverseError(404, errors.OBJECT_DOES_NOT_EXIST,
                                            f"Could not find optionset with {key}.")
            return {"@odata.context": f"{self.root}/$metadata#GlobalOptionSetDefinitions", "value": []}
        raise errors.segment_not_found(segments[0])

    def _get_entity_definitions(self, key: str | None, rest: list[str], query: dict[str, str]) -> dict[str, Any]:
        sel = query.get("$select")
        ctx_sel = f"({sel})" if sel else ""
        if key is None:
            if rest:
                raise errors.segment_not_found(rest[0])
            items = [dict(e.meta) for e in self.md.entities.values()]
            items = _filter(items, query.get("$filter"), "EntityMetadata")
            wanted = {i["LogicalName"] for i in items}
            value = [self.entity_json(e, query) for e in self.md.entities.values() if e.logical in wanted]
            return {"@odata.context": f"{self.root}/$metadata#EntityDefinitions{ctx_sel}", "value": value}
        ent = self._entity_from_key(key)
        if not rest:
            body = {"@odata.context": f"{self.root}/$metadata#EntityDefinitions{ctx_sel}/$entity"}
            body.update(self.entity_json(ent, query))
            return body
        nav_m = _KEY_RE.match(rest[0])
        if nav_m is None or nav_m.group(1) not in ENTITY_NAVS:
            if rest[0] in ent.meta and len(rest) <= 2:
                value = ent.meta[rest[0]]
                return {"@odata.context": f"{self.root}/$metadata#EntityDefinitions('{ent.meta['MetadataId']}')"
                                          f"/{rest[0]}", "value": value}
            raise errors.segment_not_found(rest[0])
        nav, nav_key = nav_m.group(1), nav_m.group(2)
        prefix = f"{self.root}/$metadata#EntityDefinitions('{ent.meta['MetadataId']}')/{nav}"
        if nav != "Attributes":
            if nav_key is not None or len(rest) > 1:
                raise errors.segment_not_found("/".join(rest))
            return {"@odata.context": prefix + ctx_sel, "value": self._nav_collection(ent, nav, query)}
        cast = None
        tail = rest[1:]
        if tail:
            cm = _CAST_RE.match(tail[0])
            if cm is None or cm.group(1) not in schema.CAST_TO_TYPES or len(tail) > 1:
                raise errors.segment_not_found(tail[0])
            cast = cm.group(1)
        if nav_key is None:
            value = self._attributes(ent, cast, query, nested=False)
            cast_ctx = f"/Microsoft.Dynamics.CRM.{cast}" if cast else ""
            return {"@odata.context": prefix + cast_ctx + ctx_sel, "value": value}
        m = re.match(r"^LogicalName='([^']*)'$", nav_key)
        a = ent.attrs.get(m.group(1)) if m else self.md.attribute_by_id.get(nav_key.strip("'").lower())
        if a is None or a.entity != ent.logical:
            raise errors.DataverseError(404, errors.OBJECT_DOES_NOT_EXIST,
                                        f"Could not find attribute with {nav_key} on entity {ent.logical}.")
        if cast is not None and a.atype not in schema.CAST_TO_TYPES[cast]:
            raise errors.DataverseError(404, errors.ODATA_BAD_REQUEST,
                                        f"The attribute '{a.logical}' is not a {cast}.")
        body = {"@odata.context": prefix + (f"/Microsoft.Dynamics.CRM.{cast}" if cast else "") + "/$entity"}
        body.update(self._attribute_out(a, cast, query))
        return body

    def _attribute_out(self, a: Attr, cast: str | None, query: dict[str, str]) -> dict[str, Any]:
        expand = tuple(i.nav for i in parse_expand(query.get("$expand")))
        for nav in expand:
            if cast is None or nav not in _ATTR_NAVS or nav not in a.meta and nav != "GlobalOptionSet":
                raise _bad_property(cast or "AttributeMetadata", nav)
        full = attribute_json(a)
        allowed = None if cast else schema.BASE_ATTRIBUTE_PROPERTIES | {"@odata.type"}
        out = dict(_select(full, query.get("$select"), allowed, cast or "AttributeMetadata"))
        for nav in expand:
            out[nav] = copy.deepcopy(a.meta.get(nav))
        return out

    def _attributes(self, ent: Entity, cast: str | None, query: dict[str, str], *, nested: bool) -> list[dict]:
        attrs = [a for a in ent.attrs.values() if cast is None or a.atype in schema.CAST_TO_TYPES[cast]]
        items = [attribute_json(a) for a in attrs]
        items = _filter(items, query.get("$filter"), cast or "AttributeMetadata")
        keep = {i["MetadataId"] for i in items}
        return [self._attribute_out(a, cast, query) for a in attrs if a.meta["MetadataId"] in keep]

    def _nav_collection(self, ent: Entity, nav: str, query: dict[str, str]) -> list[dict[str, Any]]:
        if nav == "Keys":
            items = [dict(k) for k in ent.keys]
            type_name = "EntityKeyMetadata"
        else:
            rels = list(self.md.relationships.values())
            if nav == "ManyToOneRelationships":
                items = [r for r in rels if r["RelationshipType"] == "OneToManyRelationship"
                         and r["ReferencingEntity"] == ent.logical]
            elif nav == "OneToManyRelationships":
                items = [r for r in rels if r["RelationshipType"] == "OneToManyRelationship"
                         and r["ReferencedEntity"] == ent.logical]
            else:
                items = [r for r in rels if r["RelationshipType"] == "ManyToManyRelationship"
                         and ent.logical in (r["Entity1LogicalName"], r["Entity2LogicalName"])]
            items = [{k: v for k, v in r.items() if k != "@odata.type"} for r in items]
            type_name = "OneToManyRelationshipMetadata" if nav != "ManyToManyRelationships" else \
                "ManyToManyRelationshipMetadata"
        items = _filter(items, query.get("$filter"), type_name)
        return [_select(i, query.get("$select"), set(i) if items else None, type_name) for i in items]

    def _get_relationships(self, key: str | None, rest: list[str], query: dict[str, str]) -> dict[str, Any]:
        rels = list(self.md.relationships.values())
        sel = query.get("$select")
        ctx = f"{self.root}/$metadata#RelationshipDefinitions"
        if key is not None:
            m = re.match(r"^SchemaName='([^']*)'$", key)
            found = [r for r in rels if (r["SchemaName"] == m.group(1) if m else
                                         r["MetadataId"] == key.strip("'").lower())]
            if not found:
                raise errors.DataverseError(404, errors.OBJECT_DOES_NOT_EXIST,
                                            f"Could not find relationship with {key}.")
            body = {"@odata.context": ctx + (f"({sel})" if sel else "") + "/$entity"}
            body.update(_select(found[0], sel, set(found[0]), "RelationshipMetadataBase"))
            return body
        cast = None
        if rest:
            cm = _CAST_RE.match(rest[0])
            if cm is None or cm.group(1) not in ("OneToManyRelationshipMetadata", "ManyToManyRelationshipMetadata"):
                raise errors.segment_not_found(rest[0])
            cast = cm.group(1)
            rels = [r for r in rels if r["@odata.type"].endswith(cast)]
        type_name = cast or "RelationshipMetadataBase"
        rels = _filter(rels, query.get("$filter"), type_name)
        allowed = None if cast else _RELATIONSHIP_BASE
        value = [_select(r, sel, allowed if allowed else set(r), type_name) for r in rels]
        return {"@odata.context": ctx + (f"/Microsoft.Dynamics.CRM.{cast}" if cast else "") +
                                  (f"({sel})" if sel else ""), "value": value}

    # ---- POST ----------------------------------------------------------------------------------------
    def post(self, segments: list[str], body: Any, now: str) -> str:
        """Create a definition; returns the OData-EntityId path (relative to the service root)."""
        if not isinstance(body, dict):
            raise errors.bad_request("The request body must be a JSON object.", errors.PAYLOAD_ERROR)
        head = _KEY_RE.match(segments[0])
        name, key = (head.group(1), head.group(2)) if head else ("", None)
        if name == "EntityDefinitions" and key is None and len(segments) == 1:
            mid = self.md.create_entity(body, now)
            return f"EntityDefinitions({mid})"
        if name == "EntityDefinitions" and key is not None and segments[1:] == ["Attributes"]:
            ent = self._entity_from_key(key)
            mid = self.md.create_attribute(ent.logical, body, now)
            return f"EntityDefinitions(LogicalName='{ent.logical}')/Attributes({mid})"
        if name == "RelationshipDefinitions" and key is None and len(segments) == 1:
            mid = self.md.create_relationship(body, now)
            return f"RelationshipDefinitions({mid})"
        raise errors.method_not_allowed()


    # ---- PUT ------------------------------------------------------------------------------------------
    def put(self, segments: list[str], body: Any, *, merge_labels: bool, now: str) -> None:
        """Update a definition with its complete body (only ``EntityDefinitions(key)`` is supported)."""
        if not isinstance(body, dict):
            raise errors.bad_request("The request body must be a JSON object.", errors.PAYLOAD_ERROR)
        head = _KEY_RE.match(segments[0])
        name, key = (head.group(1), head.group(2)) if head else ("", None)
        if name == "EntityDefinitions" and key is not None and len(segments) == 1:
            ent = self._entity_from_key(key)
            self.md.update_entity(ent.logical, body, merge_labels=merge_labels, now=now)
            return
        raise errors.DataverseError(405, errors.INVALID_ARGUMENT,
                                    "Only PUT EntityDefinitions(<key>) is supported by the emulator.")


def split_path(path: str) -> list[str]:
    """Split a resource path on '/' outside parentheses and quotes."""
    return split_top(path, "/")
