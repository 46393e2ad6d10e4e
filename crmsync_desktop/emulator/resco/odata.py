"""Resco Cloud OData v4 service for one organization (resco.md §7.2, §7.3).

Entity sets are named by entity logical name, keys are the ``id`` GUID (``account('…')`` as the
Power Automate connector writes it, ``account(…)`` also accepted), ETags are the row version,
and the server pages at 1,000 rows with ``@odata.nextLink``. ``$filter`` goes through odata-query
with the SQLite fixes from stack-recipes §9.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

import odata_query.ast as oast
import odata_query.exceptions
import sqlalchemy as sa
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.sqlalchemy import AstToSqlAlchemyCoreVisitor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crmsync_desktop.emulator.resco.schema import FIELD_TYPES, TARGET_SUFFIX, EntityDef, SchemaError
from crmsync_desktop.emulator.resco.store import ConcurrencyError, NotFound, RescoOrg

__all__ = ["MAX_PAGE_SIZE", "handle_odata"]

MAX_PAGE_SIZE = 1000
_LEXER, _PARSER = ODataLexer(), ODataParser()
logging.getLogger("odata_query").setLevel(logging.ERROR)
_KEY = re.compile(r"^([a-z][a-z0-9_]*)\(\s*'?([0-9a-fA-F-]{36})'?\s*\)$")
_BIND = re.compile(r"^/?([a-z][a-z0-9_]*)\(\s*'?([0-9a-fA-F-]{36})'?\s*\)$")
ODATA_HEADERS = {"OData-Version": "4.0"}


class ODataError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message}},
            status_code=self.status,
            headers=ODATA_HEADERS,
        )


class _Visitor(AstToSqlAlchemyCoreVisitor):
    """stack-recipes §9: escape LIKE wildcards, ``indexof`` via instr, offsets converted to naive UTC."""

    def _substr_function(self, field: Any, substr: Any, fname: str) -> Any:
        if isinstance(substr, oast.String):
            return getattr(self.visit(field), fname)(substr.val, autoescape=True)
        return super()._substr_function(field, substr, fname)

    def func_indexof(self, first: Any, second: Any) -> Any:
        return sa.func.instr(self.visit(first), self.visit(second)) - 1

    def visit_DateTime(self, node: Any) -> Any:
        bound = super().visit_DateTime(node)
        if isinstance(bound.value, dt.datetime) and bound.value.tzinfo is not None:
            bound.value = bound.value.astimezone(dt.UTC).replace(tzinfo=None)
        return bound


def filter_clause(table: sa.Table, text: str) -> Any:
    try:
        return _Visitor(table).visit(_PARSER.parse(_LEXER.tokenize(text)))
    except (odata_query.exceptions.ODataException, NotImplementedError) as exc:
        raise ODataError(400, "0x80060888", f"Invalid $filter: {exc}") from exc


def etag(row: dict[str, Any]) -> str:
    return f'W/"{row["versionnumber"]}"'


def _parse_etag(value: str | None) -> int | None:
    if value is None or value.strip() == "*":
        return None
    match = re.search(r'"(\d+)"', value)
    if not match:
        raise ODataError(
            412, "0x80060882", "The version of the existing record doesn't match the If-Match header."
        )
    return int(match.group(1))


def record_json(
    entity: EntityDef, row: dict[str, Any], select: list[str] | None, annotate: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {"@odata.etag": etag(row)}
    names = select if select else list(entity.fields)
    for name in names:
        f = entity.fields[name]
        out[name] = f.to_wire(row.get(name))
        if annotate and f.type == "lookup" and row.get(name) is not None:
            out[f"{name}@resco.lookuplogicalname"] = row.get(name + TARGET_SUFFIX)
        if annotate and f.type == "picklist" and row.get(name) is not None:
            label = next((o["label"] for o in f.options if o["value"] == row[name]), None)
            if label is not None:
                out[f"{name}@OData.Community.Display.V1.FormattedValue"] = label
    if select and "id" not in select:
        out["id"] = row["id"]
    return out


def _body_values(entity: EntityDef, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ODataError(400, "0x80048d19", "The request body must be a JSON object.")
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        if key.endswith("@odata.bind"):
            name = key[: -len("@odata.bind")].lower()
            match = _BIND.match(str(value)) if value is not None else None
            if value is not None and not match:
                raise ODataError(400, "0x80048d19", f"Invalid @odata.bind value '{value}'.")
            values[name] = {"id": match.group(2), "logicalname": match.group(1)} if match else None
        elif "@" in key:
            continue
        else:
            values[key.lower()] = value
    return values


def _service_root(request: Request, org_in_path: bool, org: RescoOrg) -> str:
    base = f"{request.url.scheme}://{request.url.netloc}/odata/v4"
    return f"{base}/{org.name}" if org_in_path else base


async def handle_odata(
    request: Request, org: RescoOrg, user_id: str, path: str, org_in_path: bool
) -> Response:
    try:
        return await _dispatch(
            request, org, user_id, path.strip("/"), _service_root(request, org_in_path, org)
        )
    except ODataError as exc:
        return exc.response()
    except NotFound as exc:
        return ODataError(404, "0x80040217", str(exc)).response()
    except SchemaError as exc:
        return ODataError(400, "0x80048d19", str(exc)).response()
    except ConcurrencyError:
        return ODataError(
            412, "0x80060882", "The version of the existing record doesn't match the If-Match header."
        ).response()


async def _dispatch(request: Request, org: RescoOrg, user_id: str, path: str, root: str) -> Response:
    method = request.method
    if path == "" and method == "GET":
        return JSONResponse(
            {
                "@odata.context": f"{root}/$metadata",
                "value": [
                    {"kind": "EntitySet", "name": e.name, "title": e.display_name, "url": e.name}
                    for e in org.entities.values()
                ],
            },
            headers=ODATA_HEADERS,
        )
    if path == "$metadata" and method == "GET":
        return Response(csdl(org), media_type="application/xml", headers=ODATA_HEADERS)
    if path == "me" and method == "GET":
        entity = org.entity("systemuser")
        body = record_json(entity, org.get("systemuser", user_id), None, annotate=False)
        return JSONResponse(
            {"@odata.context": f"{root}/$metadata#systemuser/$entity", **body}, headers=ODATA_HEADERS
        )
    key = _KEY.match(path)
    if key:
        return await _single(request, org, user_id, key.group(1), key.group(2), root)
    name, _, suffix = path.partition("/")
    if name not in org.entities:
        raise ODataError(404, "0x80060888", f"Resource not found for the segment '{name}'.")
    entity = org.entity(name)
    if suffix == "$count" and method == "GET":
        table = org.tables[entity.name]
        query = sa.select(sa.func.count()).select_from(table)
        if "$filter" in request.query_params:
            query = query.where(filter_clause(table, request.query_params["$filter"]))
        return Response(str(org.scalar(query)), media_type="text/plain")
    if suffix:
        raise ODataError(404, "0x80060888", f"Resource not found for the segment '{suffix}'.")
    if method == "GET":
        return _list(request, org, entity, root)
    if method == "POST":
        values = _body_values(entity, await request.json())
        record_id = values.pop("id", None)  # a client-supplied primary key, as Dataverse allows
        try:
            row = org.create(entity.name, values, user_id, str(record_id) if record_id else None)
        except ValueError as exc:  # SchemaError included
            if "already exists" in str(exc):
                raise ODataError(409, "0x80040237", str(exc)) from exc
            raise ODataError(400, "0x80048d19", str(exc)) from exc
        location = f"{root}/{entity.name}({row['id']})"
        headers = {**ODATA_HEADERS, "Location": location, "OData-EntityId": location, "ETag": etag(row)}
        if "return=representation" in request.headers.get("prefer", ""):
            body = {
                "@odata.context": f"{root}/$metadata#{entity.name}/$entity",
                **record_json(entity, row, None, False),
            }
            return JSONResponse(body, status_code=201, headers=headers)
        return Response(status_code=204, headers=headers)
    raise ODataError(405, "0x80060888", f"Method {method} is not allowed on '{name}'.")


async def _single(
    request: Request, org: RescoOrg, user_id: str, name: str, record_id: str, root: str
) -> Response:
    entity = org.entity(name)
    if request.method == "GET":
        row = org.get(entity.name, record_id)
        if request.headers.get("if-none-match") == etag(row):
            return Response(status_code=304, headers={"ETag": etag(row)})
        select = _select(entity, request.query_params.get("$select"))
        body = {
            "@odata.context": f"{root}/$metadata#{entity.name}/$entity",
            **record_json(entity, row, select, _annotate(request)),
        }
        return JSONResponse(body, headers={**ODATA_HEADERS, "ETag": etag(row)})
    if request.method in ("PATCH", "PUT"):
        values = _body_values(entity, await request.json())
        row = org.update(
            entity.name, record_id, values, user_id, _parse_etag(request.headers.get("if-match"))
        )
        headers = {**ODATA_HEADERS, "ETag": etag(row), "OData-EntityId": f"{root}/{entity.name}({row['id']})"}
        if "return=representation" in request.headers.get("prefer", ""):
            return JSONResponse(
                {
                    "@odata.context": f"{root}/$metadata#{entity.name}/$entity",
                    **record_json(entity, row, None, False),
                },
                headers=headers,
            )
        return Response(status_code=204, headers=headers)
    if request.method == "DELETE":
        org.delete(entity.name, record_id, _parse_etag(request.headers.get("if-match")))
        return Response(status_code=204, headers=ODATA_HEADERS)
    raise ODataError(405, "0x80060888", f"Method {request.method} is not allowed.")


def _annotate(request: Request) -> bool:
    return "odata.include-annotations" in request.headers.get("prefer", "")


def _select(entity: EntityDef, text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in entity.fields:
            raise ODataError(
                400, "0x80060888", f"Could not find a property named '{n}' on type 'RescoCrm.{entity.name}'."
            )
    return names


def _int_option(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ODataError(400, "0x80060888", f"Invalid value '{raw}' for {name}.")
    return int(raw)


def _list(request: Request, org: RescoOrg, entity: EntityDef, root: str) -> Response:
    params = request.query_params
    table = org.tables[entity.name]
    select = _select(entity, params.get("$select"))
    query = sa.select(table)
    where = filter_clause(table, params["$filter"]) if params.get("$filter") else None
    if where is not None:
        query = query.where(where)
    for part in (params.get("$orderby") or "").split(","):
        if not part.strip():
            continue
        column_name, _, direction = part.strip().partition(" ")
        if column_name.lower() not in entity.fields:
            raise ODataError(400, "0x80060888", f"Could not find a property named '{column_name}'.")
        column = table.c[column_name.lower()]
        query = query.order_by(column.desc() if direction.strip().lower() == "desc" else column.asc())
    query = query.order_by(table.c.id)
    top, skip = _int_option(request, "$top"), _int_option(request, "$skip") or 0
    skip += _int_option(request, "$skiptoken") or 0
    page_size = MAX_PAGE_SIZE
    applied: dict[str, str] = {}
    match = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("prefer", ""))
    if match and 0 < int(match.group(1)) < MAX_PAGE_SIZE:
        page_size = int(match.group(1))
        applied["Preference-Applied"] = f"odata.maxpagesize={page_size}"
    want = page_size if top is None else min(top, page_size)
    rows = org.execute(query.offset(skip).limit(want + 1))
    more = len(rows) > want and (top is None or top > want)
    rows = rows[:want]
    body: dict[str, Any] = {"@odata.context": f"{root}/$metadata#{entity.name}"}
    if params.get("$count", "").lower() == "true":
        count_query = sa.select(sa.func.count()).select_from(table)
        body["@odata.count"] = org.scalar(count_query.where(where) if where is not None else count_query)
    annotate = _annotate(request)
    body["value"] = [record_json(entity, row, select, annotate) for row in rows]
    if more:
        next_params = {k: v for k, v in params.items() if k not in ("$skip", "$skiptoken", "$top")}
        if top is not None:
            next_params["$top"] = str(top - want)
        next_params["$skiptoken"] = str(skip + want)
        body["@odata.nextLink"] = f"{root}/{entity.name}?{urlencode(next_params)}"
    return JSONResponse(body, headers={**ODATA_HEADERS, **applied})


def csdl(org: RescoOrg) -> bytes:
    """``$metadata`` in CSDL XML with the ``RescoCrm`` schema namespace (resco.md §7.2)."""
    edmx = ET.Element(
        "edmx:Edmx", {"Version": "4.0", "xmlns:edmx": "http://docs.oasis-open.org/odata/ns/edmx"}
    )
    services = ET.SubElement(edmx, "edmx:DataServices")
    schema = ET.SubElement(
        services, "Schema", {"Namespace": "RescoCrm", "xmlns": "http://docs.oasis-open.org/odata/ns/edm"}
    )
    for entity in org.entities.values():
        etype = ET.SubElement(schema, "EntityType", {"Name": entity.name})
        ET.SubElement(ET.SubElement(etype, "Key"), "PropertyRef", {"Name": "id"})
        for f in entity.fields.values():
            attrs = {"Name": f.name, "Type": FIELD_TYPES[f.type].edm}
            if f.name == "id":
                attrs["Nullable"] = "false"
            if f.max_length:
                attrs["MaxLength"] = str(f.max_length)
            ET.SubElement(etype, "Property", attrs)
    container = ET.SubElement(schema, "EntityContainer", {"Name": "RescoCrmContainer"})
    for entity in org.entities.values():
        ET.SubElement(container, "EntitySet", {"Name": entity.name, "EntityType": f"RescoCrm.{entity.name}"})
    return ET.tostring(edmx, xml_declaration=True, encoding="utf-8")
