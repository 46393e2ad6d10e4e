"""OData collection paging shared by both products: ``value`` arrays, ``@odata.nextLink``, FetchXML pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from xml.etree.ElementTree import Element

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.fetchxml import cookie_from_annotation, page_of
from crmsync_desktop.sync.connectors.http.transport import HttpTransport

COOKIE = "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"
MORE = "@Microsoft.Dynamics.CRM.morerecords"


def rows_of(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise errors.RemoteError("The organization returned a collection without a 'value' array.")
    return [r for r in body["value"] if isinstance(r, dict)]


async def odata_pages(
    http: HttpTransport, url: str, *, params: dict[str, str] | None, page_size: int, prefer: str = ""
) -> AsyncIterator[list[dict[str, Any]]]:
    """Raw rows page by page, following ``@odata.nextLink`` verbatim with the same ``maxpagesize``."""
    prefs = [f"odata.maxpagesize={page_size}", *([prefer] if prefer else [])]
    headers = {"Prefer": ",".join(prefs)}
    next_url: str | None = url
    next_params = params
    while next_url:
        body = await http.get_json(next_url, params=next_params, headers=headers)
        yield rows_of(body)
        next_url = body.get("@odata.nextLink")
        next_params = None  # the link already carries every query option


async def fetch_pages(
    fetch: Element, send: Callable[[str], Awaitable[Any]]
) -> AsyncIterator[list[dict[str, Any]]]:
    """Raw rows of a prepared FetchXML query, page by page (count + page + paging cookie)."""
    page, cookie = 1, None
    while True:
        body = await send(page_of(fetch, page, cookie))
        yield rows_of(body)
        if not body.get(MORE):
            return
        # No cookie (e.g. ordered by a link-entity column) silently means simple paging (docs §4.3).
        cookie = cookie_from_annotation(body.get(COOKIE))
        page += 1
