"""The one interface the engine uses to talk to either product: :class:`Connector`.

Data in and out are the plain values of :mod:`.types`; failures are :mod:`crmsync_desktop.errors`
types. Reads stream pages (async iterators), so memory stays bounded whatever the table size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from crmsync_desktop.sync.connectors.types import (
    Capabilities,
    ChangePage,
    ChangeToken,
    EntityMeta,
    FieldMeta,
    Identity,
    LookupValue,
    Page,
    Record,
    RecordResult,
    RelationshipMeta,
    ThrottleState,
)


@runtime_checkable
class Connector(Protocol):
    """An organization, Dataverse or Resco Cloud.

    Errors: every method raises only :class:`crmsync_desktop.errors.CrmSyncError` subclasses.
    ``read_changes`` and ``has_changes`` raise :class:`~crmsync_desktop.errors.FullResyncRequired`
    when the token has expired; drop the token and read everything again.
    """

    # -- who and what ------------------------------------------------------------------------
    async def whoami(self) -> Identity: ...

    async def capabilities(self, entities: Sequence[str] = ()) -> Capabilities:
        """Change tracking and bulk support for ``entities`` (looked up once, then cached)."""
        ...

    def throttle_state(self) -> ThrottleState: ...

    # -- metadata ---------------------------------------------------------------------------
    async def list_entities(self) -> list[EntityMeta]:
        """Every entity, without fields."""
        ...

    async def get_entity(self, logical_name: str) -> EntityMeta:
        """One entity with its fields (labels, types, lookup targets, choice options)."""
        ...

    async def list_relationships(self, logical_name: str) -> list[RelationshipMeta]:
        """1:N relationships where the entity is referencing or referenced, and its N:N relationships."""
        ...

    async def create_entity(self, entity: EntityMeta) -> None: ...

    async def create_field(self, entity: str, field: FieldMeta) -> None: ...

    async def create_relationship(self, relationship: RelationshipMeta) -> None: ...

    # -- reads ------------------------------------------------------------------------------
    def read_pages(
        self, entity: str, fields: Sequence[str], *, fetch_filter: str = "", page_size: int | None = None
    ) -> AsyncIterator[Page]:
        """All records (or those matching a FetchXML filter), one page at a time."""
        ...

    def read_ids(self, entity: str, *, fetch_filter: str = "", page_size: int | None = None) -> AsyncIterator[
        list[str]
    ]:
        """Only the ids of the records (matching the filter), a page at a time: for deletion sweeps."""
        ...

    def read_changes(
        self, entity: str, fields: Sequence[str], token: ChangeToken | None
    ) -> AsyncIterator[ChangePage]:
        """Changes since ``token`` (``None``: everything, ending with a first token). See :class:`ChangePage`."""
        ...

    async def has_changes(self, entity: str, token: ChangeToken) -> bool:
        """A cheap probe: ``False`` means nothing changed since ``token``; ``True`` means "read changes"."""
        ...

    # -- writes -----------------------------------------------------------------------------
    async def upsert_many(
        self, entity: str, records: Sequence[Record], *, if_match: Mapping[str, str] | None = None
    ) -> list[RecordResult]:
        """Create-or-update each record by its (client-supplied) primary id; one result per record, in order.

        ``if_match`` maps record ids to etags: those records are only updated if unchanged (else
        ``RecordResult.conflict``). A bad record never stops the good ones.
        """
        ...

    async def delete_many(self, entity: str, ids: Sequence[str]) -> list[RecordResult]:
        """Delete each record; an already missing record counts as deleted."""
        ...

    async def associate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        """Link two records through an N:N relationship (ids in Entity1/Entity2 order); idempotent."""
        ...

    async def disassociate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        """Unlink two records; an already missing link counts as removed."""
        ...

    async def assign(self, entity: str, record_id: str, owner: LookupValue) -> None:
        """Make ``owner`` (a systemuser or team) the owner of the record."""
        ...

    async def aclose(self) -> None: ...
