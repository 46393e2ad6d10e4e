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

    async def update_field(self, entity: str, field: FieldMeta) -> None:
        """Change an existing column so it becomes ``field`` ("Update Server": changed labels and lengths).

        What changes: the label, the maximum length (string/memo), choice options (those given are
        added or relabelled; options missing from ``field`` are kept, records may hold them), lookup
        targets (added, never removed) and whether a value is required. Never the type: a column of
        another type is a ``ValidationError``; a missing column a ``NotFoundError``. Idempotent:
        sending the same ``field`` twice leaves the column as after the first call. Connectors whose
        organization never receives schema from crmsync (Dataverse, the server) raise ``ConfigError``.
        """
        ...

    async def update_entity(self, entity: EntityMeta) -> None:
        """Change an existing table's labels (``label``, ``collection_label``) to those of ``entity``.

        Only those properties, and ``change_tracking``: ``True`` switches the table's change tracking
        on where that is a setting (see :meth:`enable_change_tracking`; ``False`` never switches it
        off). Fields are ignored (use :meth:`update_field`). Idempotent. On Dataverse (the server)
        only ``change_tracking`` is applied; the server's labels are never changed by crmsync.
        """
        ...

    async def enable_change_tracking(self, entity: str) -> None:
        """Switch change tracking on for a table so ``read_changes`` reports deletions (tombstones).

        IRREVERSIBLE on Dataverse (it cannot be switched off again); already on: nothing happens.
        Resco Cloud always tracks changes (row versions and deleted records): a no-op there.
        A table that cannot be tracked raises ``ValidationError``.
        """
        ...

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
