"""Reading records: OData pages via ``@odata.nextLink`` and FetchXML pages via paging cookies (docs §1, §4.3).

Every reader is an async generator yielding one page at a time, so memory is bounded by the page size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.dataverse.codec import (
    ETAG,
    READ_ANNOTATIONS,
    record_from_wire,
    select_list,
)
from crmsync_desktop.sync.connectors.dataverse.metadata import MetadataService
from crmsync_desktop.sync.connectors.fetchxml import cookie_from_annotation, page_of, prepare_fetch
from crmsync_desktop.sync.connectors.http.transport import HttpTransport
from crmsync_desktop.sync.connectors.types import EntityMeta, Page

MAX_PAGE_SIZE = 5000
FETCH_ANNOTATIONS = (
    'odata.include-annotations="Microsoft.Dynamics.CRM.fetchxmlpagingcookie,'
    'Microsoft.Dynamics.CRM.morerecords,Microsoft.Dynamics.CRM.lookuplogicalname"'
)
COOKIE = "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"
MORE = "@Microsoft.Dynamics.CRM.morerecords"


def rows_of(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise errors.RemoteError("The organization returned a collection without a 'value' array.")
    return [r for r in body["value"] if isinstance(r, dict)]


def etags_of(rows: Sequence[dict[str, Any]], primary_id: str) -> dict[str, str]:
    return {str(r[primary_id]).lower(): str(r[ETAG]) for r in rows if r.get(ETAG) and r.get(primary_id)}


async def odata_pages(
    http: HttpTransport, url: str, *, params: dict[str, str] | None, page_size: int, prefer: str = READ_ANNOTATIONS
) -> AsyncIterator[list[dict[str, Any]]]:
    """Raw rows page by page, following ``@odata.nextLink`` verbatim with the same ``maxpagesize``."""
    prefs = [f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}", *([prefer] if prefer else [])]
    headers = {"Prefer": ",".join(prefs)}
    next_url: str | None = url
    next_params = params
    while next_url:
        body = await http.get_json(next_url, params=next_params, headers=headers)
        yield rows_of(body)
        next_url = body.get("@odata.nextLink")
        next_params = None  # the link already carries every query option


async def fetch_pages(
    http: HttpTransport, meta: EntityMeta, fetch_filter: str, attributes: Sequence[str], page_size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Raw rows of a FetchXML query page by page (count + page + paging cookie)."""
    fetch = prepare_fetch(fetch_filter, meta.logical_name, attributes, order_by=meta.primary_id, page_size=page_size)
    page, cookie = 1, None
    while True:
        body = await http.get_json(
            meta.entity_set_name,
            params={"fetchXml": page_of(fetch, page, cookie)},
            headers={"Prefer": FETCH_ANNOTATIONS},
        )
        yield rows_of(body)
        if not body.get(MORE):
            return
        # No cookie (e.g. ordered by a link-entity column) silently means simple paging (docs §4.3).
        cookie = cookie_from_annotation(body.get(COOKIE))
        page += 1


class Reader:
    def __init__(self, http: HttpTransport, metadata: MetadataService, default_page_size: int) -> None:
        self._http = http
        self._metadata = metadata
        self._page_size = default_page_size

    async def pages(
        self, entity: str, fields: Sequence[str], fetch_filter: str, page_size: int | None
    ) -> AsyncIterator[Page]:
        meta = await self._metadata.get_entity(entity)
        size = page_size or self._page_size
        if fetch_filter.strip():
            attributes = [meta.primary_id, *fields]
            source = fetch_pages(self._http, meta, fetch_filter, attributes, size)
        else:
            params = {"$select": ",".join(select_list(meta, fields))}
            source = odata_pages(self._http, meta.entity_set_name, params=params, page_size=size)
        async for rows in source:
            yield Page(
                records=tuple(record_from_wire(r, meta, fields) for r in rows),
                etags=etags_of(rows, meta.primary_id),
            )

    async def ids(self, entity: str, fetch_filter: str, page_size: int | None) -> AsyncIterator[list[str]]:
        meta = await self._metadata.get_entity(entity)
        size = page_size or self._page_size
        if fetch_filter.strip():
            source = fetch_pages(self._http, meta, fetch_filter, [meta.primary_id], size)
        else:
            source = odata_pages(
                self._http, meta.entity_set_name, params={"$select": meta.primary_id}, page_size=size, prefer=""
            )
        async for rows in source:
            yield [str(r[meta.primary_id]).lower() for r in rows if r.get(meta.primary_id)]
