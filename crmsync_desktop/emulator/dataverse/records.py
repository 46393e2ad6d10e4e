"""Record writes: create, update, upsert, delete (with cascades and tombstones), associate/disassociate.

The platform columns (``versionnumber``, ``createdon``/``modifiedon``, ``createdby``/``modifiedby``,
``ownerid``/``owningbusinessunit``, ``statecode``/``statuscode``) are maintained here the way the real
service does, and the Resco tracking rows are written here (the events happen here).
All functions expect to run inside ``org.transaction()``.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from . import errors, tracking
from .metadata import CollectionNav, Entity, q
from .values import norm_guid, to_storage

if TYPE_CHECKING:
    from .org import Caller, DataverseOrg

_REF_RE = re.compile(r"^(?:[a-z]+://[^/]+)?/?(?:api/data/v9\.[0-2]/)?([A-Za-z0-9_]+)\((.*)\)$", re.S)
OWNER_TARGETS = {"systemuser", "team"}


@dataclass
class Changes:
    columns: dict[str, Any] = field(default_factory=dict)
    owner: tuple[str, str] | None = None
    collection_binds: list[tuple[CollectionNav, Entity, str]] = field(default_factory=list)


# ---- addressing ----------------------------------------------------------------------------------
def parse_key_literal(text: str) -> Any:
    t = text.strip()
    if len(t) >= 2 and t[0] == "'" and t[-1] == "'":
        return t[1:-1].replace("''", "'")
    if t in ("true", "false"):
        return t == "true"
    if t == "null":
        return None
    g = norm_guid(t)
    if g is not None:
        return g
    try:
        return int(t)
    except ValueError:
        try:
            return float(t)
        except ValueError:
            raise errors.bad_request(f"Bad key literal {text!r}.") from None


def split_key(text: str) -> list[str]:
    parts, cur, quoted = [], [], False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def resolve_key(org: DataverseOrg, ent: Entity, key_text: str) -> tuple[str | None, dict[str, Any] | None]:
    """``(id, None)`` for a GUID key, ``(id-or-None, key_values)`` for an alternate key."""
    g = norm_guid(key_text)
    if g is not None:
        return g, None
    values: dict[str, Any] = {}
    for part in split_key(key_text):
        if "=" not in part:
            raise _bad_key(ent)
        name, _, literal = part.partition("=")
        values[name.strip()] = parse_key_literal(unquote(literal))
    pk_value = values.get(ent.pk)
    if len(values) == 1 and pk_value is not None:
        return norm_guid(pk_value), None
    storage: dict[str, Any] = {}
    for name, value in values.items():
        a = ent.attr_by_odata(name)
        if a is None:
            raise _bad_key(ent)
        storage[a.logical] = to_storage(a, value) if not a.is_lookup else norm_guid(value)
    if not any(sorted(k["KeyAttributes"]) == sorted(storage) for k in ent.keys):
        raise _bad_key(ent)
    where = " AND ".join(f"{q(c)} = ?" for c in storage)
    row = org.conn.execute(f"SELECT {q(ent.pk)} FROM {q(ent.logical)} WHERE {where}", list(storage.values())).fetchone()
    return (row[0] if row else None), storage


def _bad_key(ent: Entity) -> errors.DataverseError:
    return errors.bad_request(
        f"The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{ent.logical}'. Ensure "
        "that the names and number of key properties are correct.")


def resolve_ref(org: DataverseOrg, ref: Any, refs: dict[str, str] | None) -> tuple[Entity, str]:
    """An ``@odata.bind`` / ``@odata.id`` value -> (table, existing id)."""
    if not isinstance(ref, str):
        raise errors.bad_request("An entity reference must be a URL string.")
    text = ref.strip()
    if text.startswith("$") and refs is not None:
        target = refs.get(text.split("/", 1)[0])
        if target is None:
            raise errors.bad_request(f"Content-ID Reference: '{text}' does not exist in the batch context.")
        text = target
    m = _REF_RE.match(text)
    if not m:
        raise errors.bad_request(f"The entity reference '{ref}' is not a valid URL.")
    ent = org.md.entity_by_set(m.group(1))
    rid, _ = resolve_key(org, ent, m.group(2))
    if rid is None or not exists(org, ent, rid):
        raise errors.not_found(ent.logical, rid or m.group(2))
    return ent, rid


# ---- reads used by writes --------------------------------------------------------------------------
def exists(org: DataverseOrg, ent: Entity, rid: str) -> bool:
    return org.conn.execute(f"SELECT 1 FROM {q(ent.logical)} WHERE {q(ent.pk)} = ?", (rid,)).fetchone() is not None


def fetch_row(org: DataverseOrg, ent: Entity, rid: str) -> dict[str, Any] | None:
    cur = org.conn.execute(f"SELECT * FROM {q(ent.logical)} WHERE {q(ent.pk)} = ?", (rid,))
    row = cur.fetchone()
    if row is None:
        return None
    return {d[0]: v for d, v in zip(cur.description, row)}


def check_privilege(org: DataverseOrg, caller: Caller, action: str, ent: Entity) -> None:
    denied = org.denied_privileges.get(caller.object_id)
    if not denied:
        return
    name = f"prv{action}{ent.schema_name}"
    if name in denied:
        raise errors.DataverseError(
            403, errors.PRIVILEGE_DENIED,
            f"Principal user (Id={caller.userid}, type=8, roleCount=1, privilegeCount=0, accessMode=0), is "
            f"missing {name} privilege (Id={uuid.uuid5(uuid.NAMESPACE_OID, name)}) on "
            f"OTC={ent.meta['ObjectTypeCode']} for entity '{ent.logical}'. context.Caller={caller.userid}")


# ---- payload -----------------------------------------------------------------------------------
def parse_body(org: DataverseOrg, ent: Entity, body: Any, *, creating: bool,
               refs: dict[str, str] | None = None) -> Changes:
    if not isinstance(body, dict):
        raise errors.bad_request("The request body must be a JSON object.", errors.PAYLOAD_ERROR)
    ch = Changes()
    cols = ch.columns
    for name, value in body.items():
        if name.startswith("@"):
            continue
        if "@" in name:
            prop, _, annotation = name.partition("@")
            if annotation != "odata.bind":
                continue
            nav = ent.navs.get(prop)
            if nav is not None:
                if value is None:
                    cols[nav.attr] = None
                    cols[nav.attr + "__type"] = None
                    if nav.attr == "ownerid":
                        raise errors.bad_request("ownerid cannot be cleared.", errors.INVALID_ARGUMENT)
                    continue
                target, tid = resolve_ref(org, value, refs)
                if target.logical not in nav.targets:
                    raise errors.bad_request(
                        f"Navigation property '{prop}' of 'Microsoft.Dynamics.CRM.{ent.logical}' cannot be bound "
                        f"to a '{target.logical}' record.")
                if nav.attr == "ownerid":
                    ch.owner = (tid, target.logical)
                else:
                    cols[nav.attr] = tid
                    cols[nav.attr + "__type"] = target.logical
                continue
            cnav = ent.collection_navs.get(prop)
            if cnav is not None and isinstance(value, list):
                for item in value:
                    other, oid = resolve_ref(org, item, refs)
                    ch.collection_binds.append((cnav, other, oid))
                continue
            raise _no_property(ent, prop)
        a = ent.attrs.get(name)
        if a is None:
            if name in ent.navs or name in ent.collection_navs:
                raise errors.bad_request("Deep insert is not supported by the emulator; use @odata.bind.",
                                         errors.INVALID_ARGUMENT)
            raise _no_property(ent, name)
        if a.is_lookup:
            if value is not None:
                raise errors.bad_request(
                    f"Lookup '{name}' can only be set through '{name}@odata.bind' (or cleared with null).",
                    errors.PAYLOAD_ERROR)
            if a.logical == "ownerid":
                raise errors.bad_request("ownerid cannot be cleared.", errors.INVALID_ARGUMENT)
            cols[a.logical] = None
            cols[a.type_column] = None
            continue
        if a.logical == ent.pk:
            cols[a.logical] = to_storage(a, value)
            continue
        if not (a.meta["IsValidForCreate"] if creating else a.meta["IsValidForUpdate"]):
            continue  # platform-maintained columns are ignored, like the service does
        cols[a.logical] = to_storage(a, value)
    return ch


def _no_property(ent: Entity, name: str) -> errors.DataverseError:
    return errors.bad_request(
        f"The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{ent.logical}'. Make sure to only "
        "use property names that are defined by the type.")


# ---- writes ------------------------------------------------------------------------------------
def insert_raw(org: DataverseOrg, entity: str, values: dict[str, Any], userid: str, now: str) -> str:
    """Insert with platform columns filled in; no validation (bootstrap, tracking rows, intersect rows)."""
    ent = org.md.entities[entity]
    row = dict(values)
    row.setdefault(ent.pk, str(uuid.uuid4()))
    row["versionnumber"] = org.next_version()
    if "createdon" in ent.attrs:
        row.setdefault("createdon", now)
        row.setdefault("modifiedon", now)
        for c in ("createdby", "modifiedby"):
            row.setdefault(c, userid)
            row.setdefault(c + "__type", "systemuser")
    cols = list(row)
    org.conn.execute(f"INSERT INTO {q(entity)} ({', '.join(q(c) for c in cols)}) VALUES "
                     f"({', '.join('?' for _ in cols)})", [row[c] for c in cols])
    return str(row[ent.pk])


def _business_unit_of(org: DataverseOrg, owner_id: str, owner_type: str) -> str:
    row = org.conn.execute(f"SELECT businessunitid FROM {q(owner_type)} WHERE {q(owner_type + 'id')} = ?",
                           (owner_id,)).fetchone()
    return str(row[0]) if row and row[0] else org.root_business_unit_id


def _apply_state(ent: Entity, cols: dict[str, Any], creating: bool) -> None:
    state_attr, status_attr = ent.attrs.get("statecode"), ent.attrs.get("statuscode")
    if state_attr is None or status_attr is None:
        return
    if cols.get("statuscode") is not None and "statecode" not in cols:
        cols["statecode"] = status_attr.status_state.get(cols["statuscode"], 0)
    if creating:
        cols.setdefault("statecode", 0)
    if cols.get("statecode") is not None and cols.get("statuscode") is None and (creating or "statecode" in cols):
        for opt in state_attr.meta["OptionSet"]["Options"]:
            if opt["Value"] == cols["statecode"]:
                cols["statuscode"] = opt.get("DefaultStatus")
    if cols.get("statecode") is not None and cols.get("statuscode") is not None:
        if status_attr.status_state.get(cols["statuscode"]) != cols["statecode"]:
            raise errors.DataverseError(
                400, errors.INVALID_ARGUMENT,
                f"{cols['statuscode']} is not a valid status code for state code "
                f"{ent.schema_name}State.{state_attr.options.get(cols['statecode'])} on {ent.logical}.")


def _full_name(ent: Entity, cols: dict[str, Any], current: dict[str, Any] | None) -> None:
    if ent.logical not in ("contact", "lead", "systemuser") or ("firstname" not in cols and "lastname" not in cols):
        return
    first = cols.get("firstname", (current or {}).get("firstname"))
    last = cols.get("lastname", (current or {}).get("lastname"))
    cols["fullname"] = " ".join(p for p in (first, last) if p) or None


def create(org: DataverseOrg, caller: Caller, ent: Entity, body: Any, *, record_id: str | None = None,
           key_values: dict[str, Any] | None = None, refs: dict[str, str] | None = None) -> str:
    check_privilege(org, caller, "Create", ent)
    if ent.is_intersect:
        raise errors.DataverseError(405, errors.INVALID_ARGUMENT,
                                    f"The 'Create' method does not support entities of type '{ent.logical}'. "
                                    "Use associate ($ref) instead.")
    ch = parse_body(org, ent, body, creating=True, refs=refs)
    cols = ch.columns
    body_id = cols.pop(ent.pk, None)
    rid = record_id or body_id or str(uuid.uuid4())
    for k, v in (key_values or {}).items():
        cols.setdefault(k, v)  # body values win over URL key values
    for a in ent.attrs.values():
        if a.logical in cols:
            continue
        if a.atype == "Boolean" and "DefaultValue" in a.meta:
            cols[a.logical] = 1 if a.meta["DefaultValue"] else 0
        elif a.atype == "Picklist" and a.meta.get("DefaultFormValue") not in (None, -1):
            cols[a.logical] = a.meta["DefaultFormValue"]
    _apply_state(ent, cols, creating=True)
    _full_name(ent, cols, None)
    if ent.user_owned:
        owner = ch.owner or (caller.userid, "systemuser")
        if ch.owner is not None:
            check_privilege(org, caller, "Assign", ent)
        cols["ownerid"], cols["ownerid__type"] = owner
        cols["owningbusinessunit"] = _business_unit_of(org, *owner)
        cols["owningbusinessunit__type"] = "businessunit"
    if exists(org, ent, rid):
        raise errors.DataverseError(412, errors.DUPLICATE_RECORD, "Cannot insert duplicate key.")
    now = org.now_text()
    cols[ent.pk] = rid
    try:
        insert_raw(org, ent.logical, cols, caller.userid, now)
    except sqlite3.IntegrityError:
        raise _duplicate_key(ent) from None
    for cnav, other, oid in ch.collection_binds:
        associate(org, caller, ent, rid, cnav, other, oid)
    return rid


def _duplicate_key(ent: Entity) -> errors.DataverseError:
    names = ", ".join(k["SchemaName"] for k in ent.keys) or "key"
    return errors.DataverseError(
        412, errors.DUPLICATE_RECORD_ENTITY_KEY,
        f"A record that has the attribute values {names} already exists. The entity key {names} requires that "
        "this set of attributes contains unique values. Select unique values and try again.")


def update(org: DataverseOrg, caller: Caller, ent: Entity, rid: str, body: Any, *,
           refs: dict[str, str] | None = None, current: dict[str, Any] | None = None) -> None:
    current = current or fetch_row(org, ent, rid)
    if current is None:
        raise errors.not_found(ent.logical, rid)
    check_privilege(org, caller, "Write", ent)
    ch = parse_body(org, ent, body, creating=False, refs=refs)
    cols = ch.columns
    if ent.pk in cols:
        if cols.pop(ent.pk) != rid:
            raise errors.bad_request("The primary key in the body doesn't match the key in the URL.",
                                     errors.INVALID_ARGUMENT)
    _apply_state(ent, cols, creating=False)
    _full_name(ent, cols, current)
    if ch.owner is not None and ent.user_owned:
        check_privilege(org, caller, "Assign", ent)
        old = (current.get("ownerid"), current.get("ownerid__type"))
        if ch.owner != old:
            cols["ownerid"], cols["ownerid__type"] = ch.owner
            cols["owningbusinessunit"] = _business_unit_of(org, *ch.owner)
            if tracking.tracks(org.conn, ent.logical, "owner"):
                _track(org, caller, tracking.owner_event(ent.logical, rid, old, ch.owner))
    write_columns(org, caller, ent, rid, cols)
    for cnav, other, oid in ch.collection_binds:
        associate(org, caller, ent, rid, cnav, other, oid)


def write_columns(org: DataverseOrg, caller: Caller | None, ent: Entity, rid: str, cols: dict[str, Any]) -> None:
    """Low-level update: bumps versionnumber and modifiedon/modifiedby."""
    cols = dict(cols)
    cols["versionnumber"] = org.next_version()
    if "modifiedon" in ent.attrs:
        cols["modifiedon"] = org.now_text()
        cols["modifiedby"] = caller.userid if caller else org.system_user_id
        cols["modifiedby__type"] = "systemuser"
    sets = ", ".join(f"{q(c)} = ?" for c in cols)
    try:
        org.conn.execute(f"UPDATE {q(ent.logical)} SET {sets} WHERE {q(ent.pk)} = ?", [*cols.values(), rid])
    except sqlite3.IntegrityError:
        raise _duplicate_key(ent) from None


def delete(org: DataverseOrg, caller: Caller, ent: Entity, rid: str) -> None:
    if not exists(org, ent, rid):
        raise errors.not_found(ent.logical, rid)
    check_privilege(org, caller, "Delete", ent)
    if ent.logical in ("systemuser", "businessunit", "organization", "sdkmessage", "sdkmessagefilter") \
            or ent.is_intersect:
        raise errors.DataverseError(
            405, errors.INVALID_ARGUMENT,
            f"The 'Delete' method does not support entities of type '{ent.logical}'. MessageProcessorCache returned "
            "MessageProcessor.Empty.")
    _delete(org, caller, ent, rid, depth=0)


def _delete(org: DataverseOrg, caller: Caller, ent: Entity, rid: str, depth: int) -> None:
    if depth > 20:
        raise errors.bad_request("Cascade depth exceeded.", errors.INVALID_ARGUMENT)
    for rel in org.md.relationships.values():
        if rel["RelationshipType"] == "OneToManyRelationship":
            if rel["ReferencedEntity"] != ent.logical:
                continue
            child = org.md.entities.get(rel["ReferencingEntity"])
            if child is None:
                continue
            col = rel["ReferencingAttribute"]
            children = [r[0] for r in org.conn.execute(
                f"SELECT {q(child.pk)} FROM {q(child.logical)} WHERE {q(col)} = ? AND "
                f"({q(col + '__type')} = ? OR {q(col + '__type')} IS NULL)", (rid, ent.logical))]
            cascade = rel["CascadeConfiguration"].get("Delete", "RemoveLink")
            for cid in children:
                if child.logical == ent.logical and cid == rid:
                    write_columns(org, caller, child, cid, {col: None, col + "__type": None})
                elif cascade == "Cascade":
                    _delete(org, caller, child, cid, depth + 1)
                else:
                    write_columns(org, caller, child, cid, {col: None, col + "__type": None})
        else:
            for side in ("1", "2"):
                if rel[f"Entity{side}LogicalName"] != ent.logical:
                    continue
                inter = org.md.entities.get(rel["IntersectEntityName"])
                if inter is None:
                    continue
                col = rel[f"Entity{side}IntersectAttribute"]
                for (iid,) in org.conn.execute(
                        f"SELECT {q(inter.pk)} FROM {q(inter.logical)} WHERE {q(col)} = ?", (rid,)).fetchall():
                    _remove_row(org, inter, iid)
    _remove_row(org, ent, rid)
    if tracking.tracks(org.conn, ent.logical, "delete"):
        _track(org, caller, tracking.delete_event(ent.logical, rid))


def _remove_row(org: DataverseOrg, ent: Entity, rid: str) -> None:
    org.conn.execute(f"DELETE FROM {q(ent.logical)} WHERE {q(ent.pk)} = ?", (rid,))
    org.conn.execute("INSERT INTO _tombstone VALUES (?,?,?,?)", (ent.logical, rid, org.next_version(),
                                                                 org.now_text()))


def _track(org: DataverseOrg, caller: Caller, values: dict[str, Any]) -> None:
    insert_raw(org, tracking.ENTITY, values, caller.userid, org.now_text())


def associate(org: DataverseOrg, caller: Caller, ent: Entity, rid: str, nav: CollectionNav, other: Entity,
              oid: str) -> None:
    if other.logical != nav.other:
        raise errors.bad_request(f"A '{other.logical}' record cannot be associated through '{nav.name}'.")
    for e, i in ((ent, rid), (other, oid)):
        if not exists(org, e, i):
            raise errors.not_found(e.logical, i)
    check_privilege(org, caller, "Write", ent)
    if nav.kind == "1n":
        child = org.md.entities[nav.other]
        write_columns(org, caller, child, oid, {nav.referencing_attr: rid,
                                                nav.referencing_attr + "__type": ent.logical})
        return
    inter = org.md.entities[nav.intersect]
    dup = org.conn.execute(f"SELECT 1 FROM {q(inter.logical)} WHERE {q(nav.self_attr)} = ? AND "
                           f"{q(nav.other_attr)} = ?", (rid, oid)).fetchone()
    if dup is not None:
        raise errors.DataverseError(412, errors.DUPLICATE_RECORD, "Cannot insert duplicate key.")
    insert_raw(org, inter.logical, {nav.self_attr: rid, nav.other_attr: oid}, caller.userid, org.now_text())


def disassociate(org: DataverseOrg, caller: Caller, ent: Entity, rid: str, nav: CollectionNav, oid: str) -> None:
    if not exists(org, ent, rid):
        raise errors.not_found(ent.logical, rid)
    check_privilege(org, caller, "Write", ent)
    if nav.kind == "1n":
        child = org.md.entities[nav.other]
        row = fetch_row(org, child, oid)
        if row is None or row.get(nav.referencing_attr) != rid:
            raise errors.not_found(child.logical, oid)
        write_columns(org, caller, child, oid, {nav.referencing_attr: None, nav.referencing_attr + "__type": None})
        return
    inter = org.md.entities[nav.intersect]
    row = org.conn.execute(f"SELECT {q(inter.pk)} FROM {q(inter.logical)} WHERE {q(nav.self_attr)} = ? AND "
                           f"{q(nav.other_attr)} = ?", (rid, oid)).fetchone()
    if row is None:
        raise errors.not_found(inter.logical, oid)
    _remove_row(org, inter, row[0])
    if tracking.tracks_relationship(org.conn, nav.relationship):
        rel = org.md.relationships[nav.relationship]
        if rel["Entity1LogicalName"] == ent.logical:
            event = tracking.disassociate_event(nav.relationship, ent.logical, rid, nav.other, oid)
        else:
            event = tracking.disassociate_event(nav.relationship, nav.other, oid, ent.logical, rid)
        _track(org, caller, event)


def touch(org: DataverseOrg, ent: Entity, rid: str) -> None:
    """Another writer got there first (race fault): bump the row version as SYSTEM."""
    if exists(org, ent, rid):
        write_columns(org, None, ent, rid, {})
