"""An in-memory organization implementing :class:`~crmsync_desktop.sync.connectors.base.Connector`.

For fast engine unit tests (the end-to-end tests use the HTTP emulators). It follows the Protocol's
documented semantics, and the real connectors' behaviour where the Protocol leaves room:

* **Schema.** Entities with fields, 1:N and N:N relationships. ``create_entity`` creates the entity
  with its primary key, primary name, owner (user-owned entities) and system columns, like a real
  organization; the given ``fields`` only describe those columns, the others come through
  ``create_field`` (as with the Resco connector). Creating something that exists is a no-op (the
  connectors treat 409 as success), unless the existing column has an incompatible type.
  A ``Product.RESCO`` org stores types the way Resco Cloud does (memo -> string, bigint -> decimal,
  state/status -> picklist, owner -> lookup). A ``Product.DATAVERSE`` org refuses schema writes
  through the connector (``ConfigError``, like the real connector); tests change its schema with
  the direct helpers ``add_entity``/``add_field``/``remove_field``/... (an admin in Power Apps).
* **Records** per entity by primary id (lowercase GUID); every write takes the next value of one
  org-wide row version. ``upsert_many`` merges (PATCH semantics), sets ``ownerid`` to the caller on
  create for user-owned entities and maintains ``createdon``/``modifiedon``/``versionnumber`` when
  the entity has them. Deleting a record clears lookups pointing at it (Dataverse "Remove Link")
  and removes its N:N links.
* **N:N links** are rows of the intersect entity (readable like any entity, so the engine can read
  them from the server), created and removed only by ``associate``/``disassociate``.
* **Changes.** ``read_changes`` returns rows newer than the token's row version, oldest first,
  with a token on every page (on the initial read of a change-tracked entity only on the last page,
  like a Dataverse delta link). Deleted ids are reported only where tombstones exist
  (``tombstones=True``, default for Dataverse orgs, per entity with ``change_tracking``); Resco
  Cloud has none. ``expire_tokens()`` makes every earlier token raise ``FullResyncRequired``.
* **Test hooks**: ``requests`` (a Counter of round trips per method: one per call, one per page
  for reads), ``fail_next``, ``offline``, ``reject_when``, direct ``put``/``delete``/``get``/``link``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.types import (
    BulkMessage,
    Capabilities,
    ChangePage,
    ChangeToken,
    EntityMeta,
    FieldMeta,
    FieldType,
    FieldValue,
    Identity,
    LookupValue,
    OptionMeta,
    Ownership,
    Page,
    Product,
    Record,
    RecordResult,
    RelationshipKind,
    RelationshipMeta,
    ThrottleState,
    TokenKind,
)
from crmsync_desktop.sync.filters import (
    EvaluationContext,
    FetchFilter,
    LinkEntity,
    LinkType,
    evaluate,
    parse_filter,
)

__all__ = [
    "DEFAULT_BUSINESS_UNIT_ID",
    "DEFAULT_TEAM_ID",
    "DEFAULT_USER_ID",
    "MemoryOrg",
    "add_resco_plugin_tables",
    "sales_org",
    "sales_schema",
]

DEFAULT_USER_ID = "00000000-0000-4000-8000-000000000001"
DEFAULT_BUSINESS_UNIT_ID = "00000000-0000-4000-8000-0000000000b1"
DEFAULT_TEAM_ID = "00000000-0000-4000-8000-0000000000c1"
DEFAULT_ORG_ID = "00000000-0000-4000-8000-0000000000a1"

# How Resco Cloud stores a Dataverse type (the Resco connector's lossy mapping, read back).
_RESCO_STORED = {
    FieldType.MEMO: FieldType.STRING,
    FieldType.BIGINT: FieldType.DECIMAL,
    FieldType.STATE: FieldType.PICKLIST,
    FieldType.STATUS: FieldType.PICKLIST,
    FieldType.OWNER: FieldType.LOOKUP,
}
_SYSTEM_FIELDS = ("createdon", "modifiedon", "versionnumber")


def _stored_type(product: Product, t: FieldType) -> FieldType:
    return _RESCO_STORED.get(t, t) if product is Product.RESCO else t


def _same_kind(a: FieldType, b: FieldType) -> bool:
    return a == b or _RESCO_STORED.get(a, a) == _RESCO_STORED.get(b, b)


@dataclass
class _Fault:
    error: errors.CrmSyncError
    method: str | None


class MemoryOrg:
    """One organization held in memory. See the module docstring for the semantics.

    Args:
        product: ``Product.DATAVERSE`` (server) or ``Product.RESCO`` (client).
        name: the organization name (``whoami().organization_name``).
        max_page_size: the page size cap (default 5000 for Dataverse, 1000 for Resco Cloud).
        tombstones: whether ``read_changes`` reports deletions (default: Dataverse yes, Resco no).
        schema_writes: whether ``create_*`` may change the schema (default: Resco yes, Dataverse no).
        now: the clock (``createdon``/``modifiedon`` and relative-date filters).
    """

    def __init__(
        self,
        product: Product | str = Product.DATAVERSE,
        *,
        name: str = "",
        user_id: str = DEFAULT_USER_ID,
        business_unit_id: str = DEFAULT_BUSINESS_UNIT_ID,
        organization_id: str = DEFAULT_ORG_ID,
        max_page_size: int | None = None,
        tombstones: bool | None = None,
        schema_writes: bool | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.product = Product(product)
        self.name = name or f"memory-{self.product.value}"
        self.user_id = user_id.lower()
        self.business_unit_id = business_unit_id.lower()
        self.organization_id = organization_id.lower()
        self.max_page_size = max_page_size or (5000 if self.product is Product.DATAVERSE else 1000)
        self.tombstones = self.product is Product.DATAVERSE if tombstones is None else tombstones
        self.schema_writes = self.product is Product.RESCO if schema_writes is None else schema_writes
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.offline = False
        self.cannot_track: set[str] = set()  # entities whose change tracking cannot be switched on
        self.requests: Counter[str] = Counter()
        self._entities: dict[str, EntityMeta] = {}
        self._relationships: dict[str, RelationshipMeta] = {}
        self._records: dict[str, dict[str, Record]] = {}
        self._versions: dict[str, dict[str, int]] = {}
        self._tombstones: dict[str, dict[str, int]] = {}
        self._links: dict[str, dict[tuple[str, str], str]] = {}  # relationship -> (id1, id2) -> intersect row id
        self._rv = 0
        self._epoch = 0
        self._faults: deque[_Fault] = deque()
        self._rejects: list[tuple[Callable[[str, Record], str | None], int, bool]] = []
        self._throttled_until: datetime | None = None
        self._throttle_events = 0
        self.closed = False

    # =========================================================================================
    # Test hooks
    # =========================================================================================
    @property
    def row_version(self) -> int:
        """The org-wide row version of the latest write."""
        return self._rv

    def fail_next(self, n: int, error: errors.CrmSyncError, *, method: str | None = None) -> None:
        """Make the next ``n`` round trips (of ``method`` only, if given) raise ``error``."""
        self._faults.extend(_Fault(error, method) for _ in range(n))

    def reject_when(
        self, predicate: Callable[[str, Record], str | None], *, status: int = 400, retryable: bool = False
    ) -> None:
        """Reject written records for which ``predicate(entity, record)`` returns an error message.

        The record's result is ``ok=False`` with that message (a ValidationError-like 400 by default);
        the other records of the call are written.
        """
        self._rejects.append((predicate, status, retryable))

    def clear_rejects(self) -> None:
        self._rejects.clear()

    def expire_tokens(self) -> None:
        """Every change token handed out so far becomes invalid (``FullResyncRequired`` on next use)."""
        self._epoch += 1

    def reset_requests(self) -> None:
        self.requests.clear()

    async def _request(self, method: str) -> None:
        """One round trip: counted, then the offline switch and injected faults apply."""
        await asyncio.sleep(0)  # let other tasks interleave, like real I/O
        self.requests[method] += 1
        if self.offline:
            raise errors.NetworkError(f"The organization {self.name} cannot be reached (offline).")
        for fault in self._faults:
            if fault.method is None or fault.method == method:
                self._faults.remove(fault)
                if isinstance(fault.error, errors.ThrottledError):
                    self._throttle_events += 1
                    self._throttled_until = self.now() + timedelta(seconds=fault.error.retry_after)
                raise fault.error

    # -- direct schema changes (an administrator editing the org; no counters, no faults) ------
    def add_entity(self, entity: EntityMeta) -> EntityMeta:
        """Add (or replace) an entity as given, adding a primary key column if it lacks one."""
        primary_id = entity.primary_id or f"{entity.logical_name}id"
        fields = {f.logical_name: f for f in entity.fields}
        if primary_id not in fields:
            fields[primary_id] = FieldMeta(primary_id, FieldType.UNIQUEIDENTIFIER, is_primary_id=True,
                                           valid_for_update=False)
        stored = replace(entity, primary_id=primary_id, fields=tuple(sorted(fields.values(), key=_name)))
        self._entities[entity.logical_name] = stored
        self._records.setdefault(entity.logical_name, {})
        self._versions.setdefault(entity.logical_name, {})
        self._tombstones.setdefault(entity.logical_name, {})
        return stored

    def add_field(self, entity: str, field: FieldMeta) -> None:
        """Add or replace a column (any change, even of type: an admin can do what sync cannot)."""
        meta = self._meta(entity)
        fields = {f.logical_name: f for f in meta.fields}
        fields[field.logical_name] = field
        self._entities[entity] = replace(meta, fields=tuple(sorted(fields.values(), key=_name)))

    def remove_field(self, entity: str, name: str) -> None:
        meta = self._meta(entity)
        self._entities[entity] = replace(meta, fields=tuple(f for f in meta.fields if f.logical_name != name))
        for record in self._records[entity].values():
            record.pop(name, None)

    def update_entity_meta(self, entity: str, **changes: Any) -> None:
        """Change entity properties directly (label, collection_label, change_tracking, ...)."""
        self._entities[entity] = replace(self._meta(entity), **changes)

    def remove_entity(self, entity: str) -> None:
        """Drop an entity, its rows and every relationship that involves it."""
        self._meta(entity)
        for name, rel in list(self._relationships.items()):
            if entity in (rel.referenced_entity, rel.referencing_entity, rel.entity1, rel.entity2):
                self.remove_relationship(name)
        del self._entities[entity]
        for table in (self._records, self._versions, self._tombstones):
            table.pop(entity, None)

    def add_relationship(self, relationship: RelationshipMeta) -> None:
        """Add a relationship as given; an N:N one gets its intersect entity if missing."""
        if relationship.kind is RelationshipKind.MANY_TO_MANY:
            self._ensure_intersect(relationship)
            self._links.setdefault(relationship.schema_name, {})
        self._relationships[relationship.schema_name] = relationship

    def remove_relationship(self, schema_name: str) -> None:
        self._relationships.pop(schema_name, None)
        self._links.pop(schema_name, None)

    # -- direct data changes (a user editing the org) -------------------------------------------
    def put(self, entity: str, record: Mapping[str, FieldValue]) -> str:
        """Create or update (merge) a record directly; returns its id (generated if missing)."""
        meta = self._meta(entity)
        rid = str(record.get(meta.primary_id) or uuid.uuid4()).lower()
        self._write(meta, rid, dict(record))
        return rid

    def delete(self, entity: str, record_id: str) -> bool:
        """Delete a record directly; False if it did not exist."""
        return self._remove(self._meta(entity), record_id.lower())

    def get(self, entity: str, record_id: str) -> Record | None:
        """A copy of a stored record, or None."""
        record = self._records.get(entity, {}).get(record_id.lower())
        return dict(record) if record is not None else None

    def records(self, entity: str) -> list[Record]:
        """Copies of every record of ``entity``, by id."""
        rows = self._records.get(entity, {})
        return [dict(rows[k]) for k in sorted(rows)]

    def count(self, entity: str) -> int:
        return len(self._records.get(entity, {}))

    def version_of(self, entity: str, record_id: str) -> int | None:
        return self._versions.get(entity, {}).get(record_id.lower())

    def etag_of(self, entity: str, record_id: str) -> str | None:
        version = self.version_of(entity, record_id)
        return _etag(version) if version is not None else None

    def link(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        self._link(self._n2n(relationship), entity1_id.lower(), entity2_id.lower())

    def unlink(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        self._unlink(self._n2n(relationship), entity1_id.lower(), entity2_id.lower())

    def links(self, relationship: str) -> set[tuple[str, str]]:
        return set(self._links.get(relationship, {}))

    def schema_entity(self, entity: str) -> EntityMeta:
        """The stored entity with fields, without a round trip."""
        return self._meta(entity)

    # =========================================================================================
    # Connector: who and what
    # =========================================================================================
    async def whoami(self) -> Identity:
        await self._request("whoami")
        return Identity(self.user_id, self.business_unit_id, self.organization_id, self.name)

    async def capabilities(self, entities: Sequence[str] = ()) -> Capabilities:
        await self._request("capabilities")
        bulk = frozenset(BulkMessage) if self.product is Product.DATAVERSE else frozenset()
        return Capabilities(
            product=self.product,
            max_page_size=self.max_page_size,
            change_tracking={e: self._has_tombstones(e) for e in entities},
            bulk_messages={e: bulk for e in entities},
            can_create_schema=self.schema_writes,
        )

    def throttle_state(self) -> ThrottleState:
        until = self._throttled_until if self._throttled_until and self._throttled_until > self.now() else None
        return ThrottleState(throttled_until=until, throttle_events=self._throttle_events)

    # =========================================================================================
    # Connector: metadata
    # =========================================================================================
    async def list_entities(self) -> list[EntityMeta]:
        await self._request("list_entities")
        return [replace(self._entities[n], fields=()) for n in sorted(self._entities)]

    async def get_entity(self, logical_name: str) -> EntityMeta:
        await self._request("get_entity")
        return self._meta(logical_name)

    async def list_relationships(self, logical_name: str) -> list[RelationshipMeta]:
        await self._request("list_relationships")
        self._meta(logical_name)
        return [
            r
            for _, r in sorted(self._relationships.items())
            if logical_name in (r.referenced_entity, r.referencing_entity, r.entity1, r.entity2)
        ]

    async def create_entity(self, entity: EntityMeta) -> None:
        await self._request("create_entity")
        self._check_schema_writes(entity.logical_name)
        if entity.logical_name in self._entities:
            return  # 409 on a real org: provisioning is re-runnable
        # Resco Cloud names every table's key ``id`` (docs/emulator.md); the engine matches keys by role.
        primary_id = "id" if self.product is Product.RESCO else (entity.primary_id or f"{entity.logical_name}id")
        given = {f.logical_name: f for f in entity.fields}
        fields = [
            replace(given.get(primary_id) or FieldMeta(primary_id, FieldType.UNIQUEIDENTIFIER),
                    type=FieldType.UNIQUEIDENTIFIER, is_primary_id=True, is_primary_name=False)
        ]
        primary_name = entity.primary_name or ("" if entity.is_intersect else "name")
        if primary_name:
            base = given.get(primary_name) or FieldMeta(primary_name, FieldType.STRING, label="Name", max_length=100)
            fields.append(replace(base, type=FieldType.STRING, is_primary_name=True, is_primary_id=False))
        if entity.ownership is Ownership.USER and not entity.is_intersect:
            fields.append(FieldMeta("ownerid", _stored_type(self.product, FieldType.OWNER), label="Owner",
                                    targets=("systemuser", "team")))
        if not entity.is_intersect:
            fields += [
                FieldMeta("createdon", FieldType.DATETIME, label="Created On", valid_for_create=False,
                          valid_for_update=False),
                FieldMeta("modifiedon", FieldType.DATETIME, label="Modified On", valid_for_create=False,
                          valid_for_update=False),
            ]
        fields.append(FieldMeta("versionnumber", FieldType.ROWVERSION, label="Version Number",
                                valid_for_create=False, valid_for_update=False))
        self.add_entity(
            replace(
                entity,
                primary_id=primary_id,
                primary_name=primary_name,
                entity_set_name=entity.entity_set_name or entity.logical_name,
                change_tracking=self.tombstones and entity.change_tracking,
                fields=tuple(fields),
            )
        )

    async def create_field(self, entity: str, field: FieldMeta) -> None:
        await self._request("create_field")
        self._check_schema_writes(entity)
        meta = self._meta(entity)
        if field.type is FieldType.OTHER:
            raise errors.ValidationError(f"A {field.type} field ({field.logical_name}) cannot be created.", entity=entity)
        stored = replace(field, type=_stored_type(self.product, field.type))
        existing = meta.field(field.logical_name)
        if existing is not None:
            if not _same_kind(existing.type, stored.type):
                raise errors.ValidationError(
                    f"{entity}.{field.logical_name} already exists as {existing.type}, not {stored.type}.",
                    entity=entity, status=400,
                )
            return  # 409: already there
        missing = [t for t in field.targets if t not in self._entities]
        if field.type.is_lookup and (missing or not field.targets):
            raise errors.ValidationError(
                f"The lookup {entity}.{field.logical_name} points to unknown entities {missing or '(none)'}.",
                entity=entity, status=400,
            )
        self.add_field(entity, stored)

    async def create_relationship(self, relationship: RelationshipMeta) -> None:
        await self._request("create_relationship")
        r = relationship
        self._check_schema_writes(r.referencing_entity or r.entity1)
        if r.schema_name in self._relationships:
            return
        if r.kind is RelationshipKind.MANY_TO_MANY:
            self._meta(r.entity1)
            self._meta(r.entity2)
            self.add_relationship(r)
            return
        referenced = self._meta(r.referenced_entity)
        referencing = self._meta(r.referencing_entity)
        attribute = referencing.field(r.referencing_attribute)
        if attribute is None:
            self.add_field(referencing.logical_name, FieldMeta(r.referencing_attribute, FieldType.LOOKUP,
                                                                targets=(referenced.logical_name,)))
        elif not attribute.type.is_lookup:
            raise errors.ValidationError(
                f"{r.referencing_entity}.{r.referencing_attribute} is a {attribute.type} column, not a lookup.",
                entity=r.referencing_entity, status=400,
            )
        elif referenced.logical_name not in attribute.targets:
            self.add_field(referencing.logical_name,
                           replace(attribute, targets=(*attribute.targets, referenced.logical_name)))
        self._relationships[r.schema_name] = replace(r, referenced_attribute=r.referenced_attribute or referenced.primary_id)

    async def update_field(self, entity: str, field: FieldMeta) -> None:
        """Proposed Protocol addition: change label, max length, options, targets, required of a column."""
        await self._request("update_field")
        self._check_schema_writes(entity)
        existing = self._meta(entity).field(field.logical_name)
        if existing is None:
            raise errors.NotFoundError(f"{entity}.{field.logical_name} does not exist.", entity=entity, status=404)
        if not _same_kind(existing.type, field.type):
            raise errors.ValidationError(
                f"The type of {entity}.{field.logical_name} cannot change ({existing.type} -> {field.type}).",
                entity=entity, status=400,
            )
        missing = [t for t in field.targets if t not in self._entities]
        if missing:
            raise errors.ValidationError(f"{entity}.{field.logical_name}: unknown targets {missing}.", entity=entity)
        self.add_field(entity, replace(existing, label=field.label, max_length=field.max_length,
                                       options=field.options, required=field.required, targets=field.targets))

    async def update_entity(self, entity: EntityMeta) -> None:
        """Change the labels of an existing entity; ``change_tracking=True`` switches it on (Dataverse).

        Like the real Dataverse connector, a Dataverse org applies only ``change_tracking``.
        """
        await self._request("update_entity")
        meta = self._meta(entity.logical_name)
        if self.product is Product.DATAVERSE:
            if entity.change_tracking and not meta.change_tracking:
                self._entities[meta.logical_name] = replace(meta, change_tracking=True)
            return
        self._check_schema_writes(entity.logical_name)
        self._entities[meta.logical_name] = replace(meta, label=entity.label, collection_label=entity.collection_label)

    async def enable_change_tracking(self, entity: str) -> None:
        """Dataverse: ``change_tracking`` on from now on (deletions leave tombstones); Resco Cloud: nothing to do."""
        await self._request("enable_change_tracking")
        meta = self._meta(entity)
        if self.product is Product.DATAVERSE and not meta.change_tracking:
            if entity in self.cannot_track:
                raise errors.ValidationError(f"Change tracking cannot be enabled for {entity}.", entity=entity, status=400)
            self._entities[entity] = replace(meta, change_tracking=True)

    # =========================================================================================
    # Connector: reads
    # =========================================================================================
    async def read_pages(
        self, entity: str, fields: Sequence[str], *, fetch_filter: str = "", page_size: int | None = None
    ) -> AsyncIterator[Page]:
        async for rows in self._select("read_pages", entity, fields, fetch_filter, page_size):
            yield Page(tuple(row for row, _ in rows), {_row_id(row, self._meta(entity)): _etag(v) for row, v in rows})

    async def read_ids(
        self, entity: str, *, fetch_filter: str = "", page_size: int | None = None
    ) -> AsyncIterator[list[str]]:
        async for rows in self._select("read_ids", entity, (), fetch_filter, page_size):
            meta = self._meta(entity)
            yield [_row_id(row, meta) for row, _ in rows]

    async def _select(
        self, method: str, entity: str, fields: Sequence[str], fetch_filter: str, page_size: int | None
    ) -> AsyncIterator[list[tuple[Record, int]]]:
        """Matching rows by id, a page per round trip (keyset paging: rows written meanwhile may show up)."""
        size = self._page_size(page_size)
        await self._request(method)
        meta = self._meta(entity)
        self._check_fields(meta, fields)
        fetch = parse_filter(fetch_filter, entity=entity)
        limit = fetch.count
        after = ""
        sent = 0
        while True:
            table = self._records.get(entity, {})
            want = size if limit is None else min(size, limit - sent)
            if want <= 0:
                if sent == 0:
                    yield []
                return
            matches: list[str] = []
            for rid in sorted(k for k in table if k > after):
                if self._matches(fetch, entity, table[rid]):
                    matches.append(rid)
                    if len(matches) > want:  # one more than needed: tells whether a next page exists
                        break
            page = [(self._project(meta, table[rid], fields), self._versions[entity][rid]) for rid in matches[:want]]
            sent += len(page)
            last = len(matches) <= want or (limit is not None and sent >= limit)
            if page or sent == 0:
                yield page
            if last:
                return
            after = matches[want - 1]
            await self._request(method)
            meta = self._meta(entity)

    async def read_changes(
        self, entity: str, fields: Sequence[str], token: ChangeToken | None
    ) -> AsyncIterator[ChangePage]:
        await self._request("read_changes")
        meta = self._meta(entity)
        self._check_fields(meta, fields)
        tracked = self._has_tombstones(entity)
        kind = TokenKind.DELTA_LINK if tracked else TokenKind.ROW_VERSION
        since = 0 if token is None else self._token_version(entity, token, kind)
        size = self.max_page_size
        cursor = since
        while True:
            versions = self._versions.get(entity, {})
            changes: list[tuple[int, str, bool]] = [(v, rid, False) for rid, v in versions.items() if v > cursor]
            if tracked and token is not None:
                changes += [(v, rid, True) for rid, v in self._tombstones.get(entity, {}).items() if v > cursor]
            changes.sort()
            batch = changes[:size]
            last = len(changes) <= size
            if batch:
                cursor = batch[-1][0]
            upserts = tuple(self._project(meta, self._records[entity][rid], fields) for _, rid, gone in batch if not gone)
            etags = {rid: _etag(v) for v, rid, gone in batch if not gone}
            deleted = tuple(rid for _, rid, gone in batch if gone)
            if last:
                # everything of this entity up to the org-wide version has been delivered
                new_token: ChangeToken | None = self._token(kind, max(cursor, self._rv))
            elif token is None and tracked:
                new_token = None  # an initial Dataverse read hands its delta link out only at the end
            else:
                new_token = self._token(kind, cursor)
            yield ChangePage(upserts=upserts, deleted_ids=deleted, token=new_token, etags=etags)
            if last:
                return
            await self._request("read_changes")
            meta = self._meta(entity)

    async def has_changes(self, entity: str, token: ChangeToken) -> bool:
        await self._request("has_changes")
        self._meta(entity)
        tracked = self._has_tombstones(entity)
        since = self._token_version(entity, token, TokenKind.DELTA_LINK if tracked else TokenKind.ROW_VERSION)
        if any(v > since for v in self._versions.get(entity, {}).values()):
            return True
        return tracked and any(v > since for v in self._tombstones.get(entity, {}).values())

    # =========================================================================================
    # Connector: writes
    # =========================================================================================
    async def upsert_many(
        self, entity: str, records: Sequence[Record], *, if_match: Mapping[str, str] | None = None
    ) -> list[RecordResult]:
        await self._request("upsert_many")
        meta = self._meta(entity)
        return [self._upsert_one(meta, record, if_match or {}) for record in records]

    def _upsert_one(self, meta: EntityMeta, record: Record, if_match: Mapping[str, str]) -> RecordResult:
        entity = meta.logical_name
        rid = str(record.get(meta.primary_id) or "").lower()
        if not rid:
            return RecordResult(id="", ok=False, error=f"The record has no {meta.primary_id}.", status=400)
        if meta.is_intersect:
            return _bad(rid, f"{entity} is an intersect entity: link records with associate instead.")
        for name, value in record.items():
            f = meta.field(name)
            if f is None:
                return _bad(rid, f"{entity} has no column {name!r}.")
            if isinstance(value, LookupValue):
                if not f.type.is_lookup:
                    return _bad(rid, f"{entity}.{name} is not a lookup.")
                if value.entity not in f.targets:
                    return _bad(rid, f"{entity}.{name} cannot point to a {value.entity} record.")
                if value.id.lower() not in self._records.get(value.entity, {}):
                    return _bad(rid, f"{entity}.{name}: the {value.entity} {value.id} does not exist.", 404)
        for predicate, status, retryable in self._rejects:
            message = predicate(entity, record)
            if message:
                return RecordResult(id=rid, ok=False, error=message, status=status, retryable=retryable)
        etag = if_match.get(rid)
        exists = rid in self._records.get(entity, {})
        if etag is not None:
            if not exists:
                return RecordResult(id=rid, ok=False, error=f"The {entity} {rid} was deleted.", status=404)
            if etag != "*" and etag != _etag(self._versions[entity][rid]):
                return RecordResult(
                    id=rid, ok=False, error=f"The {entity} {rid} changed since it was read.", status=412,
                    conflict=True,
                )
        self._write(meta, rid, dict(record))
        return RecordResult.success(rid)

    async def delete_many(self, entity: str, ids: Sequence[str]) -> list[RecordResult]:
        await self._request("delete_many")
        meta = self._meta(entity)
        out: list[RecordResult] = []
        for rid in ids:
            if meta.is_intersect:
                out.append(_bad(rid.lower(), f"{entity} is an intersect entity: use disassociate."))
                continue
            self._remove(meta, rid.lower())
            out.append(RecordResult.success(rid.lower()))
        return out

    async def associate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        await self._request("associate")
        rel = self._n2n(relationship)
        for ent, rid in ((rel.entity1, entity1_id), (rel.entity2, entity2_id)):
            if rid.lower() not in self._records.get(ent, {}):
                raise errors.NotFoundError(f"The {ent} {rid} does not exist.", entity=ent, status=404)
        self._link(rel, entity1_id.lower(), entity2_id.lower())

    async def disassociate(self, relationship: str, entity1_id: str, entity2_id: str) -> None:
        await self._request("disassociate")
        self._unlink(self._n2n(relationship), entity1_id.lower(), entity2_id.lower())

    async def assign(self, entity: str, record_id: str, owner: LookupValue) -> None:
        await self._request("assign")
        meta = self._meta(entity)
        if owner.entity not in ("systemuser", "team"):
            raise errors.ValidationError(f"An owner must be a systemuser or a team, not {owner.entity}.", entity=entity)
        if meta.field("ownerid") is None:
            raise errors.ValidationError(f"{entity} has no owner.", entity=entity, status=400)
        if record_id.lower() not in self._records.get(entity, {}):
            raise errors.NotFoundError(f"The {entity} {record_id} does not exist.", entity=entity, status=404)
        if owner.id.lower() not in self._records.get(owner.entity, {}):
            raise errors.NotFoundError(f"The {owner.entity} {owner.id} does not exist.", status=404)
        self._write(meta, record_id.lower(), {"ownerid": LookupValue(owner.entity, owner.id.lower())})

    async def aclose(self) -> None:
        self.closed = True

    # =========================================================================================
    # Internals
    # =========================================================================================
    def _meta(self, entity: str) -> EntityMeta:
        try:
            return self._entities[entity]
        except KeyError:
            raise errors.NotFoundError(
                f"The entity {entity!r} does not exist in {self.name}.", entity=entity, status=404
            ) from None

    def _n2n(self, relationship: str) -> RelationshipMeta:
        rel = self._relationships.get(relationship)
        if rel is None or rel.kind is not RelationshipKind.MANY_TO_MANY:
            raise errors.NotFoundError(f"The N:N relationship {relationship!r} does not exist in {self.name}.",
                                       status=404)
        return rel

    def _check_schema_writes(self, entity: str) -> None:
        if not self.schema_writes:
            raise errors.ConfigError(
                f"The schema of {self.name} is read-only: metadata flows from the server to the client only.",
                title="Server schema is read-only", entity=entity or None,
            )

    def _has_tombstones(self, entity: str) -> bool:
        meta = self._entities.get(entity)
        return self.tombstones and meta is not None and meta.change_tracking

    def _page_size(self, requested: int | None) -> int:
        return max(1, min(requested or self.max_page_size, self.max_page_size))

    @staticmethod
    def _check_fields(meta: EntityMeta, fields: Iterable[str]) -> None:
        unknown = [f for f in fields if meta.field(f) is None]
        if unknown:
            raise errors.ValidationError(
                f"Could not find a column named {unknown[0]!r} on {meta.logical_name}.",
                entity=meta.logical_name, status=400,
            )

    @staticmethod
    def _project(meta: EntityMeta, record: Record, fields: Sequence[str]) -> Record:
        out: Record = {meta.primary_id: record[meta.primary_id]}
        for f in fields:
            out[f] = record.get(f)
        return out

    def _token(self, kind: TokenKind, version: int) -> ChangeToken:
        return ChangeToken(kind, f"{self._epoch}:{version}")

    def _token_version(self, entity: str, token: ChangeToken, kind: TokenKind) -> int:
        epoch, _, version = token.value.partition(":")
        if token.kind is not kind or not epoch.isdigit() or not version.isdigit() or int(epoch) != self._epoch:
            raise errors.FullResyncRequired(
                f"The change token for {entity} has expired; a full resynchronization is needed.",
                entity=entity, status=410,
            )
        return int(version)

    def _bump(self) -> int:
        self._rv += 1
        return self._rv

    def _write(self, meta: EntityMeta, rid: str, values: Record) -> None:
        entity = meta.logical_name
        table = self._records.setdefault(entity, {})
        now = self.now().isoformat()
        current = table.get(rid)
        record: Record = dict(current) if current is not None else {}
        for name, value in values.items():
            if isinstance(value, LookupValue):
                value = LookupValue(value.entity, value.id.lower())
            record[name] = value
        record[meta.primary_id] = rid
        version = self._bump()
        if current is None:
            if meta.ownership is Ownership.USER and meta.field("ownerid") and record.get("ownerid") is None:
                record["ownerid"] = LookupValue("systemuser", self.user_id)
            if meta.field("createdon"):
                record["createdon"] = now
        if meta.field("modifiedon"):
            record["modifiedon"] = now
        if meta.field("versionnumber"):
            record["versionnumber"] = version
        table[rid] = record
        self._versions.setdefault(entity, {})[rid] = version
        self._tombstones.setdefault(entity, {}).pop(rid, None)

    def _remove(self, meta: EntityMeta, rid: str) -> bool:
        entity = meta.logical_name
        if rid not in self._records.get(entity, {}):
            return False
        del self._records[entity][rid]
        del self._versions[entity][rid]
        self._tombstones.setdefault(entity, {})[rid] = self._bump()
        for rel in list(self._relationships.values()):  # N:N links of the record go with it
            if rel.kind is RelationshipKind.MANY_TO_MANY:
                for id1, id2 in list(self._links.get(rel.schema_name, {})):
                    if (rel.entity1 == entity and id1 == rid) or (rel.entity2 == entity and id2 == rid):
                        self._unlink(rel, id1, id2)
        for other in list(self._entities.values()):  # "Remove Link": lookups to it are cleared
            lookups = [f.logical_name for f in other.fields if f.type.is_lookup and entity in f.targets]
            for other_id, record in list(self._records.get(other.logical_name, {}).items()):
                cleared = {
                    f: None for f in lookups
                    if isinstance(record.get(f), LookupValue) and record[f] == LookupValue(entity, rid)
                }
                if cleared:
                    self._write(other, other_id, cleared)
        return True

    def _ensure_intersect(self, rel: RelationshipMeta) -> None:
        if rel.intersect_entity in self._entities:
            return
        self.add_entity(
            EntityMeta(
                rel.intersect_entity, label=rel.intersect_entity, entity_set_name=rel.intersect_entity,
                primary_id=f"{rel.intersect_entity}id", ownership=Ownership.NONE, is_intersect=True,
                change_tracking=self.tombstones,
                fields=(
                    FieldMeta(rel.entity1_intersect_attribute, FieldType.UNIQUEIDENTIFIER),
                    FieldMeta(rel.entity2_intersect_attribute, FieldType.UNIQUEIDENTIFIER),
                ),
            )
        )

    def _link(self, rel: RelationshipMeta, id1: str, id2: str) -> None:
        links = self._links.setdefault(rel.schema_name, {})
        if (id1, id2) in links:
            return
        self._ensure_intersect(rel)
        meta = self._entities[rel.intersect_entity]
        row = str(uuid.uuid4())
        self._write(meta, row, {rel.entity1_intersect_attribute: id1, rel.entity2_intersect_attribute: id2})
        links[(id1, id2)] = row

    def _unlink(self, rel: RelationshipMeta, id1: str, id2: str) -> None:
        row = self._links.get(rel.schema_name, {}).pop((id1, id2), None)
        if row is not None:
            self._remove(self._entities[rel.intersect_entity], row)

    # -- filters ----------------------------------------------------------------------------------
    def _context(self) -> EvaluationContext:
        return EvaluationContext(user_id=self.user_id, business_unit_id=self.business_unit_id, now=self.now())

    def _matches(self, fetch: FetchFilter, entity: str, record: Record) -> bool:
        if fetch.is_empty:
            return True
        for c in fetch.filter.walk_conditions() if fetch.filter else ():
            if c.entity_alias is not None:
                raise errors.FilterError(
                    f"The memory org cannot evaluate the condition on {c.entity_alias}.{c.attribute}: "
                    "write conditions on a linked table inside its link-entity.", entity=entity,
                )
        plain = replace(fetch, links=(), count=None)
        if not evaluate(plain, _evaluable(record), self._context()):
            return False
        return all(self._link_matches(link, entity, record) for link in fetch.links)

    def _link_matches(self, link: LinkEntity, parent: str, record: Record) -> bool:
        """A link-entity: inner/exists/in/any = some linked row matches; not-any = none; outer = no filter."""
        if link.link_type is LinkType.OUTER:
            return True
        if link.link_type not in (LinkType.INNER, LinkType.EXISTS, LinkType.IN, LinkType.ANY, LinkType.NOT_ANY):
            raise errors.FilterError(
                f"The memory org does not support link-type {link.link_type.value!r} (link to {link.name}).",
                entity=parent,
            )
        key = _key(record.get(link.to_attribute))
        if key is None:
            return link.link_type is LinkType.NOT_ANY
        target = FetchFilter(entity=link.name, filter=link.filter, links=link.links)
        found = any(
            _key(row.get(link.from_attribute)) == key and self._matches(target, link.name, row)
            for row in self._records.get(link.name, {}).values()
        )
        return not found if link.link_type is LinkType.NOT_ANY else found


def _row_id(record: Record, meta: EntityMeta) -> str:
    return str(record[meta.primary_id])


def _name(f: FieldMeta) -> str:
    return f.logical_name


def _etag(version: int) -> str:
    return f'W/"{version}"'


def _bad(rid: str, message: str, status: int = 400) -> RecordResult:
    return RecordResult(id=rid, ok=False, error=message, status=status, retryable=False)


def _key(value: Any) -> str | None:
    if isinstance(value, LookupValue):
        return value.id.lower()
    if value is None or value == "":
        return None
    return str(value).lower()


def _evaluable(record: Record) -> dict[str, Any]:
    """Lookups become their id, which is what ``evaluate`` compares GUID conditions with."""
    return {k: (v.id if isinstance(v, LookupValue) else v) for k, v in record.items()}


# =============================================================================================
# A small sales schema (Dataverse-shaped), for engine tests
# =============================================================================================
def _f(name: str, type_: FieldType, label: str, **kw: Any) -> FieldMeta:
    return FieldMeta(name, type_, label=label, schema_name=name.capitalize(), **kw)


def _pk(name: str) -> FieldMeta:
    return _f(name, FieldType.UNIQUEIDENTIFIER, name, is_primary_id=True, valid_for_update=False)


def _name_field(name: str, label: str, max_length: int, *, computed: bool = False) -> FieldMeta:
    return _f(name, FieldType.STRING, label, max_length=max_length, is_primary_name=True,
              required=not computed, valid_for_create=not computed, valid_for_update=not computed)


def _system() -> tuple[FieldMeta, ...]:
    read_only = {"valid_for_create": False, "valid_for_update": False}
    return (
        _f("createdon", FieldType.DATETIME, "Created On", **read_only),
        _f("modifiedon", FieldType.DATETIME, "Modified On", **read_only),
        _f("versionnumber", FieldType.ROWVERSION, "Version Number", **read_only),
        _f("createdby", FieldType.LOOKUP, "Created By", targets=("systemuser",), **read_only),
        _f("modifiedby", FieldType.LOOKUP, "Modified By", targets=("systemuser",), **read_only),
    )


def _owned() -> tuple[FieldMeta, ...]:
    return (
        _f("ownerid", FieldType.OWNER, "Owner", targets=("systemuser", "team"), required=True),
        _f("owningbusinessunit", FieldType.LOOKUP, "Owning Business Unit", targets=("businessunit",),
           valid_for_create=False, valid_for_update=False),
    )


def _state(active: str, inactive: str, extra: tuple[OptionMeta, ...] = ()) -> tuple[FieldMeta, ...]:
    return (
        _f("statecode", FieldType.STATE, "Status", options=(OptionMeta(0, "Active"), OptionMeta(1, "Inactive"))),
        _f("statuscode", FieldType.STATUS, "Status Reason",
           options=(OptionMeta(1, active), OptionMeta(2, inactive), *extra)),
    )


def _one_to_many(name: str, referenced: str, referencing: str, attribute: str, nav: str = "") -> RelationshipMeta:
    return RelationshipMeta(
        schema_name=name, kind=RelationshipKind.ONE_TO_MANY, referenced_entity=referenced,
        referenced_attribute=f"{referenced}id", referencing_entity=referencing, referencing_attribute=attribute,
        referencing_navigation=nav or attribute, referenced_navigation=name,
    )


def sales_schema() -> tuple[list[EntityMeta], list[RelationshipMeta]]:
    """systemuser, businessunit, team, account, contact, opportunity, lead, competitor and leadcompetitors.

    Realistic Dataverse shapes: polymorphic ``parentcustomerid``/``customerid`` (account or contact),
    ``account.primarycontactid`` -> contact and ``contact.parentcustomerid`` -> account (a cycle),
    self-references (``account.parentaccountid``, ``businessunit.parentbusinessunitid``), a computed
    primary name (``contact.fullname``), and the ``leadcompetitors_association`` N:N.
    """
    s, lk, text = FieldType.STRING, FieldType.LOOKUP, FieldType.MEMO
    entities = [
        EntityMeta(
            "businessunit", label="Business Unit", collection_label="Business Units", schema_name="BusinessUnit",
            entity_set_name="businessunits", primary_id="businessunitid", primary_name="name",
            ownership=Ownership.ORGANIZATION, change_tracking=True,
            fields=(
                _pk("businessunitid"), _name_field("name", "Name", 160),
                _f("parentbusinessunitid", lk, "Parent Business", targets=("businessunit",)),
                _f("divisionname", s, "Division", max_length=100),
                *_system(),
            ),
        ),
        EntityMeta(
            "systemuser", label="User", collection_label="Users", schema_name="SystemUser",
            entity_set_name="systemusers", primary_id="systemuserid", primary_name="fullname",
            ownership=Ownership.ORGANIZATION, change_tracking=True,
            fields=(
                _pk("systemuserid"), _name_field("fullname", "Full Name", 200, computed=True),
                _f("firstname", s, "First Name", max_length=64),
                _f("lastname", s, "Last Name", max_length=64, required=True),
                _f("domainname", s, "User Name", max_length=1024, required=True),
                _f("internalemailaddress", s, "Primary Email", max_length=100),
                _f("businessunitid", lk, "Business Unit", targets=("businessunit",), required=True),
                _f("isdisabled", FieldType.BOOLEAN, "Status", valid_for_create=False),
                *_system(),
            ),
        ),
        EntityMeta(
            "team", label="Team", collection_label="Teams", schema_name="Team", entity_set_name="teams",
            primary_id="teamid", primary_name="name", ownership=Ownership.ORGANIZATION, change_tracking=True,
            fields=(
                _pk("teamid"), _name_field("name", "Team Name", 160),
                _f("businessunitid", lk, "Business Unit", targets=("businessunit",), required=True),
                _f("administratorid", lk, "Administrator", targets=("systemuser",), required=True),
                _f("teamtype", FieldType.PICKLIST, "Team Type", options=(OptionMeta(0, "Owner"), OptionMeta(1, "Access"))),
                *_system(),
            ),
        ),
        EntityMeta(
            "account", label="Account", collection_label="Accounts", schema_name="Account",
            entity_set_name="accounts", primary_id="accountid", primary_name="name", change_tracking=True,
            fields=(
                _pk("accountid"), _name_field("name", "Account Name", 160),
                _f("accountnumber", s, "Account Number", max_length=20),
                _f("telephone1", s, "Main Phone", max_length=50),
                _f("emailaddress1", s, "Email", max_length=100),
                _f("websiteurl", s, "Website", max_length=200),
                _f("address1_city", s, "Address 1: City", max_length=80),
                _f("description", text, "Description", max_length=2000),
                _f("revenue", FieldType.MONEY, "Annual Revenue", precision=2),
                _f("numberofemployees", FieldType.INTEGER, "Number of Employees"),
                _f("creditonhold", FieldType.BOOLEAN, "Credit Hold"),
                _f("industrycode", FieldType.PICKLIST, "Industry",
                   options=(OptionMeta(1, "Accounting"), OptionMeta(2, "Agriculture"), OptionMeta(3, "Consulting"))),
                _f("primarycontactid", lk, "Primary Contact", targets=("contact",)),
                _f("parentaccountid", lk, "Parent Account", targets=("account",)),
                _f("crawl_data", FieldType.OTHER, "Not copied"),
                *_owned(), *_state("Active", "Inactive"), *_system(),
            ),
        ),
        EntityMeta(
            "contact", label="Contact", collection_label="Contacts", schema_name="Contact",
            entity_set_name="contacts", primary_id="contactid", primary_name="fullname", change_tracking=True,
            fields=(
                _pk("contactid"), _name_field("fullname", "Full Name", 160, computed=True),
                _f("firstname", s, "First Name", max_length=50),
                _f("lastname", s, "Last Name", max_length=50, required=True),
                _f("emailaddress1", s, "Email", max_length=100),
                _f("telephone1", s, "Business Phone", max_length=50),
                _f("jobtitle", s, "Job Title", max_length=100),
                _f("birthdate", FieldType.DATETIME, "Birthday"),
                _f("parentcustomerid", lk, "Company Name", targets=("account", "contact")),
                *_owned(), *_state("Active", "Inactive"), *_system(),
            ),
        ),
        EntityMeta(
            "opportunity", label="Opportunity", collection_label="Opportunities", schema_name="Opportunity",
            entity_set_name="opportunities", primary_id="opportunityid", primary_name="name", change_tracking=True,
            fields=(
                _pk("opportunityid"), _name_field("name", "Topic", 300),
                _f("customerid", lk, "Potential Customer", targets=("account", "contact")),
                _f("parentaccountid", lk, "Account", targets=("account",)),
                _f("parentcontactid", lk, "Contact", targets=("contact",)),
                _f("estimatedvalue", FieldType.MONEY, "Est. Revenue", precision=2),
                _f("estimatedclosedate", FieldType.DATETIME, "Est. Close Date"),
                _f("closeprobability", FieldType.INTEGER, "Probability"),
                _f("description", text, "Description", max_length=2000),
                _f("originatingleadid", lk, "Originating Lead", targets=("lead",)),
                *_owned(),
                _f("statecode", FieldType.STATE, "Status",
                   options=(OptionMeta(0, "Open"), OptionMeta(1, "Won"), OptionMeta(2, "Lost"))),
                _f("statuscode", FieldType.STATUS, "Status Reason",
                   options=(OptionMeta(1, "In Progress"), OptionMeta(3, "Won"), OptionMeta(4, "Canceled"))),
                *_system(),
            ),
        ),
        EntityMeta(
            "lead", label="Lead", collection_label="Leads", schema_name="Lead", entity_set_name="leads",
            primary_id="leadid", primary_name="fullname", change_tracking=True,
            fields=(
                _pk("leadid"), _name_field("fullname", "Name", 160, computed=True),
                _f("subject", s, "Topic", max_length=300, required=True),
                _f("firstname", s, "First Name", max_length=50),
                _f("lastname", s, "Last Name", max_length=50, required=True),
                _f("companyname", s, "Company Name", max_length=100),
                _f("emailaddress1", s, "Email", max_length=100),
                _f("leadsourcecode", FieldType.PICKLIST, "Lead Source",
                   options=(OptionMeta(1, "Advertisement"), OptionMeta(8, "Web"))),
                _f("parentaccountid", lk, "Parent Account", targets=("account",)),
                _f("parentcontactid", lk, "Parent Contact", targets=("contact",)),
                *_owned(), *_state("New", "Qualified"), *_system(),
            ),
        ),
        EntityMeta(
            "competitor", label="Competitor", collection_label="Competitors", schema_name="Competitor",
            entity_set_name="competitors", primary_id="competitorid", primary_name="name",
            ownership=Ownership.ORGANIZATION, change_tracking=True,
            fields=(
                _pk("competitorid"), _name_field("name", "Name", 100),
                _f("websiteurl", s, "Website", max_length=200),
                _f("strengths", text, "Strengths", max_length=100000),
                _f("weaknesses", text, "Weaknesses", max_length=100000),
                _f("reportedrevenue", FieldType.MONEY, "Reported Revenue", precision=2),
                *_system(),
            ),
        ),
        EntityMeta(
            "leadcompetitors", label="leadcompetitors", schema_name="LeadCompetitors",
            entity_set_name="leadcompetitorscollection", primary_id="leadcompetitorid", ownership=Ownership.NONE,
            is_intersect=True, change_tracking=True,
            fields=(
                _pk("leadcompetitorid"),
                _f("leadid", FieldType.UNIQUEIDENTIFIER, "leadid"),
                _f("competitorid", FieldType.UNIQUEIDENTIFIER, "competitorid"),
                _f("versionnumber", FieldType.ROWVERSION, "Version Number", valid_for_create=False,
                   valid_for_update=False),
            ),
        ),
    ]
    relationships = [
        _one_to_many("business_unit_parent_business_unit", "businessunit", "businessunit", "parentbusinessunitid"),
        _one_to_many("business_unit_system_users", "businessunit", "systemuser", "businessunitid"),
        _one_to_many("business_unit_teams", "businessunit", "team", "businessunitid"),
        _one_to_many("lk_teambase_administratorid", "systemuser", "team", "administratorid"),
        _one_to_many("account_primary_contact", "contact", "account", "primarycontactid"),
        _one_to_many("account_parent_account", "account", "account", "parentaccountid"),
        _one_to_many("contact_customer_accounts", "account", "contact", "parentcustomerid", "parentcustomerid_account"),
        _one_to_many("contact_customer_contacts", "contact", "contact", "parentcustomerid", "parentcustomerid_contact"),
        _one_to_many("opportunity_customer_accounts", "account", "opportunity", "customerid", "customerid_account"),
        _one_to_many("opportunity_customer_contacts", "contact", "opportunity", "customerid", "customerid_contact"),
        _one_to_many("opportunity_parent_account", "account", "opportunity", "parentaccountid"),
        _one_to_many("opportunity_parent_contact", "contact", "opportunity", "parentcontactid"),
        _one_to_many("lead_opportunity_origin", "lead", "opportunity", "originatingleadid"),
        _one_to_many("lead_parent_account", "account", "lead", "parentaccountid"),
        _one_to_many("lead_parent_contact", "contact", "lead", "parentcontactid"),
        RelationshipMeta(
            schema_name="leadcompetitors_association", kind=RelationshipKind.MANY_TO_MANY, entity1="lead",
            entity2="competitor", intersect_entity="leadcompetitors", entity1_intersect_attribute="leadid",
            entity2_intersect_attribute="competitorid", entity1_navigation="leadcompetitors_association",
            entity2_navigation="leadcompetitors_association",
        ),
    ]
    for e in entities:  # createdby/modifiedby/owningbusinessunit relationships, as Dataverse has them
        if e.field("createdby"):
            relationships.append(_one_to_many(f"lk_{e.logical_name}_createdby", "systemuser", e.logical_name, "createdby"))
            relationships.append(_one_to_many(f"lk_{e.logical_name}_modifiedby", "systemuser", e.logical_name, "modifiedby"))
        if e.field("owningbusinessunit"):
            relationships.append(
                _one_to_many(f"business_unit_{e.logical_name}", "businessunit", e.logical_name, "owningbusinessunit")
            )
    return entities, relationships


def add_resco_plugin_tables(org: MemoryOrg) -> None:
    """The tables Resco's Dynamics plugins add to a server: ``resco_mobiletracking`` (events) and
    ``resco_mobiletrackingconfig`` (what is tracked), as the Dataverse emulator defines them (docs/emulator.md)."""
    s, u, b = FieldType.STRING, FieldType.UNIQUEIDENTIFIER, FieldType.BOOLEAN
    org.add_entity(EntityMeta(
        "resco_mobiletracking", label="Mobile Tracking", collection_label="Mobile Tracking",
        schema_name="resco_MobileTracking", entity_set_name="resco_mobiletrackings",
        primary_id="resco_mobiletrackingid", primary_name="resco_name", ownership=Ownership.ORGANIZATION,
        change_tracking=True, is_custom=True,
        fields=(
            _pk("resco_mobiletrackingid"), _name_field("resco_name", "Name", 200),
            _f("resco_action", FieldType.PICKLIST, "Action", options=(
                OptionMeta(1, "Delete"), OptionMeta(2, "Owner Change"), OptionMeta(3, "Disassociate"))),
            _f("resco_entityname", s, "Entity Name", max_length=64), _f("resco_objectid", u, "Object Id"),
            _f("resco_relationshipname", s, "Relationship Name", max_length=128),
            _f("resco_relatedentityname", s, "Related Entity Name", max_length=64),
            _f("resco_relatedobjectid", u, "Related Object Id"),
            *_system(),
        ),
    ))
    org.add_entity(EntityMeta(
        "resco_mobiletrackingconfig", label="Mobile Tracking Configuration",
        collection_label="Mobile Tracking Configurations", schema_name="resco_MobileTrackingConfig",
        entity_set_name="resco_mobiletrackingconfigs", primary_id="resco_mobiletrackingconfigid",
        primary_name="resco_name", ownership=Ownership.ORGANIZATION, change_tracking=True, is_custom=True,
        fields=(
            _pk("resco_mobiletrackingconfigid"), _name_field("resco_name", "Name", 200),
            _f("resco_entityname", s, "Entity Name", max_length=64),
            _f("resco_relationshipname", s, "Relationship Name", max_length=128),
            _f("resco_trackdelete", b, "Track Delete"), _f("resco_trackowner", b, "Track Owner"),
            _f("resco_trackdisassociate", b, "Track Disassociate"),
            *_system(),
        ),
    ))


def sales_org(product: Product | str = Product.DATAVERSE, *, seed: bool = True, **kwargs: Any) -> MemoryOrg:
    """A :class:`MemoryOrg` with :func:`sales_schema`; ``seed`` adds the root business unit, the
    signed-in user (``whoami``) and a default team, as every real organization has them."""
    org = MemoryOrg(product, **kwargs)
    entities, relationships = sales_schema()
    for e in entities:
        org.add_entity(e)
    for r in relationships:
        org.add_relationship(r)
    if seed:
        org.put("businessunit", {"businessunitid": org.business_unit_id, "name": "Root"})
        org.put("systemuser", {
            "systemuserid": org.user_id, "firstname": "Sync", "lastname": "User", "fullname": "Sync User",
            "domainname": "sync@example.com", "businessunitid": LookupValue("businessunit", org.business_unit_id),
        })
        org.put("team", {
            "teamid": DEFAULT_TEAM_ID, "name": "Root", "teamtype": 0,
            "businessunitid": LookupValue("businessunit", org.business_unit_id),
            "administratorid": LookupValue("systemuser", org.user_id),
        })
    return org
