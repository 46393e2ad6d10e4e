""":class:`RescoConnector`: the :class:`~..base.Connector` for a Resco Cloud organization.

Basic authentication (user and password come from the caller, who reads the keyring), OData v4
for records, the REST data service for ``WhoAmI``, ``GetMaxRowVersion`` (the change probe) and
``Fetch`` (FetchXML filters), and the metadata service (:mod:`.metadata`) for schema. The wire
details and every assumption about them are in :mod:`.wire` and :mod:`.metadata`. Same transport,
retry, throttling and error rules as Dataverse (:mod:`..http`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import httpx

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.fetchxml import prepare_fetch
from crmsync_desktop.sync.connectors.http.retry import AimdGovernor, Clock, RetryPolicy
from crmsync_desktop.sync.connectors.http.transport import HttpTransport, json_of
from crmsync_desktop.sync.connectors.odata import fetch_pages, odata_pages
from crmsync_desktop.sync.connectors.resco.metadata import RescoMetadata
from crmsync_desktop.sync.connectors.resco.wire import ROW_VERSION, body_from_record, key, record_from_wire
from crmsync_desktop.sync.connectors.types import (
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
    odata_root: str = ""
    rest_root: str = ""
    metadata_root: str = ""
    initial_concurrency: int = 4
    max_concurrency: int = 16
    ca_bundle: str | None = None

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
        verify: Any = ssl.create_default_context(cafile=settings.ca_bundle) if settings.ca_bundle else True
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

    # -- REST data service ---------------------------------------------------------------------
    async def _rest(self, method: str, *, content: str | None = None, content_type: str = "application/json") -> Any:
        response = await self.http.request(
            "POST", f"{self.rest_root}{method}", content=content if content is not None else "{}",
            headers={"Content-Type": content_type}, idempotent=True,  # these methods only read
        )
        return json_of(response)

    async def max_row_version(self) -> int:
        body = await self._rest("GetMaxRowVersion")
        value = body.get("value", body.get("MaxRowVersion")) if isinstance(body, dict) else body
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise errors.RemoteError(
                f"GetMaxRowVersion answered {json.dumps(body)[:80]}, not a row version. Is the server URL a Resco Cloud server?"
            ) from exc

    async def whoami(self) -> Identity:
        me = await self._rest("WhoAmI")
        try:
            return Identity(
                user_id=str(me.get("UserId") or me["SystemUserId"]).lower(),
                business_unit_id=str(me["BusinessUnitId"]).lower(),
                organization_id=str(me["OrganizationId"]).lower(),
                organization_name=self.settings.organization,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise errors.RemoteError(f"WhoAmI answered without {exc}; is this a Resco Cloud organization?") from exc

    async def capabilities(self, entities: Sequence[str] = ()) -> Capabilities:
        return Capabilities(
            product=Product.RESCO,
            max_page_size=self._page_size,
            change_tracking={e: False for e in entities},
            bulk_messages={e: frozenset() for e in entities},
            can_create_schema=True,
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

    # -- reads ---------------------------------------------------------------------------------
    def _source(
        self, meta: EntityMeta, fields: Sequence[str], fetch_filter: str, size: int, params: dict[str, str] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        if fetch_filter.strip():
            fetch = prepare_fetch(fetch_filter, meta.logical_name, [meta.primary_id, *fields], order_by=meta.primary_id, page_size=size)

            async def send(document: str) -> Any:
                return await self._rest("Fetch", content=document, content_type="application/xml")

            return fetch_pages(fetch, send)
        select = ",".join(dict.fromkeys([meta.primary_id, *fields]))
        return odata_pages(self.http, meta.logical_name, params={"$select": select, **(params or {})}, page_size=size, prefer=ANNOTATIONS)

    async def read_pages(
        self, entity: str, fields: Sequence[str], *, fetch_filter: str = "", page_size: int | None = None
    ) -> AsyncIterator[Page]:
        meta = await self.metadata.get_entity(entity)
        async for rows in self._source(meta, fields, fetch_filter, min(page_size or self._page_size, MAX_PAGE_SIZE)):
            yield Page(tuple(record_from_wire(r, meta, fields) for r in rows), _etags(rows, meta.primary_id))

    async def read_ids(self, entity: str, *, fetch_filter: str = "", page_size: int | None = None) -> AsyncIterator[list[str]]:
        meta = await self.metadata.get_entity(entity)
        async for rows in self._source(meta, [], fetch_filter, min(page_size or self._page_size, MAX_PAGE_SIZE)):
            yield [str(r[meta.primary_id]).lower() for r in rows if r.get(meta.primary_id)]

    async def read_changes(self, entity: str, fields: Sequence[str], token: ChangeToken | None) -> AsyncIterator[ChangePage]:
        """Rows with ``versionnumber`` above the token, oldest first; a token after every page. No tombstones."""
        if token is not None and token.kind is not TokenKind.ROW_VERSION:
            raise errors.FullResyncRequired("The saved change token is not a Resco Cloud row version; a full resync will run.")
        meta = await self.metadata.get_entity(entity)
        last = int(token.value) if token else 0
        params = {"$orderby": f"{ROW_VERSION} asc"}
        if token is not None:
            params["$filter"] = f"{ROW_VERSION} gt {last}"
        async for rows in self._source(meta, [*fields, ROW_VERSION], "", self._page_size, params):
            for r in rows:
                if r.get(ROW_VERSION) is not None:
                    last = max(last, int(r[ROW_VERSION]))
            yield ChangePage(
                upserts=tuple(record_from_wire(r, meta, fields) for r in rows),
                token=ChangeToken(TokenKind.ROW_VERSION, str(last)),
                etags=_etags(rows, meta.primary_id),
            )

    async def has_changes(self, entity: str, token: ChangeToken) -> bool:
        """``GetMaxRowVersion`` is organization-wide: ``True`` means "something may have changed"."""
        if token.kind is not TokenKind.ROW_VERSION:
            return True
        return await self.max_row_version() > int(token.value)

    # -- writes --------------------------------------------------------------------------------
    async def upsert_many(
        self, entity: str, records: Sequence[Record], *, if_match: Mapping[str, str] | None = None
    ) -> list[RecordResult]:
        meta = await self.metadata.get_entity(entity)
        return list(await asyncio.gather(*(self._upsert(meta, r, if_match or {}) for r in records)))

    async def _upsert(self, meta: EntityMeta, record: Record, if_match: Mapping[str, str]) -> RecordResult:
        rid = str(record.get(meta.primary_id) or "").lower()
        if not rid:
            return RecordResult(id="", ok=False, error=f"The record has no {meta.primary_id}.")
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
        async def one(rid: str) -> RecordResult:
            try:
                await self.http.request("DELETE", key(entity, rid.lower()))
            except errors.NotFoundError:
                pass
            except errors.AuthError:
                raise
            except errors.CrmSyncError as err:
                return _failure(rid.lower(), err)
            return RecordResult.success(rid.lower())

        return list(await asyncio.gather(*(one(r) for r in ids)))

    async def associate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        rel = await self.metadata.relationship(relationship)
        try:
            await self.http.request(
                "POST", f"{key(rel.entity1, entity1_id)}/{rel.entity1_navigation}/$ref",
                json_body={"@odata.id": f"{self.odata_root}{key(rel.entity2, entity2_id)}"}, idempotent=True,
            )
        except errors.ConcurrencyError:
            pass  # already linked

    async def disassociate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        rel = await self.metadata.relationship(relationship)
        try:
            await self.http.request(
                "DELETE", f"{key(rel.entity1, entity1_id)}/{rel.entity1_navigation}/$ref",
                params={"$id": f"{self.odata_root}{key(rel.entity2, entity2_id)}"},
            )
        except errors.NotFoundError:
            pass

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

