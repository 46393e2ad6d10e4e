"""Resco Cloud wire shapes: OData rows <-> plain records, and the XML of the REST data service.

Documented (resco.md §7.1/§7.2/§7.3): OData root ``{base}/odata/v4/{org}/``, Basic auth, entity sets
named by entity logical name, keys written ``{entity}('{id}')``, ``@odata.etag`` on rows, server pages
of at most 1,000 rows with ``@odata.nextLink``; the REST data service at ``…/rest/v1/data`` with
``WhoAmI``, ``GetMaxRowVersion``, ``Fetch``, ``UpdateMultiple?$create={create}`` and ``DeleteMultiple``
among its methods, XML bodies (``application/xml``, a third-party summary).

Everything else here is an ASSUMPTION TO VERIFY AGAINST A LIVE ORGANIZATION. Each one is stated once,
in docs/emulator.md section "Resco Cloud" → "Wire assumptions shared by the connector and the
emulator"; the emulator implements exactly those shapes. In short: path-style REST root
``{base}/rest/v1/data/{org}/``; the XML element names of WhoAmI / GetMaxRowVersion / Fetch results;
``UpdateMultiple`` and ``DeleteMultiple`` bodies and per-record results; the ``GetDeletedRecords``
method; ``id`` as primary key and ``versionnumber`` as row version; lookups as a GUID property with
the target in ``<attr>@resco.lookuplogicalname``, written as ``"<attr>@odata.bind": "<target>('<id>')"``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.types import EntityMeta, FieldValue, LookupValue, Record

LOOKUP_ENTITY = "@resco.lookuplogicalname"
ROW_VERSION = "versionnumber"
PRIMARY_ID = "id"
XML_CONTENT_TYPE = "application/xml; charset=utf-8"
MAX_MULTIPLE = 1000  # records per UpdateMultiple / DeleteMultiple request (assumed)

_INT_TYPES = frozenset({"Integer", "Picklist", "RowVersion", "BigInt"})
_FLOAT_TYPES = frozenset({"Decimal", "Float", "Money", "Double"})


def key(entity: str, record_id: str) -> str:
    return f"{entity}('{record_id}')"


# -- OData JSON ------------------------------------------------------------------------------------
def record_from_wire(row: dict[str, Any], meta: EntityMeta, fields: Sequence[str]) -> Record:
    return record_decoder(meta, fields)(row)


def records_from_wire(rows: Iterable[dict[str, Any]], meta: EntityMeta, fields: Sequence[str]) -> tuple[Record, ...]:
    """A page of rows as records (which field is a lookup is worked out once per page, not per row)."""
    decode = record_decoder(meta, fields)
    return tuple(decode(r) for r in rows)


_SCALARS = frozenset({str, int, float, bool})


def record_decoder(meta: EntityMeta, fields: Sequence[str]) -> Callable[[dict[str, Any]], Record]:
    """``row -> record`` for ``fields`` of ``meta``: lookups become :class:`LookupValue`."""
    pid = meta.primary_id
    lookups = {f.logical_name: f for f in meta.fields if f.type.is_lookup}
    # (name, annotation key or None when not a lookup, target when unannotated)
    specs: list[tuple[str, str | None, str]] = []
    for name in fields:
        if name == pid:
            continue
        lookup = lookups.get(name)
        if lookup is not None:
            specs.append((name, name + LOOKUP_ENTITY, lookup.targets[0] if len(lookup.targets) == 1 else ""))
        else:
            specs.append((name, None, ""))
    scalars = _SCALARS

    def decode(row: dict[str, Any]) -> Record:
        get = row.get
        out: Record = {pid: str(get(pid) or "").lower()}
        for name, annotation, default in specs:
            value = get(name)
            if value is None or (annotation is None and type(value) in scalars):
                out[name] = value
            elif annotation is not None:
                out[name] = LookupValue(str(get(annotation) or default), str(value).lower())
            else:
                out[name] = value if isinstance(value, (str, int, float, bool)) else str(value)
        return out

    return decode


def body_from_record(record: Record, meta: EntityMeta, *, include_id: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, value in record.items():
        if name == meta.primary_id and not include_id:
            continue
        if isinstance(value, LookupValue):
            body[f"{name}@odata.bind"] = key(value.entity, value.id)
        else:
            body[name] = value
    return body


# -- REST data service XML -------------------------------------------------------------------------
def parse_xml(content: bytes, what: str) -> ET.Element:
    try:
        return DET.fromstring(content)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise errors.RemoteError(
            f"Resco Cloud answered {what} with something that is not XML; is the server URL a Resco Cloud server?"
        ) from exc


def to_text(element: ET.Element) -> bytes:
    return ET.tostring(element, encoding="utf-8", xml_declaration=True)


def max_row_version_request(entity: str | None) -> bytes:
    root = ET.Element("GetMaxRowVersionRequest")
    if entity:
        ET.SubElement(root, "EntityName").text = entity
    return to_text(root)


def deleted_records_request(entity: str, since: int) -> bytes:
    root = ET.Element("GetDeletedRecordsRequest")
    ET.SubElement(root, "EntityName").text = entity
    ET.SubElement(root, "RowVersion").text = str(since)
    return to_text(root)


@dataclass(frozen=True, slots=True)
class FetchPage:
    rows: list[dict[str, Any]]  # OData-shaped rows (lookups with their LOOKUP_ENTITY annotation)
    more: bool


def fetch_page_from_xml(root: ET.Element) -> FetchPage:
    """``<EntityCollection MoreRecords Page PagingCookie><Entity Id><Attribute Name Type [Target]>…``."""
    if root.tag != "EntityCollection":
        raise errors.RemoteError(f"Resco Cloud answered Fetch with <{root.tag}>, not <EntityCollection>.")
    rows: list[dict[str, Any]] = []
    for entity in root.findall("Entity"):
        row: dict[str, Any] = {PRIMARY_ID: entity.get("Id")}
        for attribute in entity.findall("Attribute"):
            name = attribute.get("Name") or ""
            row[name] = _typed(attribute.get("Type") or "String", attribute.text or "")
            if attribute.get("Target"):
                row[name + LOOKUP_ENTITY] = attribute.get("Target")
        rows.append(row)
    return FetchPage(rows, (root.get("MoreRecords") or "").lower() == "true")


def _typed(kind: str, text: str) -> Any:
    try:
        if kind in _INT_TYPES:
            return int(text)
        if kind in _FLOAT_TYPES:
            return float(text)
    except ValueError:
        return text
    if kind == "Boolean":
        return text.strip().lower() in ("true", "1")
    return text


def _value_text(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _escape_text(text: str) -> str:
    """Character data as ElementTree writes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _escape_attr(text: str) -> str:
    """An attribute value as ElementTree writes it (double-quoted)."""
    text = _escape_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def update_multiple_request(entity: str, items: Iterable[tuple[str, Record]], primary_id: str) -> bytes:
    """``<EntityCollection EntityName><Entity LogicalName Id><Attribute Name [Target] [Null]>…`` (Fetch's shape).

    Written as text rather than through an ElementTree (same bytes, several times faster: this is
    the hot path of every download to the client).
    """
    name_attr = _escape_attr(entity)
    parts = [f"<?xml version='1.0' encoding='utf-8'?>\n<EntityCollection EntityName=\"{name_attr}\">"]
    append = parts.append
    opening: dict[str, str] = {}  # field name -> '<Attribute Name="…"' (the same few names on every record)
    entity_head = f'<Entity LogicalName="{name_attr}" Id="'
    for record_id, record in items:
        head = f'{entity_head}{_escape_attr(record_id)}"'
        append(head + ">")
        start = len(parts)
        for name, value in record.items():
            if name == primary_id:
                continue
            tag = opening.get(name)
            if tag is None:
                tag = opening[name] = f'<Attribute Name="{_escape_attr(name)}"'
            if value is None:
                append(f'{tag} Null="true" />')
            elif type(value) is str:
                append(f"{tag}>{_escape_text(value)}</Attribute>" if value else f"{tag} />")
            elif isinstance(value, LookupValue):
                append(f'{tag} Target="{_escape_attr(value.entity)}">{_escape_text(value.id)}</Attribute>')
            else:
                text = _value_text(value)
                append(f"{tag}>{_escape_text(text)}</Attribute>" if text else f"{tag} />")
        if len(parts) == start:
            parts[-1] = head + " />"
        else:
            append("</Entity>")
    append("</EntityCollection>")
    return "".join(parts).encode("utf-8")


def delete_multiple_request(entity: str, ids: Iterable[str]) -> bytes:
    root = ET.Element("DeleteMultipleRequest")
    for record_id in ids:
        ET.SubElement(root, "EntityReference", {"LogicalName": entity, "Id": record_id})
    return to_text(root)


@dataclass(frozen=True, slots=True)
class WriteResult:
    id: str
    status: int
    message: str | None


def results_from_xml(root: ET.Element) -> list[WriteResult]:
    """``<…Response><Result Id Status>[<Error><Code/><Message/></Error>]</Result>…``, in request order."""
    out: list[WriteResult] = []
    for item in root.findall("Result"):
        try:
            status = int(item.get("Status") or 0)
        except ValueError:
            status = 0
        out.append(WriteResult(str(item.get("Id") or "").lower(), status, item.findtext("Error/Message")))
    return out


def rest_error_message(content: bytes) -> str | None:
    """The ``<Error><Message>`` of a failed REST call, if the body is one."""
    try:
        root = DET.fromstring(content)
    except (ET.ParseError, DefusedXmlException, ValueError):
        return None
    return root.findtext("Message") if root.tag == "Error" else None
