"""Incremental reads (docs §5): change tracking with delta links, or a ``versionnumber`` watermark.

Tables with ``ChangeTrackingEnabled`` use ``Prefer: odata.track-changes``: upserts plus tombstones
(``$deletedEntity``), and a new ``@odata.deltaLink`` on the last page — the token is handed out only
there, so it is persisted after everything before it was applied. An expired token (``0x80044352``)
raises :class:`~crmsync_desktop.errors.FullResyncRequired` via the error map.

Other tables use a row-version watermark: ``versionnumber gt <last>`` ordered by ``versionnumber``,
which yields a safe token after every page but cannot see deletions (use id sweeps for those).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.dataverse.codec import READ_ANNOTATIONS, records_from_wire, select_list
from crmsync_desktop.sync.connectors.dataverse.metadata import MetadataService
from crmsync_desktop.sync.connectors.dataverse.read import etags_of
from crmsync_desktop.sync.connectors.http.transport import HttpTransport
from crmsync_desktop.sync.connectors.odata import odata_pages, rows_of
from crmsync_desktop.sync.connectors.types import ChangePage, ChangeToken, EntityMeta, Record, TokenKind

ROW_VERSION = "versionnumber"
TRACK = "odata.track-changes"


def is_tombstone(row: dict[str, Any]) -> bool:
    return str(row.get("@odata.context", "")).endswith("$deletedEntity") or row.get("reason") == "deleted"


DECODE_IN_THREAD_AT = 200  # rows: bigger pages are decoded in a worker thread (the event loop stays free)


async def decode_rows(rows: Sequence[dict[str, Any]], meta: EntityMeta, fields: Sequence[str]) -> tuple[Record, ...]:
    """Wire rows as records; a big page is decoded in a worker thread so the caller's event loop is not held up."""
    if len(rows) < DECODE_IN_THREAD_AT:
        return records_from_wire(rows, meta, fields)
    return await asyncio.to_thread(records_from_wire, rows, meta, fields)


class ChangeReader:
    def __init__(self, http: HttpTransport, metadata: MetadataService, page_size: int) -> None:
        self._http = http
        self._metadata = metadata
        self._page_size = page_size

    async def changes(self, entity: str, fields: Sequence[str], token: ChangeToken | None) -> AsyncIterator[ChangePage]:
        meta = await self._metadata.get_entity(entity)
        kind = token.kind if token else (TokenKind.DELTA_LINK if meta.change_tracking else TokenKind.ROW_VERSION)
        if kind is TokenKind.DELTA_LINK:
            async for page in self._delta(meta, fields, token):
                yield page
        else:
            async for page in self._watermark(meta, fields, token):
                yield page

    async def has_changes(self, entity: str, token: ChangeToken) -> bool:
        if token.kind is TokenKind.DELTA_LINK:
            body = await self._http.get_json(token.value, headers={"Prefer": f"{TRACK},odata.maxpagesize=1"})
            return bool(rows_of(body))
        meta = await self._metadata.get_entity(entity)
        body = await self._http.get_json(
            meta.entity_set_name,
            params={"$select": meta.primary_id, "$filter": f"{ROW_VERSION} gt {int(token.value)}", "$top": "1"},
        )
        return bool(rows_of(body))

    async def _delta(self, meta: EntityMeta, fields: Sequence[str], token: ChangeToken | None) -> AsyncIterator[ChangePage]:
        prefer = f"{TRACK},odata.maxpagesize={self._page_size},{READ_ANNOTATIONS}"
        if token is None:
            url, params = meta.entity_set_name, {"$select": ",".join(select_list(meta, fields))}
        else:
            url, params = token.value, None
        # The next page is requested as soon as this page's nextLink is known, before this page's
        # rows are decoded and handed on: the pages of a change feed form a chain, so the time
        # between two requests adds up over every page of a full sync. At most one request runs ahead.
        pending: asyncio.Task[Any] | None = asyncio.ensure_future(
            self._http.get_json(url, params=params, headers={"Prefer": prefer}))
        try:
            while pending is not None:
                body = await pending
                pending = None
                rows = rows_of(body)
                next_url = body.get("@odata.nextLink")
                delta = body.get("@odata.deltaLink")
                if not next_url and not delta:
                    raise errors.RemoteError(
                        f"Dataverse returned the last page of changes for {meta.logical_name} without a delta link, "
                        "so the next sync could not continue from here. Check that change tracking is enabled for "
                        "the table.",
                        entity=meta.logical_name,
                    )
                if next_url:
                    pending = asyncio.ensure_future(self._http.get_json(next_url, headers={"Prefer": prefer}))
                upserts: list[dict[str, Any]] = []
                tombstones: list[dict[str, Any]] = []
                for r in rows:
                    (tombstones if is_tombstone(r) else upserts).append(r)
                deleted = tuple(str(r.get("id", "")).lower() for r in tombstones if r.get("id"))
                yield ChangePage(
                    upserts=await decode_rows(upserts, meta, fields),
                    deleted_ids=deleted,
                    token=ChangeToken(TokenKind.DELTA_LINK, str(delta)) if delta and not next_url else None,
                    etags=etags_of(upserts, meta.primary_id),
                )
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def _watermark(
        self, meta: EntityMeta, fields: Sequence[str], token: ChangeToken | None
    ) -> AsyncIterator[ChangePage]:
        last = int(token.value) if token else 0
        select = select_list(meta, [*fields, ROW_VERSION])
        params = {"$select": ",".join(select), "$orderby": f"{ROW_VERSION} asc"}
        if token is not None:
            params["$filter"] = f"{ROW_VERSION} gt {last}"
        yielded = False
        async for rows in odata_pages(
            self._http, meta.entity_set_name, params=params, page_size=self._page_size, prefer=READ_ANNOTATIONS
        ):
            for r in rows:
                if r.get(ROW_VERSION) is not None:
                    last = max(last, int(r[ROW_VERSION]))
            yielded = True
            yield ChangePage(
                upserts=await decode_rows(rows, meta, fields),
                token=ChangeToken(TokenKind.ROW_VERSION, str(last)),
                etags=etags_of(rows, meta.primary_id),
            )
        if not yielded:
            yield ChangePage(upserts=(), token=ChangeToken(TokenKind.ROW_VERSION, str(last)))
