"""The emulated Web API behind the HTTP layer: routes a parsed request (path after ``/api/data/v9.x/``)
to reads, writes, metadata, ``$batch`` and the bulk actions, and renders Dataverse-shaped responses.

Runs synchronously under the org lock (in a worker thread); ``$batch`` executes its parts through
the same ``dispatch`` so every operation behaves identically inside and outside a batch.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..auth_protocol import Principal
from . import batch as batchfmt
from . import errors, fetchxml, query, records, rowjson, standard
from .conditions import QueryContext
from .mdquery import MetadataApi, split_path
from .metadata import Entity, q
from .odata import Annotations, parse_prefer
from .org import Caller, DataverseOrg

log = logging.getLogger(__name__)
JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
_SEG_RE = re.compile(r"^([A-Za-z0-9_.]+)(?:\((.*)\))?$", re.S)
_METADATA_ROOTS = ("EntityDefinitions", "RelationshipDefinitions", "GlobalOptionSetDefinitions")
_BULK = {"Microsoft.Dynamics.CRM.CreateMultiple": "CreateMultiple",
         "Microsoft.Dynamics.CRM.UpdateMultiple": "UpdateMultiple",
         "Microsoft.Dynamics.CRM.UpsertMultiple": "UpsertMultiple"}


@dataclass
class Request:
    method: str
    path: str  # after the service root, percent-decoded, no leading slash
    raw_query: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    root: str  # service root URL, e.g. http://127.0.0.1:8000/api/data/v9.2
    principal: Principal
    race: bool = False  # fault injection: a concurrent writer touches the row before a conditional write

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.raw_query, keep_blank_values=True))

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise errors.bad_request("The request body is not valid JSON.", errors.PAYLOAD_ERROR) from None


class Response:
    """A response of the emulated service. ``parts``: the body in pieces (a page of rows, see ``rowjson``), which
    the HTTP layer sends one slice after another and ``body`` joins on first use (``$batch``)."""

    __slots__ = ("_body", "headers", "parts", "records", "status")

    def __init__(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"", records: int = 0,
                 parts: list[bytes] | None = None) -> None:
        self.status = status
        self.headers = {} if headers is None else headers
        self.records = records
        self.parts = parts
        self._body = None if parts is not None else body

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = b"".join(self.parts or ())
        return self._body


def json_response(status: int, body: Any, headers: dict[str, str] | None = None, records: int = 0) -> Response:
    h = {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}
    h.update(headers or {})
    return Response(status, h, records=records, parts=rowjson.body_parts(body))  # a page's rows come pre-encoded


def error_response(e: errors.DataverseError) -> Response:
    h = {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}
    h.update(e.headers)
    return Response(e.status, h, json.dumps(e.body()).encode())


def no_content(headers: dict[str, str] | None = None, records: int = 0) -> Response:
    h = {"OData-Version": "4.0"}
    h.update(headers or {})
    return Response(204, h, b"", records)


class DataverseService:
    def __init__(self, org: DataverseOrg) -> None:
        self.org = org

    # ---- entry point -------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        with self.org.lock:
            try:
                caller = self.caller_for(req.principal)
                return self.dispatch(req, caller, refs=None)
            except errors.DataverseError as e:
                return error_response(e)
            except Exception:  # an emulator bug must still look like the service's 500
                log.exception("unexpected error in the Dataverse emulator")
                return error_response(errors.DataverseError(500, errors.UNEXPECTED, "An unexpected error occurred."))

    def caller_for(self, principal: Principal) -> Caller:
        """The systemuser of a principal; auto-provisioned (root business unit) on first sight."""
        org = self.org
        cached = org.callers.get(principal.object_id)
        if cached is not None:
            return cached
        oid = principal.object_id.lower()
        row = org.conn.execute("SELECT systemuserid, businessunitid, fullname FROM systemuser WHERE "
                               "azureactivedirectoryobjectid = ?", (oid,)).fetchone()
        if row is None:
            uid = str(uuid.uuid5(uuid.UUID(org.org_id), f"user:{oid}"))
            is_app = principal.upn is None
            values: dict[str, Any] = {
                "systemuserid": uid, "azureactivedirectoryobjectid": oid, "businessunitid": org.root_business_unit_id,
                "businessunitid__type": "businessunit", "isdisabled": 0, "accessmode": 4 if is_app else 0,
            }
            if is_app:
                values.update({"fullname": f"# {principal.display_name}", "lastname": f"# {principal.display_name}",
                               "applicationid": principal.app_id.lower(),
                               "domainname": f"{principal.app_id.lower()}@{principal.tenant_id}"})
            else:
                first, _, last = principal.display_name.partition(" ")
                values.update({"fullname": principal.display_name, "firstname": first or None,
                               "lastname": last or first, "domainname": principal.upn,
                               "internalemailaddress": principal.upn})
            with org.transaction():
                records.insert_raw(org, "systemuser", values, org.system_user_id, org.now_text())
            row = (uid, org.root_business_unit_id, values["fullname"])
        caller = Caller(row[0], row[1], oid, row[2])
        org.callers[principal.object_id] = caller
        return caller

    def _env(self, req: Request, caller: Caller, prefer: dict[str, str]) -> query.ReadEnv:
        teams = tuple(r[0] for r in self.org.conn.execute(
            "SELECT teamid FROM teammembership WHERE systemuserid = ?", (caller.userid,)))
        ctx = QueryContext(self.org.now(), caller.userid, caller.businessunitid, teams)
        return query.ReadEnv(self.org, req.root, Annotations(prefer.get("odata.include-annotations")), ctx,
                             req.query, req.raw_query)

    # ---- routing -------------------------------------------------------------------------------------
    def dispatch(self, req: Request, caller: Caller, refs: dict[str, str] | None) -> Response:
        prefer = parse_prefer([req.headers.get("prefer", "")])
        path = req.path.strip("/")
        if path.startswith("$") and refs is not None and re.match(r"^\$\d+", path):
            head = path.split("/", 1)
            target = refs.get(head[0])
            if target is None:
                raise errors.bad_request(f"Content-ID Reference: '{head[0]}' does not exist in the batch context.")
            path = target + ("/" + head[1] if len(head) > 1 else "")
        segments = split_path(path)
        method = req.method
        if not segments:
            if method != "GET":
                raise errors.method_not_allowed()
            return json_response(200, {"@odata.context": f"{req.root}/$metadata", "value": [
                {"name": e.set_name, "kind": "EntitySet", "url": e.set_name} for e in self.org.md.entities.values()]})
        first = segments[0]
        if first == "$metadata":
            return Response(200, {"Content-Type": "application/xml", "OData-Version": "4.0"}, self._csdl())
        if first == "$batch":
            if method != "POST" or refs is not None:
                raise errors.method_not_allowed()
            return self._batch(req, caller, prefer)
        if first in ("WhoAmI", "WhoAmI()"):
            if method != "GET":
                raise errors.method_not_allowed()
            return json_response(200, {"@odata.context": f"{req.root}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                                       "BusinessUnitId": caller.businessunitid, "UserId": caller.userid,
                                       "OrganizationId": self.org.org_id})
        if first.split("(")[0] in _METADATA_ROOTS:
            api = MetadataApi(self.org.md, req.root)
            if method == "GET":
                return json_response(200, api.get(segments, req.query))
            if method == "POST":
                with self.org.transaction():
                    entity_path = api.post(segments, req.json(), self.org.now_text())
                return no_content({"OData-EntityId": f"{req.root}/{entity_path}"})
            if method == "PUT":
                with self.org.transaction():
                    api.put(segments, req.json(), now=self.org.now_text(),
                            merge_labels=req.headers.get("mscrm.mergelabels", "").strip().lower() == "true")
                return no_content()
            if method == "PATCH":
                raise errors.DataverseError(405, errors.INVALID_ARGUMENT,
                                            "PATCH is not supported for metadata: PUT the complete definition.")
            raise errors.DataverseError(405, errors.INVALID_ARGUMENT,
                                        f"{method} on metadata is not supported by the emulator.")
        m = _SEG_RE.match(first)
        if m is None:
            raise errors.segment_not_found(first)
        ent = self.org.md.entity_by_set(m.group(1))
        key = m.group(2)
        rest = segments[1:]
        if key is None:
            return self._collection(req, caller, prefer, ent, rest, refs)
        return self._record(req, caller, prefer, ent, key, rest, refs)

    # ---- collections -----------------------------------------------------------------------------------
    def _collection(self, req: Request, caller: Caller, prefer: dict[str, str], ent: Entity, rest: list[str],
                    refs: dict[str, str] | None) -> Response:
        method = req.method
        if rest:
            if rest == ["$count"] and method == "GET":
                records.check_privilege(self.org, caller, "Read", ent)
                n = query.count_rows(self._env(req, caller, prefer), ent)
                return Response(200, {"Content-Type": "text/plain; charset=utf-8", "OData-Version": "4.0"},
                                str(n).encode())
            if len(rest) == 1 and rest[0] in _BULK and method == "POST":
                return self._bulk(req, caller, ent, _BULK[rest[0]], refs)
            raise errors.segment_not_found(rest[0])
        if method == "GET":
            records.check_privilege(self.org, caller, "Read", ent)
            env = self._env(req, caller, prefer)
            q_ = env.query
            if "fetchXml" in q_:
                body, n = fetchxml.run_fetch(env, ent, q_["fetchXml"])
                return json_response(200, body, self._applied(prefer, []), records=n)
            if "$deltatoken" in q_:
                body, applied, n = query.read_delta(env, ent, ent.set_name, prefer)
            elif "odata.track-changes" in prefer:
                body, applied, n = query.read_tracked_initial(env, ent, ent.set_name, prefer)
            else:
                body, applied, n = query.read_collection(env, ent, ent.set_name, prefer)
            return json_response(200, body, self._applied(prefer, applied), records=n)
        if method == "POST":
            with self.org.transaction():
                rid = records.create(self.org, caller, ent, req.json(), refs=refs)
            return self._written(req, caller, prefer, ent, rid, created=True)
        raise errors.method_not_allowed()

    def _applied(self, prefer: dict[str, str], applied: list[str]) -> dict[str, str]:
        items = list(applied)
        if "odata.include-annotations" in prefer:
            items.append(f'odata.include-annotations="{prefer["odata.include-annotations"]}"')
        return {"Preference-Applied": ",".join(items)} if items else {}

    def _written(self, req: Request, caller: Caller, prefer: dict[str, str], ent: Entity, rid: str,
                 created: bool) -> Response:
        url = f"{req.root}/{ent.set_name}({rid})"
        if prefer.get("return") == "representation":
            env = self._env(req, caller, prefer)
            body, version = query.read_one(env, ent, rid)
            headers = {"Preference-Applied": "return=representation", "ETag": f'W/"{version}"'}
            return json_response(201 if created else 200, body, headers, records=1)
        return no_content({"OData-EntityId": url, "Location": url} if req.headers.get("x-batch-part")
                          else {"OData-EntityId": url}, records=1)

    # ---- single records ------------------------------------------------------------------------------
    def _record(self, req: Request, caller: Caller, prefer: dict[str, str], ent: Entity, key: str,
                rest: list[str], refs: dict[str, str] | None) -> Response:
        org = self.org
        rid, key_values = records.resolve_key(org, ent, key)
        method = req.method
        if not rest:
            if method == "GET":
                records.check_privilege(org, caller, "Read", ent)
                if rid is None:
                    raise errors.not_found(ent.logical, key)
                env = self._env(req, caller, prefer)
                body, version = query.read_one(env, ent, rid)
                etag = f'W/"{version}"'
                inm = req.headers.get("if-none-match")
                if inm and inm != "null" and inm == etag and "$expand" not in req.query \
                        and "odata.include-annotations" not in prefer:
                    return Response(304, {"ETag": etag, "OData-Version": "4.0"})
                return json_response(200, body, {"ETag": etag, **self._applied(prefer, [])}, records=1)
            if method == "PATCH":
                return self._patch(req, caller, prefer, ent, rid, key_values, refs)
            if method == "DELETE":
                with org.transaction():
                    if rid is None:
                        raise errors.not_found(ent.logical, key)
                    self._check_if_match(req, ent, rid, must_exist=True)
                    records.delete(org, caller, ent, rid)
                return no_content(records=1)
            raise errors.method_not_allowed()
        if rid is None:
            raise errors.not_found(ent.logical, key)
        seg = rest[0]
        if len(rest) >= 2 and rest[-1] == "$ref" or (len(rest) == 2 and rest[1] == "$ref"):
            return self._ref(req, caller, ent, rid, rest, refs)
        if seg == "$ref":
            raise errors.segment_not_found(seg)
        attr = ent.attr_by_odata(seg)
        if attr is not None and not (seg in ent.navs):
            return self._property(req, caller, ent, rid, attr, rest[1:])
        nav_m = _SEG_RE.match(seg)
        if nav_m and method == "GET" and len(rest) == 1:
            return self._navigation_read(req, caller, prefer, ent, rid, nav_m.group(1))
        raise errors.segment_not_found(seg)

    def _check_if_match(self, req: Request, ent: Entity, rid: str, *, must_exist: bool) -> dict[str, Any] | None:
        org = self.org
        if_match = req.headers.get("if-match")
        if req.race and if_match and if_match != "*":
            records.touch(org, ent, rid)
        row = records.fetch_row(org, ent, rid)
        if if_match:
            if row is None:
                raise errors.not_found(ent.logical, rid)
            if if_match != "*":
                tags = [t.strip() for t in if_match.split(",")]
                current = f'W/"{row["versionnumber"]}"'
                if current not in tags and f'"{row["versionnumber"]}"' not in tags:
                    raise errors.concurrency_mismatch()
        elif must_exist and row is None:
            raise errors.not_found(ent.logical, rid)
        return row

    def _patch(self, req: Request, caller: Caller, prefer: dict[str, str], ent: Entity, rid: str | None,
               key_values: dict[str, Any] | None, refs: dict[str, str] | None) -> Response:
        org = self.org
        body = req.json()
        with org.transaction():
            if key_values is not None:  # alternate key: strip the key columns from the body on update
                if rid is not None:
                    body = {k: v for k, v in body.items() if k not in key_values}
            row = None
            if rid is not None:
                row = self._check_if_match(req, ent, rid, must_exist=False)
            elif req.headers.get("if-match"):
                raise errors.not_found(ent.logical, "key")
            inm = req.headers.get("if-none-match")
            if inm == "*" and row is not None:
                raise errors.already_exists()
            if row is None:
                new_id = records.create(org, caller, ent, body, record_id=rid, key_values=key_values, refs=refs)
                created = True
            else:
                assert rid is not None
                records.update(org, caller, ent, rid, body, refs=refs, current=row)
                new_id, created = rid, False
        return self._written(req, caller, prefer, ent, new_id, created)

    def _property(self, req: Request, caller: Caller, ent: Entity, rid: str, attr: Any, rest: list[str]) -> Response:
        org = self.org
        if req.method == "GET":
            records.check_privilege(org, caller, "Read", ent)
            row = records.fetch_row(org, ent, rid)
            if row is None:
                raise errors.not_found(ent.logical, rid)
            value = query.serialize(self._env(req, caller, {}), query.make_plan(ent, [attr.logical]),
                                    [tuple([row["versionnumber"], row[attr.logical]] +
                                           ([row[attr.type_column]] if attr.is_lookup else []))])[0]
            v = value[attr.odata_name]
            if rest == ["$value"]:
                if v is None:
                    return Response(204, {"OData-Version": "4.0"})
                text = ("true" if v else "false") if isinstance(v, bool) else str(v)
                return Response(200, {"Content-Type": "text/plain", "OData-Version": "4.0"}, text.encode())
            if rest:
                raise errors.segment_not_found(rest[0])
            if v is None:
                return Response(204, {"OData-Version": "4.0"})
            return json_response(200, {"@odata.context": f"{req.root}/$metadata#{ent.set_name}({rid})/{attr.odata_name}",
                                       "value": v})
        if rest:
            raise errors.segment_not_found(rest[0])
        if req.method == "PUT":
            payload = req.json()
            if not isinstance(payload, dict) or "value" not in payload:
                raise errors.bad_request("The body must be {\"value\": ...}.", errors.PAYLOAD_ERROR)
            with org.transaction():
                records.update(org, caller, ent, rid, {attr.logical: payload["value"]})
            return no_content(records=1)
        if req.method == "DELETE":
            if attr.meta.get("RequiredLevel", {}).get("Value") == "SystemRequired":
                raise errors.bad_request(f"The attribute '{attr.logical}' is SystemRequired and can't be cleared.",
                                         errors.INVALID_ARGUMENT)
            with org.transaction():
                records.update(org, caller, ent, rid, {attr.logical: None})
            return no_content(records=1)
        raise errors.method_not_allowed()

    def _navigation_read(self, req: Request, caller: Caller, prefer: dict[str, str], ent: Entity, rid: str,
                         name: str) -> Response:
        org = self.org
        env = self._env(req, caller, prefer)
        nav = ent.navs.get(name)
        if nav is not None:
            row = records.fetch_row(org, ent, rid)
            if row is None:
                raise errors.not_found(ent.logical, rid)
            tid, ttype = row.get(nav.attr), row.get(nav.attr + "__type") or nav.targets[0]
            if tid is None or ttype not in nav.targets:
                return Response(204, {"OData-Version": "4.0"})
            target = org.md.entities[ttype]
            body, version = query.read_one(env, target, tid)
            return json_response(200, body, {"ETag": f'W/"{version}"'}, records=1)
        cnav = ent.collection_navs.get(name)
        if cnav is None:
            raise errors.segment_not_found(name)
        if not records.exists(org, ent, rid):
            raise errors.not_found(ent.logical, rid)
        other = org.md.entities[cnav.other]
        if cnav.kind == "1n":
            where = f"{q(other.logical)}.{q(cnav.referencing_attr)} = :_parent"
        else:
            where = (f"{q(other.logical)}.{q(other.pk)} IN (SELECT {q(cnav.other_attr)} FROM {q(cnav.intersect)} "
                     f"WHERE {q(cnav.self_attr)} = :_parent)")
        body, applied, n = query.read_collection(
            env, other, f"{ent.set_name}({rid})/{name}", prefer, extra_where=where, extra_params={"_parent": rid},
            context=f"{req.root}/$metadata#{other.set_name}")
        return json_response(200, body, self._applied(prefer, applied), records=n)

    def _ref(self, req: Request, caller: Caller, ent: Entity, rid: str, rest: list[str],
             refs: dict[str, str] | None) -> Response:
        org = self.org
        nav_m = _SEG_RE.match(rest[0])
        if nav_m is None or len(rest) != 2:
            raise errors.segment_not_found("/".join(rest))
        name, child_key = nav_m.group(1), nav_m.group(2)
        method = req.method
        with org.transaction():
            nav = ent.navs.get(name)
            if nav is not None:
                if method == "PUT":
                    payload = req.json()
                    other, oid = records.resolve_ref(org, payload.get("@odata.id"), refs)
                    records.update(org, caller, ent, rid, {f"{name}@odata.bind": f"{other.set_name}({oid})"})
                elif method == "DELETE":
                    records.update(org, caller, ent, rid, {f"{name}@odata.bind": None})
                else:
                    raise errors.method_not_allowed()
                return no_content(records=1)
            cnav = ent.collection_navs.get(name)
            if cnav is None:
                raise errors.segment_not_found(name)
            if method == "POST" and child_key is None:
                payload = req.json()
                other, oid = records.resolve_ref(org, payload.get("@odata.id"), refs)
                records.associate(org, caller, ent, rid, cnav, other, oid)
                return no_content(records=1)
            if method == "DELETE":
                if child_key is not None:
                    oid = records.norm_guid(child_key)
                else:
                    target = req.query.get("$id")
                    if not target:
                        raise errors.bad_request("Disassociate needs the related record: .../nav(<id>)/$ref or $id=.")
                    _, oid = records.resolve_ref(org, target, refs)
                if oid is None:
                    raise errors.bad_request(f"Invalid key '{child_key}'.")
                records.disassociate(org, caller, ent, rid, cnav, oid)
                return no_content(records=1)
            raise errors.method_not_allowed()

    # ---- bulk actions -----------------------------------------------------------------------------------
    def _bulk(self, req: Request, caller: Caller, ent: Entity, message: str, refs: dict[str, str] | None) -> Response:
        org = self.org
        supported = org.conn.execute(
            "SELECT 1 FROM sdkmessagefilter f JOIN sdkmessage m ON m.sdkmessageid = f.sdkmessageid "
            "WHERE m.name = ? AND f.primaryobjecttypecode = ?", (message, ent.logical)).fetchone()
        if supported is None:
            raise errors.DataverseError(
                400, errors.INVALID_ARGUMENT,
                f"The '{message}' method does not support entities of type '{ent.logical}'. MessageProcessorCache "
                "returned MessageProcessor.Empty.")
        payload = req.json()
        targets = payload.get("Targets") if isinstance(payload, dict) else None
        if not isinstance(targets, list):
            raise errors.bad_request("The request body must contain a 'Targets' array.", errors.INVALID_ARGUMENT)
        expected = f"Microsoft.Dynamics.CRM.{ent.logical}"
        for i, t in enumerate(targets):
            if not isinstance(t, dict) or str(t.get("@odata.type", "")).lstrip("#") != expected:
                raise errors.bad_request(
                    f"Targets[{i}]: every item needs \"@odata.type\": \"{expected}\".", errors.INVALID_ARGUMENT)
        ids: list[str] = []
        with org.transaction():  # standard tables: all-or-nothing
            if message == "CreateMultiple":
                for t in targets:
                    ids.append(records.create(org, caller, ent, t, refs=refs))
                return json_response(200, {"@odata.context": f"{req.root}/$metadata#Microsoft.Dynamics.CRM."
                                                             "CreateMultipleResponse", "Ids": ids}, records=len(ids))
            seen: set[str] = set()
            for i, t in enumerate(targets):
                body = {k: v for k, v in t.items() if k != "@odata.id"}
                rid, key_values = self._bulk_target_id(ent, t, i)
                if message == "UpdateMultiple":
                    if rid is None:
                        raise errors.bad_request(f"Targets[{i}]: the primary key '{ent.pk}' is required.",
                                                 errors.INVALID_ARGUMENT)
                    if rid in seen:
                        continue  # UpdateMultiple applies the first and ignores later duplicates
                    seen.add(rid)
                    records.update(org, caller, ent, rid, body, refs=refs)
                    continue
                ident = json.dumps(key_values, sort_keys=True) if key_values else rid
                if ident in seen:
                    raise errors.bad_request(f"Targets[{i}]: UpsertMultiple doesn't allow duplicate records in one "
                                             "request.", errors.INVALID_ARGUMENT)
                seen.add(ident)
                if rid is not None and records.exists(org, ent, rid):
                    if key_values:
                        body = {k: v for k, v in body.items() if k not in key_values}
                    records.update(org, caller, ent, rid, body, refs=refs)
                else:
                    records.create(org, caller, ent, body, record_id=rid if key_values is None else None,
                                   key_values=key_values, refs=refs)
        return no_content(records=len(targets))

    def _bulk_target_id(self, ent: Entity, t: dict[str, Any], i: int) -> tuple[str | None, dict[str, Any] | None]:
        odata_id = t.get("@odata.id")
        if odata_id:
            m = records._REF_RE.match(str(odata_id).strip())
            if m is None or m.group(1) != ent.set_name:
                raise errors.bad_request(f"Targets[{i}]: invalid @odata.id '{odata_id}'.", errors.INVALID_ARGUMENT)
            return records.resolve_key(self.org, ent, m.group(2))
        pk = t.get(ent.pk)
        return (records.norm_guid(pk) if pk else None), None

    # ---- $batch ------------------------------------------------------------------------------------------
    def _batch(self, req: Request, caller: Caller, prefer: dict[str, str]) -> Response:
        items = batchfmt.parse_batch(req.headers.get("content-type", ""), req.body)
        if batchfmt.count_operations(items) > batchfmt.MAX_OPERATIONS:
            raise errors.bad_request(f"The number of requests in the batch exceeds the limit of "
                                     f"{batchfmt.MAX_OPERATIONS}.", errors.INVALID_ARGUMENT)
        continue_on_error = "odata.continue-on-error" in prefer
        refs: dict[str, str] = {}
        out: list[batchfmt.PartResponse | list[batchfmt.PartResponse]] = []
        status = 200
        total = 0
        for item in items:
            if isinstance(item, batchfmt.ChangeSet):
                parts: list[batchfmt.PartResponse] = []
                failed: tuple[errors.DataverseError, str | None] | None = None
                try:
                    with self.org.transaction():
                        for br in item.requests:
                            if br.method == "GET":
                                raise errors.bad_request("GET requests are not allowed inside a change set.")
                            try:
                                r = self._run_part(req, caller, br, refs)
                            except errors.DataverseError as e:
                                failed = (e, br.content_id)
                                raise
                            parts.append(batchfmt.PartResponse(r.status, r.headers, r.body, br.content_id))
                            total += r.records
                            if br.content_id and "OData-EntityId" in r.headers:
                                refs["$" + br.content_id] = r.headers["OData-EntityId"][len(req.root) + 1:]
                except errors.DataverseError as e:
                    cid = failed[1] if failed else None
                    for k in [k for k in refs if k[1:] in {p.content_id for p in parts}]:
                        del refs[k]
                    er = error_response(e)
                    out.append(batchfmt.PartResponse(er.status, er.headers, er.body, cid))
                    if not continue_on_error:
                        status = e.status
                        break
                    continue
                out.append(parts)
            else:
                try:
                    r = self._run_part(req, caller, item, refs)
                except errors.DataverseError as e:
                    r = error_response(e)
                total += r.records
                out.append(batchfmt.PartResponse(r.status, r.headers, r.body, item.content_id))
                if r.status >= 400 and not continue_on_error:
                    status = r.status
                    break
        content_type, body = batchfmt.render_batch(out)
        headers = {"Content-Type": content_type, "OData-Version": "4.0"}
        if continue_on_error:
            headers["Preference-Applied"] = "odata.continue-on-error"
        return Response(status, headers, body, total)

    def _run_part(self, outer: Request, caller: Caller, br: batchfmt.BatchRequest, refs: dict[str, str]) -> Response:
        url = br.url
        if url.startswith("$"):
            path, _, raw_query = url.partition("?")
        else:
            parts = urlsplit(url)
            path, raw_query = parts.path, parts.query
            m = re.search(r"/api/data/v9\.[0-2]/", path)
            if m:
                path = path[m.end():]
            elif path.startswith("/"):
                raise errors.bad_request(f"The URL '{url}' is not under the service root.")
        headers = dict(br.headers)
        headers["x-batch-part"] = "1"
        inner = Request(br.method, unquote(path), raw_query, headers, br.body, outer.root, outer.principal)
        r = self.dispatch(inner, caller, refs)
        if "OData-EntityId" in r.headers:
            r.headers.setdefault("Location", r.headers["OData-EntityId"])
        return r

    # ---- $metadata ---------------------------------------------------------------------------------------
    def _csdl(self) -> bytes:
        edm = {"String": "Edm.String", "Memo": "Edm.String", "EntityName": "Edm.String", "Integer": "Edm.Int32",
               "Picklist": "Edm.Int32", "State": "Edm.Int32", "Status": "Edm.Int32", "BigInt": "Edm.Int64",
               "Decimal": "Edm.Decimal", "Money": "Edm.Decimal", "Double": "Edm.Double", "Boolean": "Edm.Boolean",
               "DateTime": "Edm.DateTimeOffset", "Uniqueidentifier": "Edm.Guid"}
        out = ['<?xml version="1.0" encoding="utf-8"?>',
               '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>',
               '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">']
        for e in self.org.md.entities.values():
            out.append(f'<EntityType Name="{e.logical}"><Key><PropertyRef Name="{e.pk}" /></Key>')
            for a in e.attrs.values():
                out.append(f'<Property Name="{a.odata_name}" Type="{edm.get(a.atype, "Edm.Guid")}" />')
            for nav in e.navs.values():
                t = nav.targets[0] if len(nav.targets) == 1 else "principal"
                out.append(f'<NavigationProperty Name="{nav.name}" Type="mscrm.{t}" />')
            for cnav in e.collection_navs.values():
                out.append(f'<NavigationProperty Name="{cnav.name}" Type="Collection(mscrm.{cnav.other})" />')
            out.append("</EntityType>")
        out.append('<EntityContainer Name="System">')
        for e in self.org.md.entities.values():
            track = ('<Annotation Term="Org.OData.Capabilities.V1.ChangeTracking"><Record><PropertyValue '
                     'Property="Supported" Bool="true" /></Record></Annotation>') if e.change_tracking else ""
            out.append(f'<EntitySet Name="{e.set_name}" EntityType="Microsoft.Dynamics.CRM.{e.logical}">{track}'
                       "</EntitySet>")
        out.append("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
        return "".join(out).encode()


__all__ = ["DataverseService", "Request", "Response", "standard"]
