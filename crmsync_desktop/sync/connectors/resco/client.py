""":class:`RescoConnector`: the :class:`~..base.Connector` for a Resco Cloud organization.

Basic authentication (user and password come from the caller, who reads the keyring), OData v4
for reading records one page at a time, the REST data service (XML) for ``WhoAmI``,
``GetMaxRowVersion`` (the change probe), ``Fetch`` (FetchXML filters), ``GetDeletedRecords``
(tombstones), and ``UpdateMultiple?$create=true`` / ``DeleteMultiple`` (bulk writes of up to 1,000
records per request), and the metadata service (:mod:`.metadata`) for schema. Same transport,
retry, throttling and error rules as Dataverse (:mod:`..http`).

Most of this wire format is not publicly documented. Every shape the connector relies on is an
assumption to verify against a live organization, listed once in docs/emulator.md, section
"Resco Cloud" (the emulator implements exactly those shapes); :mod:`.wire` and :mod:`.metadata`
hold the code for them.
"""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import httpx

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.fetchxml import page_of, prepare_fetch
from crmsync_desktop.sync.connectors.http.retry import AimdGovernor, Clock, RetryPolicy
from crmsync_desktop.sync.connectors.http.transport import HttpTransport, tls_verify
from crmsync_desktop.sync.connectors.odata import odata_pages, rows_of
from crmsync_desktop.sync.connectors.resco import wire
from crmsync_desktop.sync.connectors.resco.metadata import RescoMetadata
from crmsync_desktop.sync.connectors.resco.wire import ROW_VERSION, body_from_record, key, records_from_wire
from crmsync_desktop.sync.connectors.types import (
    BulkMessage,
    Capabilities,
    ChangePage,
    ChangeToken,
    EntityMeta,
    FieldMeta,
    Identity,
    LookupValue,
    Page,
    Product,
    Record,
    RecordResult,
    RelationshipMeta,
    ThrottleState,
    TokenKind,
)

MAX_PAGE_SIZE = 1000
ANNOTATIONS = 'odata.include-annotations="*"'


@dataclass(frozen=True, slots=True)
class RescoSettings:
    """Args:
    base_url: the server, e.g. ``https://rescocrm.com`` or an on-premises ``https://server:port``.
    organization: the organization name (path-style selection).
    user: the organization user name.
    odata_root / rest_root / metadata_root: override the derived roots (domain-style organizations).
    """

    base_url: str
    organization: str
    user: str
    page_size: int = MAX_PAGE_SIZE
    bulk_chunk: int = 500  # records per UpdateMultiple / DeleteMultiple request (at most 1,000)
    odata_root: str = ""
    rest_root: str = ""
    metadata_root: str = ""
    initial_concurrency: int = 4
    max_concurrency: int = 16
    ca_bundle: str | None = None
    verify_tls: bool = True  # False only when the connection profile says so (never by default)

    def roots(self) -> tuple[str, str, str]:
        base = self.base_url.rstrip("/")
        url = httpx.URL(base)
        if url.scheme not in ("https", "http") or not url.host:
            raise errors.InvalidUrlError(f"{self.base_url!r} is not a Resco Cloud server URL, e.g. https://rescocrm.com.")
        org = self.organization.strip("/")
        return (
            _slash(self.odata_root or f"{base}/odata/v4/{org}/"),
            _slash(self.rest_root or f"{base}/rest/v1/data/{org}/"),
            _slash(self.metadata_root or f"{base}/rest/v1/metadata/{org}/"),
        )


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


class BasicAuth:
    """HTTP Basic credentials; a 401 cannot be fixed by refreshing, so it surfaces as an AuthError."""

    def __init__(self, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._header = {"Authorization": f"Basic {token}"}

    def __repr__(self) -> str:
        return "BasicAuth(***)"

    async def headers(self) -> Mapping[str, str]:
        return self._header

    async def refresh(self, challenge: str | None) -> bool:
        return False


class RescoConnector:
    """Talks to one Resco Cloud organization. Use ``async with`` or call :meth:`aclose`."""

    def __init__(
        self,
        settings: RescoSettings,
        password: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.odata_root, self.rest_root, metadata_root = settings.roots()
        verify: Any = tls_verify(settings.ca_bundle, settings.verify_tls)
        self.http = HttpTransport(
            self.odata_root,
            auth=BasicAuth(settings.user, password),
            transport=transport,
            verify=verify,
            clock=clock,
            policy=policy,
            governor=AimdGovernor(initial=settings.initial_concurrency, ceiling=settings.max_concurrency),
            default_headers={"Accept": "application/json", "OData-Version": "4.0", "OData-MaxVersion": "4.0"},
        )
        self.metadata = RescoMetadata(self.http, metadata_root)
        self._page_size = max(1, min(settings.page_size, MAX_PAGE_SIZE))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- REST data service (XML) ----------------------------------------------------------------
    async def _rest(self, method: str, body: bytes, *, params: Mapping[str, str] | None = None) -> ET.Element:
        response = await self.http.request(
            "POST", f"{self.rest_root}{method}", content=body, params=params,
            headers={"Content-Type": wire.XML_CONTENT_TYPE, "Accept": "application/xml"},
            idempotent=True,  # reads, or writes by client-supplied id (a repeat writes the same values)
        )
        return wire.parse_xml(response.content, method)

    async def max_row_version(self, entity: str | None = None) -> int:
        root = await self._rest("GetMaxRowVersion", wire.max_row_version_request(entity))
        try:
            return int(root.findtext("RowVersion") or "")
        except ValueError as exc:
            raise errors.RemoteError(
                "GetMaxRowVersion answered without a <RowVersion>. Is the server URL a Resco Cloud server?"
            ) from exc

    async def whoami(self) -> Identity:
        me = await self._rest("WhoAmI", b"")
        user, bu, org = (me.findtext(t) for t in ("SystemUserId", "BusinessUnitId", "OrganizationId"))
        if not (user and bu and org):
            raise errors.RemoteError("WhoAmI answered without SystemUserId/BusinessUnitId/OrganizationId; is this a Resco Cloud organization?")
        return Identity(
            user_id=user.lower(), business_unit_id=bu.lower(), organization_id=org.lower(),
            organization_name=me.findtext("OrganizationName") or self.settings.organization,
        )

    async def capabilities(self, entities: Sequence[str] = ()) -> Capabilities:
        bulk = frozenset({BulkMessage.UPSERT_MULTIPLE, BulkMessage.UPDATE_MULTIPLE})
        return Capabilities(
            product=Product.RESCO,
            max_page_size=self._page_size,
            change_tracking={e: True for e in entities},  # row versions + GetDeletedRecords
            bulk_messages={e: bulk for e in entities},
            can_create_schema=True,
            many_to_many=False,  # the N:N wire format is unknown (docs/emulator.md); refused, not guessed
        )

    def throttle_state(self) -> ThrottleState:
        return self.http.throttle_state()

    # -- metadata ------------------------------------------------------------------------------
    async def list_entities(self) -> list[EntityMeta]:
        return await self.metadata.list_entities()

    async def get_entity(self, logical_name: str) -> EntityMeta:
        return await self.metadata.get_entity(logical_name)

    async def list_relationships(self, logical_name: str) -> list[RelationshipMeta]:
        return await self.metadata.list_relationships(logical_name)

    async def create_entity(self, entity: EntityMeta) -> None:
        await self.metadata.create_entity(entity)

    async def create_field(self, entity: str, field: FieldMeta) -> None:
        await self.metadata.create_field(entity, field)

    async def create_relationship(self, relationship: RelationshipMeta) -> None:
        await self.metadata.create_relationship(relationship)

    async def update_field(self, entity: str, field: FieldMeta) -> None:
        await self.metadata.update_field(entity, field)

    async def update_entity(self, entity: EntityMeta) -> None:
        await self.metadata.update_entity(entity)

    async def enable_change_tracking(self, entity: str) -> None:
        """Nothing to switch on: Resco Cloud tracks every entity (row versions + ``GetDeletedRecords``)."""
        await self.metadata.get_entity(entity)  # a missing entity is still an error

    # -- reads ---------------------------------------------------------------------------------
    async def _fetch_pages(self, meta: EntityMeta, fields: Sequence[str], fetch_filter: str, size: int) -> AsyncIterator[list[dict[str, Any]]]:
        fetch = prepare_fetch(fetch_filter, meta.logical_name, [meta.primary_id, *fields], order_by=meta.primary_id, page_size=size)
        page = 1
        while True:
            result = wire.fetch_page_from_xml(await self._rest("Fetch", page_of(fetch, page, None).encode("utf-8")))
            yield result.rows
            if not result.more:
                return
            page += 1

    def _source(self, meta: EntityMeta, fields: Sequence[str], fetch_filter: str, size: int) -> AsyncIterator[list[dict[str, Any]]]:
        if fetch_filter.strip():
            return self._fetch_pages(meta, fields, fetch_filter, size)
        select = ",".join(dict.fromkeys([meta.primary_id, *fields]))
        return odata_pages(self.http, meta.logical_name, params={"$select": select}, page_size=size, prefer=ANNOTATIONS)

    async def read_pages(
        self, entity: str, fields: Sequence[str], *, fetch_filter: str = "", page_size: int | None = None
    ) -> AsyncIterator[Page]:
        meta = await self.metadata.get_entity(entity)
        async for rows in self._source(meta, fields, fetch_filter, min(page_size or self._page_size, MAX_PAGE_SIZE)):
            yield Page(records_from_wire(rows, meta, fields), _etags(rows, meta.primary_id))

    async def read_ids(self, entity: str, *, fetch_filter: str = "", page_size: int | None = None) -> AsyncIterator[list[str]]:
        meta = await self.metadata.get_entity(entity)
        async for rows in self._source(meta, [], fetch_filter, min(page_size or self._page_size, MAX_PAGE_SIZE)):
            yield [str(r[meta.primary_id]).lower() for r in rows if r.get(meta.primary_id)]

    async def read_changes(self, entity: str, fields: Sequence[str], token: ChangeToken | None) -> AsyncIterator[ChangePage]:
        """Deletions since the token (``GetDeletedRecords``), then changed rows by ``versionnumber``, oldest first.

        ``GetDeletedRecords`` also reports the current maximum row version M; rows are read up to M
        only, keyset-paged (``versionnumber gt <last>``, so rows changing meanwhile cannot shift a
        page), and every page carries a token that is safe to resume from. The first read
        (``token=None``) returns every row and no deletions.
        """
        if token is not None and token.kind is not TokenKind.ROW_VERSION:
            raise errors.FullResyncRequired("The saved change token is not a Resco Cloud row version; a full resync will run.")
        meta = await self.metadata.get_entity(entity)
        last = int(token.value) if token else 0
        deleted: tuple[str, ...] = ()
        if token is None:
            high = await self.max_row_version(meta.logical_name)
        else:
            gone = await self._rest("GetDeletedRecords", wire.deleted_records_request(meta.logical_name, last))
            try:
                high = int(gone.get("MaxRowVersion") or "")
            except ValueError as exc:
                raise errors.RemoteError("GetDeletedRecords answered without MaxRowVersion.") from exc
            deleted = tuple(dict.fromkeys(str(d.get("Id")).lower() for d in gone.findall("DeletedRecord") if d.get("Id")))
        select = ",".join(dict.fromkeys([meta.primary_id, *fields, ROW_VERSION]))
        size = self._page_size
        first = True
        while True:
            body = await self.http.get_json(
                meta.logical_name,
                params={
                    "$select": select,
                    "$filter": f"{ROW_VERSION} gt {last} and {ROW_VERSION} le {high}",
                    "$orderby": f"{ROW_VERSION} asc",
                    "$top": str(size),
                },
                headers={"Prefer": f"odata.maxpagesize={size},{ANNOTATIONS}"},
            )
            rows = rows_of(body)
            for r in rows:
                if r.get(ROW_VERSION) is not None:
                    last = max(last, int(r[ROW_VERSION]))
            done = len(rows) < size
            yield ChangePage(
                upserts=records_from_wire(rows, meta, fields),
                deleted_ids=deleted if first else (),
                token=ChangeToken(TokenKind.ROW_VERSION, str(high if done else last)),
                etags=_etags(rows, meta.primary_id),
            )
            first = False
            if done:
                return

    async def has_changes(self, entity: str, token: ChangeToken) -> bool:
        """``GetMaxRowVersion`` for the entity (deletions included) above the token."""
        if token.kind is not TokenKind.ROW_VERSION:
            return True
        return await self.max_row_version(entity) > int(token.value)

    # -- writes --------------------------------------------------------------------------------
    async def upsert_many(
        self, entity: str, records: Sequence[Record], *, if_match: Mapping[str, str] | None = None
    ) -> list[RecordResult]:
        """``UpdateMultiple?$create=true`` in chunks (per-record results); records with an etag one by one."""
        meta = await self.metadata.get_entity(entity)
        if_match = if_match or {}
        results: list[RecordResult | None] = [None] * len(records)
        bulk: list[tuple[int, str, Record]] = []
        single: list[tuple[int, Record]] = []
        for i, record in enumerate(records):
            rid = str(record.get(meta.primary_id) or "").lower()
            if not rid:
                results[i] = RecordResult(id="", ok=False, error=f"The record has no {meta.primary_id}.")
            elif rid in if_match:
                single.append((i, record))
            else:
                bulk.append((i, rid, record))
        chunk = max(1, min(self.settings.bulk_chunk, wire.MAX_MULTIPLE))

        async def send(part: list[tuple[int, str, Record]]) -> None:
            body = wire.update_multiple_request(meta.logical_name, ((rid, rec) for _, rid, rec in part), meta.primary_id)
            for (i, rid, _), result in zip(part, await self._multiple("UpdateMultiple", body, [p[1] for p in part], {"$create": "true"}), strict=True):
                results[i] = result

        async def one(i: int, record: Record) -> None:
            results[i] = await self._upsert(meta, record, if_match)

        await asyncio.gather(
            *(send(bulk[k : k + chunk]) for k in range(0, len(bulk), chunk)), *(one(i, r) for i, r in single)
        )
        return [r for r in results if r is not None]

    async def _multiple(
        self, method: str, body: bytes, ids: list[str], params: Mapping[str, str] | None = None, ok_statuses: frozenset[int] = frozenset()
    ) -> list[RecordResult]:
        try:
            root = await self._rest(method, body, params=params)
        except errors.AuthError:
            raise
        except errors.CrmSyncError as err:
            return [_failure(rid, err) for rid in ids]
        by_id = {r.id: r for r in wire.results_from_xml(root)}
        out: list[RecordResult] = []
        for rid in ids:
            r = by_id.get(rid)
            if r is None:
                out.append(RecordResult(id=rid, ok=False, retryable=True, error=f"{method} did not report this record."))
            elif r.status < 400 or r.status in ok_statuses:
                out.append(RecordResult.success(rid))
            else:
                out.append(RecordResult(id=rid, ok=False, status=r.status, error=r.message or f"HTTP {r.status}",
                                        retryable=r.status >= 500 or r.status == 429))
        return out

    async def _upsert(self, meta: EntityMeta, record: Record, if_match: Mapping[str, str]) -> RecordResult:
        rid = str(record.get(meta.primary_id) or "").lower()
        etag = if_match.get(rid)
        try:
            try:
                await self.http.request(
                    "PATCH", key(meta.logical_name, rid), json_body=body_from_record(record, meta, include_id=False),
                    headers={"If-Match": etag} if etag else None, idempotent=True,
                )
            except errors.NotFoundError:
                if etag:
                    raise  # it was deleted since it was read: a conflict for the engine to resolve
                try:
                    await self.http.request(
                        "POST", meta.logical_name, json_body=body_from_record(record, meta, include_id=True),
                        idempotent=True,  # a repeat finds the client id taken (409) and updates below
                    )
                except errors.ConcurrencyError:
                    await self.http.request(
                        "PATCH", key(meta.logical_name, rid), json_body=body_from_record(record, meta, include_id=False),
                        idempotent=True,
                    )
            return RecordResult.success(rid)
        except errors.AuthError:
            raise
        except errors.CrmSyncError as err:
            return _failure(rid, err)

    async def delete_many(self, entity: str, ids: Sequence[str]) -> list[RecordResult]:
        """``DeleteMultiple`` in chunks; an already missing record counts as deleted."""
        meta = await self.metadata.get_entity(entity)
        keys = [rid.lower() for rid in ids]
        chunk = max(1, min(self.settings.bulk_chunk, wire.MAX_MULTIPLE))
        parts = [keys[k : k + chunk] for k in range(0, len(keys), chunk)]
        done = await asyncio.gather(
            *(self._multiple("DeleteMultiple", wire.delete_multiple_request(meta.logical_name, p), p, ok_statuses=frozenset({404}))
              for p in parts)
        )
        return [r for part in done for r in part]

    async def associate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        raise self._no_many_to_many(relationship)

    async def disassociate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        raise self._no_many_to_many(relationship)

    @staticmethod
    def _no_many_to_many(relationship: str) -> errors.ConfigError:
        return errors.ConfigError(
            f"Resco Cloud many-to-many links ({relationship}) are not supported by crmsync yet: the Resco wire format "
            "for them is not documented (docs/emulator.md, Resco Cloud).",
            title="N:N links not supported on Resco Cloud",
        )

    async def assign(self, entity: str, record_id: str, owner: LookupValue) -> None:
        if owner.entity not in ("systemuser", "team"):
            raise errors.ValidationError(f"An owner must be a systemuser or a team, not {owner.entity}.", entity=entity)
        await self.http.request(
            "PATCH", key(entity, record_id), json_body={"ownerid@odata.bind": key(owner.entity, owner.id)},
            headers={"If-Match": "*"}, idempotent=True,
        )


def _etags(rows: Sequence[dict[str, Any]], primary_id: str) -> dict[str, str]:
    return {str(r[primary_id]).lower(): str(r["@odata.etag"]) for r in rows if r.get("@odata.etag") and r.get(primary_id)}


def _failure(rid: str, err: errors.CrmSyncError) -> RecordResult:
    return RecordResult(
        id=rid, ok=False, error=err.message, retryable=bool(getattr(err, "retryable", False)),
        status=getattr(err, "status", None), conflict=isinstance(err, errors.ConcurrencyError),
    )

