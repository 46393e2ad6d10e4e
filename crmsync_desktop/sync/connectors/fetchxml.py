"""FetchXML handling shared by both connectors: validate a sync filter, set columns, page through it.

A sync filter is a whole ``<fetch><entity name="…"><filter>…</filter></entity></fetch>`` document
(the format Resco stores). Paging follows the Dataverse rules (docs §4.3): ``count`` + ``page``,
plus the server's paging cookie, which arrives URL-encoded twice and goes back XML-escaped in the
``paging-cookie`` attribute. Parsing uses defusedxml: a filter may come from an imported file.
"""

from __future__ import annotations

import copy
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from crmsync_desktop.errors import FilterError

MAX_FETCH_COUNT = 5000


def prepare_fetch(
    fetch_filter: str, entity: str, attributes: Sequence[str], *, order_by: str, page_size: int
) -> ET.Element:
    """The filter (or an unfiltered fetch) reading ``attributes`` of ``entity``, ready for paging.

    Raises:
        FilterError: the filter is not well-formed FetchXML, names another entity, or uses ``top``.
    """
    if fetch_filter.strip():
        try:
            root = DET.fromstring(fetch_filter)
        except (ET.ParseError, DefusedXmlException, ValueError) as exc:
            raise FilterError(f"The sync filter for {entity} is not valid FetchXML: {exc}.", entity=entity) from exc
        if root.tag != "fetch":
            raise FilterError(f"The sync filter for {entity} must start with <fetch>, not <{root.tag}>.", entity=entity)
    else:
        root = ET.Element("fetch")
        ET.SubElement(root, "entity", {"name": entity})
    ent = root.find("entity")
    if ent is None or ent.get("name") != entity:
        named = ent.get("name") if ent is not None else None
        raise FilterError(
            f"The sync filter for {entity} reads entity {named!r}; its <entity name> must be {entity!r}.",
            entity=entity,
        )
    if root.get("top"):
        raise FilterError(
            f"The sync filter for {entity} uses top=, which cannot be combined with paging; remove it.",
            entity=entity,
        )
    for child in list(ent):
        if child.tag in ("attribute", "all-attributes"):
            ent.remove(child)
    for name in dict.fromkeys(attributes):
        ent.insert(0, ET.Element("attribute", {"name": name}))
    if ent.find("order") is None:
        # Paging cookies need a stable order; the primary id is unique.
        ET.SubElement(ent, "order", {"attribute": order_by})
    root.set("count", str(min(page_size, MAX_FETCH_COUNT)))
    for attr in ("page", "paging-cookie"):
        root.attrib.pop(attr, None)
    return root


def page_of(fetch: ET.Element, page: int, paging_cookie: str | None) -> str:
    """The fetch document for page ``page`` (1-based) with the previous page's cookie, as text."""
    doc = copy.deepcopy(fetch)
    doc.set("page", str(page))
    if paging_cookie:
        doc.set("paging-cookie", paging_cookie)
    return ET.tostring(doc, encoding="unicode")


def cookie_from_annotation(annotation: str | None) -> str | None:
    """The paging cookie inside ``<cookie pagenumber=".." pagingcookie="%253ccookie…" />`` (decoded twice)."""
    if not annotation:
        return None
    try:
        el = DET.fromstring(annotation)
    except (ET.ParseError, DefusedXmlException, ValueError):
        return None
    raw = el.get("pagingcookie")
    if not raw:
        return None
    return urllib.parse.unquote(urllib.parse.unquote(raw))
