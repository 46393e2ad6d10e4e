"""Resco CRM Connector REST data service subset: WhoAmI, GetMaxRowVersion, Fetch, UpdateMultiple,
DeleteMultiple (+ deleted records).

resco.md §7.1 lists the methods and says bodies are XML (``application/xml``) with Basic auth,
but the element names are not in the public material we could read: the shapes below are the
emulator's guess, written down in docs/emulator.md ("Resco Cloud", assumptions to verify against a
live organization). ``GetDeletedRecords`` is an emulator extension for "deleted since row version X".
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from defusedxml import ElementTree as SafeET
from starlette.requests import Request
from starlette.responses import Response

from crmsync_desktop.emulator.resco.fetchxml import parse_fetch
from crmsync_desktop.emulator.resco.schema import FIELD_TYPES, TARGET_SUFFIX, SchemaError
from crmsync_desktop.emulator.resco.store import NotFound, RescoOrg

__all__ = ["handle_rest"]

XML = "application/xml; charset=utf-8"


def _xml(element: ET.Element, status: int = 200) -> Response:
    return Response(
        ET.tostring(element, xml_declaration=True, encoding="utf-8"), status_code=status, media_type=XML
    )


def rest_error(status: int, code: str, message: str) -> Response:
    root = ET.Element("Error")
    ET.SubElement(root, "Code").text = code
    ET.SubElement(root, "Message").text = message
    return _xml(root, status)


def _text(element: ET.Element, tag: str, value: Any) -> ET.Element:
    child = ET.SubElement(element, tag)
    child.text = str(value)
    return child


async def _request_xml(request: Request) -> ET.Element | None:
    body = await request.body()
    if not body.strip():
        return None
    try:
        return SafeET.fromstring(body)
    except Exception as exc:  # ParseError or a defusedxml security refusal
        raise SchemaError(f"Invalid XML body: {exc}") from exc


async def handle_rest(request: Request, org: RescoOrg, user_id: str, method: str) -> Response:
    if request.method != "POST":
        return rest_error(405, "MethodNotAllowed", f"{method} must be called with POST.")
    try:
        if method == "WhoAmI":
            root = ET.Element("WhoAmIResponse")
            _text(root, "SystemUserId", user_id)
            _text(root, "OrganizationId", org.organization_id)
            _text(root, "BusinessUnitId", org.business_unit_id)
            _text(root, "OrganizationName", org.name)
            return _xml(root)
        if method == "GetMaxRowVersion":
            body = await _request_xml(request)
            entity = body.findtext("EntityName") if body is not None else None
            root = ET.Element("GetMaxRowVersionResponse")
            _text(root, "RowVersion", org.max_row_version(entity or None))
            return _xml(root)
        if method == "Fetch":
            return _fetch(org, user_id, await request.body())
        if method == "GetDeletedRecords":
            return await _deleted(request, org)
        if method == "UpdateMultiple":
            create = request.query_params.get("$create", "false").strip().lower() == "true"
            return await _update_multiple(request, org, user_id, create)
        if method == "DeleteMultiple":
            return await _delete_multiple(request, org)
    except NotFound as exc:
        return rest_error(404, "NotFound", str(exc))
    except (SchemaError, ValueError) as exc:
        return rest_error(400, "BadRequest", str(exc))
    return rest_error(404, "NotFound", f"Unknown data service method '{method}'.")


def _fetch(org: RescoOrg, user_id: str, body: bytes) -> Response:
    query = parse_fetch(org, body, user_id)
    rows = org.execute(query.statement)
    more = len(rows) > query.count
    rows = rows[: query.count]
    root = ET.Element(
        "EntityCollection",
        {"EntityName": query.entity.name, "MoreRecords": str(more).lower(), "Page": str(query.page)},
    )
    if query.want_total:
        root.set("TotalRecordCount", str(org.scalar(query.count_statement)))
    if rows:
        root.set("PagingCookie", f'<cookie page="{query.page}"><id last="{rows[-1]["id"]}" /></cookie>')
    for row in rows:
        item = ET.SubElement(root, "Entity", {"LogicalName": query.entity.name, "Id": row["id"]})
        for column in query.columns:
            value = row.get(column.label)
            if value is None:
                continue
            f = column.entity.fields[column.field_name]
            attrs = {"Name": column.label, "Type": _rest_type(f.type)}
            if f.type == "lookup":
                target = row.get(column.label + TARGET_SUFFIX)
                if target:
                    attrs["Target"] = target
            ET.SubElement(item, "Attribute", attrs).text = f.to_text(value)
    return _xml(root)


def _rest_type(kind: str) -> str:
    return FIELD_TYPES[kind].rest


async def _deleted(request: Request, org: RescoOrg) -> Response:
    body = await _request_xml(request)
    entity = body.findtext("EntityName") if body is not None else None
    since = int((body.findtext("RowVersion") if body is not None else None) or 0)
    # The maximum first: every deletion at or below it is listed, so a reader may resume from it.
    high = org.max_row_version()
    root = ET.Element("DeletedRecords", {"MaxRowVersion": str(high)})
    for row in org.deleted_since(entity or None, since, high):
        ET.SubElement(
            root,
            "DeletedRecord",
            {
                "EntityName": row["entity"],
                "Id": row["id"],
                "RowVersion": str(row["versionnumber"]),
                "DeletedOn": row["deletedon"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
    return _xml(root)


MAX_MULTIPLE = 1000  # records per UpdateMultiple / DeleteMultiple request (assumed, like Dataverse's $batch)


def _result(parent: ET.Element, record_id: str, status: int, message: str | None) -> None:
    item = ET.SubElement(parent, "Result", {"Id": record_id, "Status": str(status)})
    if message is not None:
        error = ET.SubElement(item, "Error")
        _text(error, "Code", {400: "BadRequest", 404: "NotFound"}.get(status, str(status)))
        _text(error, "Message", message)


def _single_entity(elements: list[ET.Element], root: ET.Element) -> str:
    names = {e.get("LogicalName") or root.get("EntityName") or "" for e in elements}
    if len(names) != 1 or "" in names:
        raise SchemaError("All records of one request must name the same entity (LogicalName).")
    if len(elements) > MAX_MULTIPLE:
        raise SchemaError(f"At most {MAX_MULTIPLE} records per request, not {len(elements)}.")
    return names.pop()


async def _update_multiple(request: Request, org: RescoOrg, user_id: str, create: bool) -> Response:
    """``<EntityCollection><Entity LogicalName Id><Attribute Name [Target] [Null="true"]>text</Attribute>…``
    (the shape ``Fetch`` returns) → ``<UpdateMultipleResponse><Result Id Status>[<Error>]``; per record."""
    root = await _request_xml(request)
    elements = list(root.iter("Entity")) if root is not None else []
    if not elements:
        raise SchemaError("UpdateMultiple needs <Entity> elements.")
    entity = _single_entity(elements, root)  # type: ignore[arg-type]
    items: list[tuple[str, dict[str, Any]]] = []
    for element in elements:
        values: dict[str, Any] = {}
        for attribute in element.findall("Attribute"):
            name = attribute.get("Name") or ""
            if attribute.get("Null", "").lower() == "true":
                values[name] = None
            elif attribute.get("Target"):
                values[name] = {"id": attribute.text, "logicalname": attribute.get("Target")}
            else:
                values[name] = attribute.text or ""
        items.append((element.get("Id") or "", values))
    response = ET.Element("UpdateMultipleResponse")
    for (record_id, _), (status, message) in zip(items, org.write_many(entity, items, user_id, create=create), strict=True):
        _result(response, record_id, status, message)
    return _xml(response)


async def _delete_multiple(request: Request, org: RescoOrg) -> Response:
    """``<DeleteMultipleRequest><EntityReference LogicalName Id/>…`` → ``<DeleteMultipleResponse><Result Id Status>``."""
    root = await _request_xml(request)
    elements = list(root.iter("EntityReference")) if root is not None else []
    if not elements:
        raise SchemaError("DeleteMultiple needs <EntityReference> elements.")
    entity = _single_entity(elements, root)  # type: ignore[arg-type]
    ids = [e.get("Id") or "" for e in elements]
    response = ET.Element("DeleteMultipleResponse")
    for record_id, (status, message) in zip(ids, org.delete_many(entity, ids), strict=True):
        _result(response, record_id, status, message)
    return _xml(response)
