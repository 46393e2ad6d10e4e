"""Reading records: OData pages via ``@odata.nextLink`` and FetchXML pages via paging cookies (docs §1, §4.3).

Every reader is an async generator yielding one page at a time, so memory is bounded by the page size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from crmsync_desktop.sync.connectors.dataverse.codec import (
    ETAG,
    READ_ANNOTATIONS,
    records_from_wire,
    select_list,
)
from crmsync_desktop.sync.connectors.dataverse.metadata import MetadataService
from crmsync_desktop.sync.connectors.fetchxml import prepare_fetch
from crmsync_desktop.sync.connectors.http.transport import HttpTransport
from crmsync_desktop.sync.connectors.odata import fetch_pages, odata_pages
from crmsync_desktop.sync.connectors.types import EntityMeta, Page

MAX_PAGE_SIZE = 5000
FETCH_ANNOTATIONS = (
    'odata.include-annotations="Microsoft.Dynamics.CRM.fetchxmlpagingcookie,'
    'Microsoft.Dynamics.CRM.morerecords,Microsoft.Dynamics.CRM.lookuplogicalname"'
)


def etags_of(rows: Sequence[dict[str, Any]], primary_id: str) -> dict[str, str]:
    return {str(r[primary_id]).lower(): str(r[ETAG]) for r in rows if r.get(ETAG) and r.get(primary_id)}


def dataverse_fetch_pages(
    http: HttpTransport, meta: EntityMeta, fetch_filter: str, attributes: Sequence[str], page_size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """FetchXML through the Web API: ``GET <entityset>?fetchXml=…`` with the paging annotations."""
    fetch = prepare_fetch(fetch_filter, meta.logical_name, attributes, order_by=meta.primary_id, page_size=page_size)

    async def send(document: str) -> Any:
        return await http.get_json(
            meta.entity_set_name, params={"fetchXml": document}, headers={"Prefer": FETCH_ANNOTATIONS}
        )

    return fetch_pages(fetch, send)


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
            source = dataverse_fetch_pages(self._http, meta, fetch_filter, attributes, size)
        else:
            params = {"$select": ",".join(select_list(meta, fields))}
            source = odata_pages(
                self._http, meta.entity_set_name, params=params, page_size=size, prefer=READ_ANNOTATIONS
            )
        async for rows in source:
            yield Page(
                records=records_from_wire(rows, meta, fields),
                etags=etags_of(rows, meta.primary_id),
            )

    async def ids(self, entity: str, fetch_filter: str, page_size: int | None) -> AsyncIterator[list[str]]:
        meta = await self._metadata.get_entity(entity)
        size = page_size or self._page_size
        if fetch_filter.strip():
            source = dataverse_fetch_pages(self._http, meta, fetch_filter, [meta.primary_id], size)
        else:
            source = odata_pages(
                self._http, meta.entity_set_name, params={"$select": meta.primary_id}, page_size=size, prefer=""
            )
        async for rows in source:
            yield [str(r[meta.primary_id]).lower() for r in rows if r.get(meta.primary_id)]
