""":class:`DataverseConnector`: the :class:`~..base.Connector` for a Dataverse (Dynamics 365) organization.

It composes the small modules of this package — transport (``..http``), auth, metadata, read,
changes, write, batch — and adds nothing but wiring. Dataverse is always the server organization,
and the server never receives metadata from crmsync (Resco's "Update Server" copies metadata
server -> client only), so the schema-creation methods refuse with a clear error. The one
exception is switching on a table's change tracking (``enable_change_tracking``), which the
Tracking screen asks for explicitly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import httpx

from crmsync_desktop import errors
from crmsync_desktop.auth.msal_provider import TokenProvider
from crmsync_desktop.sync.connectors.dataverse.auth import API_PATH, BearerAuth, normalize_org_url, scope_for
from crmsync_desktop.sync.connectors.dataverse.changes import ChangeReader
from crmsync_desktop.sync.connectors.dataverse.errors import CODE_MAP
from crmsync_desktop.sync.connectors.dataverse.metadata import MetadataService, _single
from crmsync_desktop.sync.connectors.dataverse.read import MAX_PAGE_SIZE, Reader
from crmsync_desktop.sync.connectors.dataverse.write import Writer
from crmsync_desktop.sync.connectors.http.retry import AimdGovernor, Clock, RetryPolicy
from crmsync_desktop.sync.connectors.http.transport import HttpTransport, tls_verify
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
)

BASE_HEADERS = {
    "Accept": "application/json",
    "OData-Version": "4.0",
    "OData-MaxVersion": "4.0",
    "If-None-Match": "null",
}


@dataclass(frozen=True, slots=True)
class DataverseSettings:
    """Args:
    org_url: ``https://contoso.crm.dynamics.com``.
    page_size: rows per read page (``odata.maxpagesize``, at most 5,000).
    bulk_chunk: records per ``UpsertMultiple`` request.
    batch_size: operations per ``$batch`` request (at most 1,000).
    initial_concurrency: requests in flight before ``x-ms-dop-hint`` is known.
    """

    org_url: str
    page_size: int = MAX_PAGE_SIZE
    bulk_chunk: int = 200
    batch_size: int = 100
    initial_concurrency: int = 4
    max_concurrency: int = 52  # the documented concurrent-request limit per user and server
    ca_bundle: str | None = None  # PEM file of a custom CA (the emulator's)
    verify_tls: bool = True  # False only when the connection profile says so (never by default)


class DataverseConnector:
    """Talks to one Dataverse organization. Use ``async with`` or call :meth:`aclose`."""

    def __init__(
        self,
        settings: DataverseSettings,
        tokens: TokenProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.org_url = normalize_org_url(settings.org_url)
        verify: Any = tls_verify(settings.ca_bundle, settings.verify_tls)
        self.http = HttpTransport(
            f"{self.org_url}{API_PATH}",
            auth=BearerAuth(tokens, scope_for(self.org_url)),
            transport=transport,
            verify=verify,
            clock=clock,
            policy=policy,
            governor=AimdGovernor(initial=settings.initial_concurrency, ceiling=settings.max_concurrency),
            default_headers=BASE_HEADERS,
            code_map=CODE_MAP,
        )
        page_size = max(1, min(settings.page_size, MAX_PAGE_SIZE))
        self.metadata = MetadataService(self.http)
        self._reader = Reader(self.http, self.metadata, page_size)
        self._changes = ChangeReader(self.http, self.metadata, page_size)
        self._writer = Writer(self.http, self.metadata, bulk_chunk=settings.bulk_chunk, batch_size=min(settings.batch_size, 1000))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- who and what --------------------------------------------------------------------------
    async def whoami(self) -> Identity:
        me = await self.http.get_json("WhoAmI")
        try:
            org_id = str(me["OrganizationId"]).lower()
            identity = Identity(
                user_id=str(me["UserId"]).lower(), business_unit_id=str(me["BusinessUnitId"]).lower(), organization_id=org_id
            )
        except (KeyError, TypeError) as exc:
            raise errors.RemoteError(f"WhoAmI answered without {exc}; is {self.org_url} a Dataverse organization?") from exc
        org = _single(await self.http.get_json(f"organizations({org_id})", params={"$select": "name"}))
        return Identity(identity.user_id, identity.business_unit_id, org_id, str(org.get("name") or ""))

    async def capabilities(self, entities: Sequence[str] = ()) -> Capabilities:
        tracking = {e: (await self.metadata.get_entity(e)).change_tracking for e in entities}
        bulk = {e: await self._writer.bulk_messages(e) for e in entities}
        return Capabilities(
            product=Product.DATAVERSE,
            max_page_size=self._reader._page_size,
            change_tracking=tracking,
            bulk_messages=bulk,
            can_create_schema=False,
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
        raise self._no_schema_writes(entity.logical_name)

    async def create_field(self, entity: str, field: FieldMeta) -> None:
        raise self._no_schema_writes(entity)

    async def create_relationship(self, relationship: RelationshipMeta) -> None:
        raise self._no_schema_writes(relationship.referencing_entity or relationship.entity1)

    async def update_field(self, entity: str, field: FieldMeta) -> None:
        raise self._no_schema_writes(entity)

    async def update_entity(self, entity: EntityMeta) -> None:
        """Only ``change_tracking=True`` is applied (the server's labels are never changed by crmsync)."""
        if entity.change_tracking:
            await self.enable_change_tracking(entity.logical_name)

    async def enable_change_tracking(self, entity: str) -> None:
        """``ChangeTrackingEnabled = true`` on the table (a metadata PUT); IRREVERSIBLE; no-op when already on."""
        await self.metadata.enable_change_tracking(entity)

    @staticmethod
    def _no_schema_writes(entity: str) -> errors.ConfigError:
        return errors.ConfigError(
            "crmsync never changes the schema of the Dataverse server organization; metadata flows from the "
            "server to the Resco Cloud client only. Create the table or column in Power Apps instead.",
            title="Server schema is read-only",
            entity=entity,
        )

    # -- reads ---------------------------------------------------------------------------------
    def read_pages(
        self, entity: str, fields: Sequence[str], *, fetch_filter: str = "", page_size: int | None = None
    ) -> AsyncIterator[Page]:
        return self._reader.pages(entity, fields, fetch_filter, page_size)

    def read_ids(self, entity: str, *, fetch_filter: str = "", page_size: int | None = None) -> AsyncIterator[list[str]]:
        return self._reader.ids(entity, fetch_filter, page_size)

    def read_changes(self, entity: str, fields: Sequence[str], token: ChangeToken | None) -> AsyncIterator[ChangePage]:
        return self._changes.changes(entity, fields, token)

    async def has_changes(self, entity: str, token: ChangeToken) -> bool:
        return await self._changes.has_changes(entity, token)

    # -- writes --------------------------------------------------------------------------------
    async def upsert_many(
        self, entity: str, records: Sequence[Record], *, if_match: Mapping[str, str] | None = None
    ) -> list[RecordResult]:
        return await self._writer.upsert_many(entity, records, if_match)

    async def delete_many(self, entity: str, ids: Sequence[str]) -> list[RecordResult]:
        return await self._writer.delete_many(entity, ids)

    async def associate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        await self._writer.associate(relationship, entity1_id, entity2_id)

    async def disassociate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        await self._writer.disassociate(relationship, entity1_id, entity2_id)

    async def assign(self, entity: str, record_id: str, owner: LookupValue) -> None:
        await self._writer.assign(entity, record_id, owner)
