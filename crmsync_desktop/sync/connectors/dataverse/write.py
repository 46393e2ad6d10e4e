"""Writing records (docs §6): upserts by client-supplied GUID, deletes, N:N links, owner assignment.

Upserts go through ``UpsertMultiple`` where the table supports it (detected once from
``sdkmessagefilters``), else through ``$batch`` PATCH upserts with ``odata.continue-on-error``.
Bulk requests are all-or-nothing on standard tables, so a failing request is split in halves
(bisect) until the bad record(s) stand alone: every good record still lands, each bad one gets its
own error. Client GUIDs make every write here idempotent, so the transport may retry them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.dataverse.batch import BatchOperation, build_batch, parse_batch_response
from crmsync_desktop.sync.connectors.dataverse.codec import body_from_record
from crmsync_desktop.sync.connectors.dataverse.errors import CODE_MAP, DUPLICATE_RECORD
from crmsync_desktop.sync.connectors.dataverse.metadata import MetadataService
from crmsync_desktop.sync.connectors.http.errors import error_for_status, parse_odata_error, unreadable_body
from crmsync_desktop.sync.connectors.http.transport import HttpTransport
from crmsync_desktop.sync.connectors.types import BulkMessage, EntityMeta, LookupValue, Record, RecordResult


@dataclass(frozen=True, slots=True)
class _Item:
    index: int
    id: str
    body: dict[str, Any]
    etag: str | None = None


def result_from_error(record_id: str, err: errors.CrmSyncError) -> RecordResult:
    return RecordResult(
        id=record_id,
        ok=False,
        error=err.message,
        retryable=bool(getattr(err, "retryable", False)),
        status=getattr(err, "status", None),
        conflict=isinstance(err, errors.ConcurrencyError),
    )


class Writer:
    def __init__(self, http: HttpTransport, metadata: MetadataService, *, bulk_chunk: int, batch_size: int) -> None:
        self._http = http
        self._metadata = metadata
        self._bulk_chunk = bulk_chunk
        self._batch_size = batch_size
        self._bulk: dict[tuple[str, BulkMessage], bool] = {}

    @property
    def _api_path(self) -> str:
        return self._http.base_url.raw_path.decode("ascii")

    # -- capability detection ------------------------------------------------------------------
    async def supports(self, entity: str, message: BulkMessage) -> bool:
        key = (entity, message)
        if key not in self._bulk:
            body = await self._http.get_json(
                "sdkmessagefilters",
                params={
                    "$select": "sdkmessagefilterid",
                    "$filter": "sdkmessageid/name eq @message and primaryobjecttypecode eq @table",
                    "@message": f"'{message.value}'",
                    "@table": f"'{entity}'",
                },
            )
            self._bulk[key] = bool(isinstance(body, dict) and body.get("value"))
        return self._bulk[key]

    async def bulk_messages(self, entity: str) -> frozenset[BulkMessage]:
        return frozenset([m for m in BulkMessage if await self.supports(entity, m)])

    # -- upsert / delete ------------------------------------------------------------------------
    async def upsert_many(
        self, entity: str, records: Sequence[Record], if_match: Mapping[str, str] | None
    ) -> list[RecordResult]:
        meta = await self._metadata.get_entity(entity)
        results: list[RecordResult | None] = [None] * len(records)
        plain: list[_Item] = []
        conditional: list[_Item] = []
        for i, record in enumerate(records):
            rid = str(record.get(meta.primary_id) or "").lower()
            if not rid:
                results[i] = RecordResult(id="", ok=False, error=f"The record has no {meta.primary_id}.")
                continue
            try:
                body = await body_from_record(record, meta, self._metadata, include_id=False)
            except errors.CrmSyncError as err:
                results[i] = result_from_error(rid, err)
                continue
            etag = (if_match or {}).get(rid)
            (conditional if etag else plain).append(_Item(i, rid, body, etag))
        jobs: list[Awaitable[list[tuple[int, RecordResult]]]] = []
        if plain and await self.supports(entity, BulkMessage.UPSERT_MULTIPLE):
            jobs += [self._isolate(c, lambda c: self._send_upsert_multiple(meta, c)) for c in _chunks(plain, self._bulk_chunk)]
        else:
            conditional = plain + conditional
        jobs += [
            self._isolate(c, lambda c: self._send_batch(c, lambda it: self._patch_op(meta, it)))
            for c in _chunks(conditional, self._batch_size)
        ]
        for chunk_results in await asyncio.gather(*jobs):
            for index, result in chunk_results:
                results[index] = result
        return [r for r in results if r is not None]

    async def delete_many(self, entity: str, ids: Sequence[str]) -> list[RecordResult]:
        entity_set = await self._metadata.entity_set(entity)
        items = [_Item(i, rid.lower(), {}) for i, rid in enumerate(ids)]

        def op(it: _Item) -> BatchOperation:
            return BatchOperation("DELETE", f"{self._api_path}{entity_set}({it.id})")

        jobs = [self._isolate(c, lambda c: self._send_batch(c, op, ok_statuses={404})) for c in _chunks(items, self._batch_size)]
        out: list[RecordResult] = [RecordResult.success(rid) for rid in ids]
        for chunk_results in await asyncio.gather(*jobs):
            for index, result in chunk_results:
                out[index] = result
        return out

    def _patch_op(self, meta: EntityMeta, item: _Item) -> BatchOperation:
        headers = {"If-Match": item.etag} if item.etag else {}
        return BatchOperation("PATCH", f"{self._api_path}{meta.entity_set_name}({item.id})", item.body, headers)

    async def _send_upsert_multiple(self, meta: EntityMeta, items: list[_Item]) -> list[tuple[int, RecordResult]]:
        targets = [
            {"@odata.type": f"Microsoft.Dynamics.CRM.{meta.logical_name}", meta.primary_id: it.id, **it.body}
            for it in items
        ]
        await self._http.request(
            "POST",
            f"{meta.entity_set_name}/Microsoft.Dynamics.CRM.UpsertMultiple",
            json_body={"Targets": targets},
            idempotent=True,
        )
        return [(it.index, RecordResult.success(it.id)) for it in items]

    async def _send_batch(
        self, items: list[_Item], op: Callable[[_Item], BatchOperation], ok_statuses: frozenset[int] | set[int] = frozenset()
    ) -> list[tuple[int, RecordResult]]:
        content_type, body = build_batch([op(it) for it in items])
        response = await self._http.request(
            "POST",
            "$batch",
            content=body,
            headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
            idempotent=True,
        )
        try:
            parts = parse_batch_response(response.headers.get("Content-Type", ""), response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise unreadable_body(response.request.url, response.headers.get("Content-Type", ""), exc) from exc
        out: list[tuple[int, RecordResult]] = []
        for n, it in enumerate(items):
            if n >= len(parts):
                out.append((it.index, RecordResult(id=it.id, ok=False, retryable=True, error="Not executed: the batch stopped early.")))
                continue
            part = parts[n]
            if part.status < 400 or part.status in ok_statuses:
                out.append((it.index, RecordResult.success(it.id)))
                continue
            code, message = parse_odata_error(part.body.encode("utf-8"))
            err = error_for_status(part.status, code=code, message=message, code_map=CODE_MAP)
            out.append((it.index, result_from_error(it.id, err)))
        return out

    async def _isolate(
        self, items: list[_Item], send: Callable[[list[_Item]], Awaitable[list[tuple[int, RecordResult]]]]
    ) -> list[tuple[int, RecordResult]]:
        """Send; when the whole request is rejected for its data, bisect to find the culprits."""
        try:
            return await send(items)
        except errors.AuthError:
            raise
        except (errors.NetworkError, errors.ThrottledError, errors.ServerError) as err:
            # Retries already exhausted: the records are fine, the service is not.
            return [(it.index, result_from_error(it.id, err)) for it in items]
        except errors.RemoteError as err:
            if len(items) == 1:
                return [(items[0].index, result_from_error(items[0].id, err))]
            mid = len(items) // 2
            left, right = await asyncio.gather(self._isolate(items[:mid], send), self._isolate(items[mid:], send))
            return left + right

    # -- relationships and owner ------------------------------------------------------------------
    async def associate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        rel = await self._metadata.many_to_many(relationship)
        set1 = await self._metadata.entity_set(rel.entity1)
        set2 = await self._metadata.entity_set(rel.entity2)
        try:
            await self._http.request(
                "POST",
                f"{set1}({entity1_id})/{rel.entity1_navigation}/$ref",
                json_body={"@odata.id": f"{self._http.base_url}{set2}({entity2_id})"},
                idempotent=True,  # a repeated link is a duplicate, which counts as success below
            )
        except errors.RemoteError as err:
            if (err.code or "").lower() != DUPLICATE_RECORD:
                raise

    async def disassociate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        rel = await self._metadata.many_to_many(relationship)
        set1 = await self._metadata.entity_set(rel.entity1)
        try:
            await self._http.request("DELETE", f"{set1}({entity1_id})/{rel.entity1_navigation}({entity2_id})/$ref")
        except errors.NotFoundError:
            pass  # already unlinked

    async def assign(self, entity: str, record_id: str, owner: LookupValue) -> None:
        if owner.entity not in ("systemuser", "team"):
            raise errors.ValidationError(f"An owner must be a systemuser or a team, not {owner.entity}.", entity=entity)
        entity_set = await self._metadata.entity_set(entity)
        owner_set = await self._metadata.entity_set(owner.entity)
        await self._http.request(
            "PATCH",
            f"{entity_set}({record_id})",
            json_body={"ownerid@odata.bind": f"/{owner_set}({owner.id})"},
            headers={"If-Match": "*"},  # update only: never create a record by assigning it
            idempotent=True,
        )


def _chunks(items: list[_Item], size: int) -> list[list[_Item]]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]
