"""Metadata as stored data: the definitions live in the org's SQLite file; this module loads them into a
compact in-memory model (tables, columns, navigation properties) and applies POSTed definitions.

The model is what the request path uses (never the JSON blobs): per table, the column plan,
navigation properties for ``@odata.bind``/``$expand``/``$ref``, and an SQLAlchemy ``Table`` used only
to translate ``$filter`` expressions.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from . import errors, schema

LOOKUP_TYPES = ("Lookup", "Owner", "Customer")
_TEXT_TYPES = ("String", "Memo", "EntityName", "Uniqueidentifier", "DateTime")
_INT_TYPES = ("Integer", "BigInt", "Picklist", "State", "Status", "Boolean")
_REAL_TYPES = ("Decimal", "Double", "Money")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")

DDL = """
CREATE TABLE IF NOT EXISTS _md_entity (logicalname TEXT PRIMARY KEY, metadataid TEXT UNIQUE, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _md_attribute (metadataid TEXT PRIMARY KEY, entity TEXT NOT NULL,
    logicalname TEXT NOT NULL, json TEXT NOT NULL, UNIQUE(entity, logicalname));
CREATE TABLE IF NOT EXISTS _md_relationship (schemaname TEXT PRIMARY KEY, metadataid TEXT UNIQUE, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _md_key (metadataid TEXT PRIMARY KEY, entity TEXT NOT NULL, json TEXT NOT NULL);
"""


@dataclass(slots=True)
class Attr:
    logical: str
    atype: str
    entity: str
    meta: dict[str, Any]
    targets: tuple[str, ...] = ()
    options: dict[int, str] = field(default_factory=dict)
    status_state: dict[int, int] = field(default_factory=dict)

    @property
    def is_lookup(self) -> bool:
        return self.atype in LOOKUP_TYPES

    @property
    def odata_name(self) -> str:
        return f"_{self.logical}_value" if self.is_lookup else self.logical

    @property
    def type_column(self) -> str:
        return f"{self.logical}__type"


@dataclass(slots=True)
class Nav:
    """A single-valued navigation property on the referencing table (a lookup, per target)."""

    name: str
    attr: str
    targets: tuple[str, ...]
    relationship: str


@dataclass(slots=True)
class CollectionNav:
    """A collection-valued navigation property: 1:N from the referenced side, or one side of an N:N."""

    name: str
    kind: str  # "1n" or "nn"
    relationship: str
    other: str  # the related table
    referencing_attr: str = ""  # 1:N: lookup column on ``other``
    intersect: str = ""  # N:N
    self_attr: str = ""
    other_attr: str = ""


@dataclass(slots=True)
class Entity:
    logical: str
    meta: dict[str, Any]
    attrs: dict[str, Attr]
    navs: dict[str, Nav] = field(default_factory=dict)
    collection_navs: dict[str, CollectionNav] = field(default_factory=dict)
    keys: list[dict[str, Any]] = field(default_factory=list)
    table: sa.Table | None = None

    @property
    def set_name(self) -> str:
        return str(self.meta["EntitySetName"])

    @property
    def pk(self) -> str:
        return str(self.meta["PrimaryIdAttribute"])

    @property
    def primary_name(self) -> str | None:
        return self.meta.get("PrimaryNameAttribute")

    @property
    def change_tracking(self) -> bool:
        return bool(self.meta.get("ChangeTrackingEnabled"))

    @property
    def is_intersect(self) -> bool:
        return bool(self.meta.get("IsIntersect"))

    @property
    def user_owned(self) -> bool:
        return "ownerid" in self.attrs

    @property
    def schema_name(self) -> str:
        return str(self.meta["SchemaName"])

    def attr_by_odata(self, name: str) -> Attr | None:
        """``name`` as used in $select/$filter/body: a column, or ``_x_value`` for lookups."""
        a = self.attrs.get(name)
        if a is not None:
            return a
        if name.startswith("_") and name.endswith("_value"):
            a = self.attrs.get(name[1:-6])
            if a is not None and a.is_lookup:
                return a
        return None


def sql_type(atype: str) -> str:
    if atype in _INT_TYPES:
        return "INTEGER"
    if atype in _REAL_TYPES:
        return "REAL"
    return "TEXT COLLATE NOCASE"


def _sa_type(atype: str) -> Any:
    if atype in _INT_TYPES:
        return sa.Integer()
    if atype in _REAL_TYPES:
        return sa.Float()
    return sa.String()


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Metadata:
    """The loaded schema of one org plus the operations that change it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.entities: dict[str, Entity] = {}
        self.by_set: dict[str, Entity] = {}
        self.by_id: dict[str, Entity] = {}
        self.relationships: dict[str, dict[str, Any]] = {}
        self.attribute_by_id: dict[str, Attr] = {}
        self.version = 0  # bumps on every schema change (globalmetadataversion)

    # ---- persistence ---------------------------------------------------------------------------
    @staticmethod
    def create_tables(conn: sqlite3.Connection) -> None:
        conn.executescript(DDL)

    def install(self, entities: list[dict[str, Any]], attributes: list[dict[str, Any]],
                relationships: list[dict[str, Any]], keys: list[dict[str, Any]]) -> None:
        c = self.conn
        c.executemany("INSERT INTO _md_entity VALUES (?,?,?)",
                      [(e["LogicalName"], e["MetadataId"], json.dumps(e)) for e in entities])
        c.executemany("INSERT INTO _md_attribute VALUES (?,?,?,?)",
                      [(a["MetadataId"], a["EntityLogicalName"], a["LogicalName"], json.dumps(a)) for a in attributes])
        c.executemany("INSERT INTO _md_relationship VALUES (?,?,?)",
                      [(r["SchemaName"], r["MetadataId"], json.dumps(r)) for r in relationships])
        c.executemany("INSERT INTO _md_key VALUES (?,?,?)",
                      [(k["MetadataId"], k["EntityLogicalName"], json.dumps(k)) for k in keys])
        self.load()
        for ent in self.entities.values():
            self._create_physical(ent)

    def load(self) -> None:
        c = self.conn
        entities: dict[str, Entity] = {}
        for (raw,) in c.execute("SELECT json FROM _md_entity"):
            meta = json.loads(raw)
            entities[meta["LogicalName"]] = Entity(meta["LogicalName"], meta, {})
        self.attribute_by_id = {}
        for (raw,) in c.execute("SELECT json FROM _md_attribute ORDER BY rowid"):
            meta = json.loads(raw)
            ent = entities.get(meta["EntityLogicalName"])
            if ent is None:
                continue
            a = Attr(meta["LogicalName"], meta["AttributeType"], ent.logical, meta,
                     tuple(meta.get("Targets") or ()))
            os_ = meta.get("OptionSet") or {}
            if meta["AttributeType"] == "Boolean" and os_:
                a.options = {1: _label(os_["TrueOption"]), 0: _label(os_["FalseOption"])}
            for opt in os_.get("Options") or []:
                a.options[int(opt["Value"])] = _label(opt)
                if "State" in opt:
                    a.status_state[int(opt["Value"])] = int(opt["State"])
            ent.attrs[a.logical] = a
            self.attribute_by_id[meta["MetadataId"]] = a
        self.relationships = {}
        for (raw,) in c.execute("SELECT json FROM _md_relationship ORDER BY rowid"):
            rel = json.loads(raw)
            self.relationships[rel["SchemaName"]] = rel
            if rel["RelationshipType"] == "OneToManyRelationship":
                child = entities.get(rel["ReferencingEntity"])
                parent = entities.get(rel["ReferencedEntity"])
                attr = rel["ReferencingAttribute"]
                if child is not None and attr in child.attrs:
                    nav = child.navs.get(rel["ReferencingEntityNavigationPropertyName"])
                    target = rel["ReferencedEntity"]
                    if attr == "ownerid":
                        targets: tuple[str, ...] = ("systemuser", "team")
                    else:
                        targets = (target,) if nav is None else nav.targets + (target,)
                    child.navs[rel["ReferencingEntityNavigationPropertyName"]] = Nav(
                        rel["ReferencingEntityNavigationPropertyName"], attr, targets, rel["SchemaName"])
                if parent is not None and child is not None:
                    parent.collection_navs[rel["ReferencedEntityNavigationPropertyName"]] = CollectionNav(
                        rel["ReferencedEntityNavigationPropertyName"], "1n", rel["SchemaName"], child.logical,
                        referencing_attr=attr)
            else:
                e1, e2 = entities.get(rel["Entity1LogicalName"]), entities.get(rel["Entity2LogicalName"])
                if e1 is None or e2 is None:
                    continue
                e1.collection_navs[rel["Entity1NavigationPropertyName"]] = CollectionNav(
                    rel["Entity1NavigationPropertyName"], "nn", rel["SchemaName"], e2.logical,
                    intersect=rel["IntersectEntityName"], self_attr=rel["Entity1IntersectAttribute"],
                    other_attr=rel["Entity2IntersectAttribute"])
                e2.collection_navs[rel["Entity2NavigationPropertyName"]] = CollectionNav(
                    rel["Entity2NavigationPropertyName"], "nn", rel["SchemaName"], e1.logical,
                    intersect=rel["IntersectEntityName"], self_attr=rel["Entity2IntersectAttribute"],
                    other_attr=rel["Entity1IntersectAttribute"])
        for (raw,) in c.execute("SELECT json FROM _md_key ORDER BY rowid"):
            k = json.loads(raw)
            if k["EntityLogicalName"] in entities:
                entities[k["EntityLogicalName"]].keys.append(k)
        md = sa.MetaData()
        for ent in entities.values():
            cols = []
            for a in ent.attrs.values():
                cols.append(sa.Column(a.logical, _sa_type(a.atype), key=a.odata_name))
            ent.table = sa.Table(ent.logical, md, *cols)
        self.entities = entities
        self.by_set = {e.set_name: e for e in entities.values()}
        self.by_id = {e.meta["MetadataId"]: e for e in entities.values()}
        self.version += 1

    def _create_physical(self, ent: Entity) -> None:
        cols = []
        for a in ent.attrs.values():
            if a.logical == ent.pk:
                cols.append(f"{q(a.logical)} TEXT COLLATE NOCASE PRIMARY KEY NOT NULL")
            else:
                cols.append(f"{q(a.logical)} {sql_type(a.atype)}")
                if a.is_lookup:
                    cols.append(f"{q(a.type_column)} TEXT")
        self.conn.execute(f"CREATE TABLE {q(ent.logical)} ({', '.join(cols)})")
        self.conn.execute(f"CREATE INDEX {q('ix_' + ent.logical + '_version')} ON {q(ent.logical)} (versionnumber)")
        for a in ent.attrs.values():
            if a.is_lookup or (ent.is_intersect and a.logical != ent.pk and a.logical != "versionnumber"):
                self._index(ent.logical, a.logical)
        for k in ent.keys:
            self._key_index(ent.logical, k)

    def _index(self, table: str, column: str) -> None:
        self.conn.execute(f"CREATE INDEX IF NOT EXISTS {q('ix_' + table + '_' + column)} ON {q(table)} ({q(column)})")

    def _key_index(self, table: str, k: dict[str, Any]) -> None:
        cols = ", ".join(q(c) for c in k["KeyAttributes"])
        self.conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {q('ak_' + table + '_' + k['LogicalName'])} "
                          f"ON {q(table)} ({cols})")

    # ---- lookups -------------------------------------------------------------------------------
    def entity(self, logical: str) -> Entity:
        ent = self.entities.get(logical)
        if ent is None:
            raise errors.DataverseError(404, errors.OBJECT_DOES_NOT_EXIST,
                                        f"Could not find an entity with name '{logical}'.")
        return ent

    def entity_by_set(self, set_name: str) -> Entity:
        ent = self.by_set.get(set_name)
        if ent is None:
            raise errors.segment_not_found(set_name)
        return ent

    # ---- schema changes (POST EntityDefinitions / Attributes / RelationshipDefinitions) ----------
    def create_entity(self, body: dict[str, Any], now: str) -> str:
        schema_name = body.get("SchemaName")
        if not isinstance(schema_name, str) or not schema_name:
            raise errors.bad_request("SchemaName is required.", errors.INVALID_ARGUMENT)
        logical = schema_name.lower()
        if not _NAME_RE.match(logical) or "_" not in logical:
            raise errors.bad_request(f"Invalid SchemaName '{schema_name}': a custom table name needs a "
                                     "publisher prefix such as new_.", errors.INVALID_ARGUMENT)
        if logical in self.entities:
            raise errors.DataverseError(400, errors.DUPLICATE_RECORD,
                                        f"An entity with the specified name {schema_name} already exists.")
        attrs = body.get("Attributes") or []
        primary = [a for a in attrs if isinstance(a, dict) and a.get("IsPrimaryName")]
        if len(primary) != 1 or "StringAttributeMetadata" not in str(primary[0].get("@odata.type", "")):
            raise errors.bad_request("Exactly one StringAttributeMetadata with IsPrimaryName true is required.",
                                     errors.INVALID_ARGUMENT)
        otc = max(int(e.meta["ObjectTypeCode"]) for e in self.entities.values())
        otc = max(otc + 1, 10000)
        ownership = str(body.get("OwnershipType") or "UserOwned")
        if ownership not in ("UserOwned", "OrganizationOwned"):
            raise errors.bad_request(f"OwnershipType '{ownership}' is not supported for custom tables.",
                                     errors.INVALID_ARGUMENT)
        from .standard import SchemaBuilder  # local: standard imports this module's siblings

        b = SchemaBuilder()
        pname = str(primary[0]["SchemaName"]).lower()
        set_name = logical + ("es" if logical.endswith("s") else "s")
        b.table(logical, otc=otc, primary_name=pname, ownership=ownership, custom=True,
                schema=schema_name, set_name=set_name, metadata_id=str(uuid.uuid4()),
                name_length=int(primary[0].get("MaxLength") or 100),
                display=schema.label_text(body.get("DisplayName")) or schema_name,
                display_collection=schema.label_text(body.get("DisplayCollectionName")),
                description=schema.label_text(body.get("Description")),
                change_tracking=bool(body.get("ChangeTrackingEnabled", False)),
                has_activities=bool(body.get("HasActivities", False)), has_notes=bool(body.get("HasNotes", False)),
                activity=bool(body.get("IsActivity", False)), created_on=now)
        for a in b.attributes:
            a["IsCustomAttribute"] = a["LogicalName"] == pname
            if a["LogicalName"] == pname:
                a["SchemaName"] = primary[0]["SchemaName"]
                a["DisplayName"] = schema.label(schema.label_text(primary[0].get("DisplayName")) or pname)
            a["MetadataId"] = str(uuid.uuid4())
        for r in b.relationships:
            r["SchemaName"] = f"{r['SchemaName']}_{logical}" if logical not in r["SchemaName"] else r["SchemaName"]
            r["MetadataId"] = str(uuid.uuid4())
            r["ReferencedEntityNavigationPropertyName"] = r["SchemaName"]
        extra = [a for a in attrs if isinstance(a, dict) and not a.get("IsPrimaryName")]
        self.install_partial(b.entities, b.attributes, b.relationships, [])
        ent = self.entities[logical]
        self._create_physical(ent)
        for a in extra:
            self.create_attribute(logical, a, now)
        self._add_bulk_filters(logical)
        return ent.meta["MetadataId"]

    def _add_bulk_filters(self, logical: str) -> None:
        """Custom tables support every bulk message (S25); publish the sdkmessagefilter rows."""
        self.on_entity_created(logical)

    def on_entity_created(self, logical: str) -> None:  # replaced by the org (writes sdkmessagefilter rows)
        pass

    def install_partial(self, entities: list[dict[str, Any]], attributes: list[dict[str, Any]],
                        relationships: list[dict[str, Any]], keys: list[dict[str, Any]]) -> None:
        c = self.conn
        c.executemany("INSERT INTO _md_entity VALUES (?,?,?)",
                      [(e["LogicalName"], e["MetadataId"], json.dumps(e)) for e in entities])
        c.executemany("INSERT INTO _md_attribute VALUES (?,?,?,?)",
                      [(a["MetadataId"], a["EntityLogicalName"], a["LogicalName"], json.dumps(a)) for a in attributes])
        c.executemany("INSERT INTO _md_relationship VALUES (?,?,?)",
                      [(r["SchemaName"], r["MetadataId"], json.dumps(r)) for r in relationships])
        c.executemany("INSERT INTO _md_key VALUES (?,?,?)",
                      [(k["MetadataId"], k["EntityLogicalName"], json.dumps(k)) for k in keys])
        self.load()

    # ---- schema updates (PUT EntityDefinitions(...)) ----------------------------------------------
    def update_entity(self, logical: str, body: dict[str, Any], *, merge_labels: bool, now: str) -> None:
        """Apply a PUT of a complete table definition (dataverse-web-api.md §3.2; PATCH is not allowed).

        What changes: ``DisplayName``, ``DisplayCollectionName``, ``Description`` (with
        ``MSCRM.MergeLabels: true`` the sent languages are merged into the stored labels, else they
        replace them) and ``ChangeTrackingEnabled``, which can be switched on (unless
        ``CanChangeTrackingBeEnabled`` is false) but never off (§5: irreversible). Identity
        properties (``LogicalName``, ``SchemaName``, ``MetadataId``, ``EntitySetName``, ``OwnershipType``,
        ``PrimaryIdAttribute``) must match; the other properties are read-only and ignored.
        """
        ent = self.entity(logical)
        meta = dict(ent.meta)
        for key in ("LogicalName", "SchemaName", "MetadataId", "EntitySetName", "OwnershipType",
                    "PrimaryIdAttribute", "PrimaryNameAttribute"):
            if key in body and body[key] is not None and str(body[key]).lower() != str(meta.get(key)).lower():
                raise errors.bad_request(f"{key} of the table '{logical}' cannot be changed.", errors.INVALID_ARGUMENT)
        if "ChangeTrackingEnabled" in body:
            wanted = bool(body["ChangeTrackingEnabled"])
            if meta.get("ChangeTrackingEnabled") and not wanted:
                raise errors.bad_request(f"Change tracking cannot be disabled for the table '{logical}' once it "
                                         "has been enabled.", errors.INVALID_ARGUMENT)
            if wanted and not meta.get("ChangeTrackingEnabled"):
                if not (meta.get("CanChangeTrackingBeEnabled") or {}).get("Value", True):
                    raise errors.bad_request(f"Change tracking cannot be enabled for the table '{logical}'.",
                                             errors.INVALID_ARGUMENT)
                meta["ChangeTrackingEnabled"] = True
        for key in ("DisplayName", "DisplayCollectionName", "Description"):
            if isinstance(body.get(key), dict):
                meta[key] = _merged_label(meta.get(key), body[key], merge_labels)
        meta["ModifiedOn"] = now
        self.conn.execute("UPDATE _md_entity SET json = ? WHERE logicalname = ?", (json.dumps(meta), logical))
        self.load()

    def create_attribute(self, entity_logical: str, body: dict[str, Any], now: str) -> str:
        ent = self.entity(entity_logical)
        odata_type = str(body.get("@odata.type", ""))
        cast = odata_type.rsplit(".", 1)[-1]
        atype = body.get("AttributeType")
        candidates = schema.CAST_TO_TYPES.get(cast, set())
        if not candidates:
            raise errors.bad_request(f"Unsupported attribute type '{odata_type}'.", errors.INVALID_ARGUMENT)
        if atype not in candidates:
            atype = sorted(candidates)[0] if len(candidates) == 1 else None
        if atype is None or atype in LOOKUP_TYPES:
            raise errors.bad_request("Lookup columns are created with POST RelationshipDefinitions.",
                                     errors.INVALID_ARGUMENT)
        schema_name = body.get("SchemaName")
        if not isinstance(schema_name, str) or not _NAME_RE.match(schema_name.lower()):
            raise errors.bad_request("A valid SchemaName is required.", errors.INVALID_ARGUMENT)
        logical = schema_name.lower()
        if logical in ent.attrs:
            raise errors.DataverseError(400, errors.DUPLICATE_RECORD,
                                        f"An attribute with the specified name {schema_name} already exists.")
        kw: dict[str, Any] = {"schema": schema_name, "custom": True, "metadata_id": str(uuid.uuid4()),
                              "display": schema.label_text(body.get("DisplayName")) or schema_name,
                              "description": schema.label_text(body.get("Description")), "created_on": now,
                              "required": (body.get("RequiredLevel") or {}).get("Value", "None"),
                              "column_number": len(ent.attrs) + 1}
        for src, dst in (("MaxLength", "max_length"), ("Precision", "precision"), ("MinValue", "min_value"),
                         ("MaxValue", "max_value")):
            if body.get(src) is not None:
                kw[dst] = body[src]
        if atype == "DateTime":
            fmt = body.get("Format") or (body.get("DateTimeBehavior") or {}).get("Value")
            kw["date_only"] = fmt == "DateOnly"
        if atype == "Boolean":
            os_ = body.get("OptionSet") or {}
            kw["true_label"] = schema.label_text((os_.get("TrueOption") or {}).get("Label")) or "Yes"
            kw["false_label"] = schema.label_text((os_.get("FalseOption") or {}).get("Label")) or "No"
            kw["default"] = bool(body.get("DefaultValue", False))
        if atype == "Picklist":
            options: dict[int, str] = {}
            for i, opt in enumerate((body.get("OptionSet") or {}).get("Options") or []):
                value = opt.get("Value")
                options[int(value) if value is not None else 727000000 + i] = (
                    schema.label_text(opt.get("Label")) or str(value))
            kw["options"] = options
        a = schema.attribute(ent.logical, logical, atype, **kw)
        self.conn.execute("INSERT INTO _md_attribute VALUES (?,?,?,?)",
                          (a["MetadataId"], ent.logical, logical, json.dumps(a)))
        self.conn.execute(f"ALTER TABLE {q(ent.logical)} ADD COLUMN {q(logical)} {sql_type(atype)}")
        self.load()
        return str(a["MetadataId"])

    def create_relationship(self, body: dict[str, Any], now: str) -> str:
        odata_type = str(body.get("@odata.type", ""))
        schema_name = body.get("SchemaName")
        if not isinstance(schema_name, str) or not schema_name:
            raise errors.bad_request("SchemaName is required.", errors.INVALID_ARGUMENT)
        if schema_name in self.relationships:
            raise errors.DataverseError(400, errors.DUPLICATE_RECORD,
                                        f"A relationship with the specified name {schema_name} already exists.")
        if odata_type.endswith("OneToManyRelationshipMetadata"):
            parent = self.entity(str(body.get("ReferencedEntity")))
            child = self.entity(str(body.get("ReferencingEntity")))
            lookup = body.get("Lookup") or {}
            lschema = lookup.get("SchemaName")
            if not isinstance(lschema, str) or not _NAME_RE.match(lschema.lower()):
                raise errors.bad_request("Lookup.SchemaName is required.", errors.INVALID_ARGUMENT)
            logical = lschema.lower()
            if logical in child.attrs:
                raise errors.DataverseError(400, errors.DUPLICATE_RECORD,
                                            f"An attribute with the specified name {lschema} already exists.")
            a = schema.attribute(child.logical, logical, "Lookup", targets=[parent.logical], schema=lschema,
                                 custom=True, metadata_id=str(uuid.uuid4()), created_on=now,
                                 display=schema.label_text(lookup.get("DisplayName")) or lschema,
                                 required=(lookup.get("RequiredLevel") or {}).get("Value", "None"),
                                 column_number=len(child.attrs) + 1)
            nav = body.get("ReferencingEntityNavigationPropertyName") or lschema
            rel = schema.one_to_many(schema_name, parent.logical, parent.pk, child.logical, logical, nav,
                                     custom=True, referenced_nav=body.get("ReferencedEntityNavigationPropertyName"))
            if isinstance(body.get("CascadeConfiguration"), dict):
                rel["CascadeConfiguration"].update(body["CascadeConfiguration"])
            rel["MetadataId"] = str(uuid.uuid4())
            self.conn.execute("INSERT INTO _md_attribute VALUES (?,?,?,?)",
                              (a["MetadataId"], child.logical, logical, json.dumps(a)))
            self.conn.execute(f"ALTER TABLE {q(child.logical)} ADD COLUMN {q(logical)} TEXT COLLATE NOCASE")
            self.conn.execute(f"ALTER TABLE {q(child.logical)} ADD COLUMN {q(logical + '__type')} TEXT")
            self._index(child.logical, logical)
        elif odata_type.endswith("ManyToManyRelationshipMetadata"):
            e1 = self.entity(str(body.get("Entity1LogicalName")))
            e2 = self.entity(str(body.get("Entity2LogicalName")))
            intersect = str(body.get("IntersectEntityName") or schema_name).lower()
            if intersect in self.entities:
                raise errors.DataverseError(400, errors.DUPLICATE_RECORD,
                                            f"An entity with the specified name {intersect} already exists.")
            a1, a2 = e1.pk, e2.pk if e2.pk != e1.pk else e2.pk + "two"
            from .standard import SchemaBuilder

            b = SchemaBuilder()
            otc = max(max(int(e.meta["ObjectTypeCode"]) for e in self.entities.values()) + 1, 10000)
            b.table(intersect, otc=otc, primary_name=None, ownership="None", pk=intersect + "id", intersect=True,
                    custom=True, metadata_id=str(uuid.uuid4()), change_tracking=True, created_on=now)
            b.attr(intersect, a1, "Uniqueidentifier", required="SystemRequired", custom=True)
            b.attr(intersect, a2, "Uniqueidentifier", required="SystemRequired", custom=True)
            rel = schema.many_to_many(schema_name, e1.logical, a1, e2.logical, a2, intersect, custom=True,
                                      nav1=body.get("Entity1NavigationPropertyName"),
                                      nav2=body.get("Entity2NavigationPropertyName"))
            rel["MetadataId"] = str(uuid.uuid4())
            for a_ in b.attributes:
                a_["MetadataId"] = str(uuid.uuid4())
            self.install_partial(b.entities, b.attributes, [], [])
            self._create_physical(self.entities[intersect])
        else:
            raise errors.bad_request(f"Unsupported relationship type '{odata_type}'.", errors.INVALID_ARGUMENT)
        self.conn.execute("INSERT INTO _md_relationship VALUES (?,?,?)",
                          (schema_name, rel["MetadataId"], json.dumps(rel)))
        self.load()
        return str(rel["MetadataId"])


def _merged_label(stored: Any, sent: dict[str, Any], merge: bool) -> dict[str, Any]:
    """A Label after a PUT: sent languages replace stored ones; others survive only with MergeLabels."""
    sent_locs = [dict(loc) for loc in sent.get("LocalizedLabels") or [] if isinstance(loc, dict) and loc.get("Label")]
    for loc in sent_locs:
        loc.setdefault("LanguageCode", schema.LANG)
        loc.setdefault("IsManaged", False)
        loc.setdefault("MetadataId", str(uuid.uuid4()))
        loc.setdefault("HasChanged", None)
    by_lang: dict[int, dict[str, Any]] = {}
    if merge and isinstance(stored, dict):
        for loc in stored.get("LocalizedLabels") or []:
            by_lang[int(loc.get("LanguageCode") or schema.LANG)] = loc
    for loc in sent_locs:
        by_lang[int(loc["LanguageCode"])] = loc
    locs = list(by_lang.values())
    user = next((loc for loc in locs if int(loc.get("LanguageCode") or 0) == schema.LANG), locs[0] if locs else None)
    return {"LocalizedLabels": locs, "UserLocalizedLabel": dict(user) if user else None}


def _label(opt: dict[str, Any]) -> str:
    return schema.label_text(opt.get("Label")) or str(opt.get("Value"))
