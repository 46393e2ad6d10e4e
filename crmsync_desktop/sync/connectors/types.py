"""Plain values that cross the connector seam: metadata, records, pages, change tokens, write results.

Nothing here knows a wire format. A record is a ``dict`` of attribute logical name to a plain JSON
value (``str``, ``int``, ``float``, ``bool``, ``None``) or a :class:`LookupValue`, so the engine can
copy a record from Dataverse to Resco Cloud without knowing either product's JSON.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class LookupValue:
    """A reference to another record: the target entity's logical name and the record id (lowercase GUID)."""

    entity: str
    id: str


JsonScalar: TypeAlias = str | int | float | bool | None
FieldValue: TypeAlias = JsonScalar | LookupValue
Record: TypeAlias = dict[str, FieldValue]
"""Attribute logical name -> value. The primary id attribute is always present on records read or written."""


class Product(enum.StrEnum):
    DATAVERSE = "dataverse"
    RESCO = "resco"


class FieldType(enum.StrEnum):
    """The common denominator of Dataverse AttributeTypeCode and Resco Cloud data types."""

    UNIQUEIDENTIFIER = "uniqueidentifier"
    STRING = "string"
    MEMO = "memo"
    INTEGER = "integer"
    BIGINT = "bigint"
    DECIMAL = "decimal"
    DOUBLE = "double"
    MONEY = "money"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    PICKLIST = "picklist"
    MULTI_PICKLIST = "multipicklist"
    STATE = "state"
    STATUS = "status"
    LOOKUP = "lookup"  # single or multi-target (Customer, Regarding)
    OWNER = "owner"
    ROWVERSION = "rowversion"
    BINARY = "binary"
    OTHER = "other"  # anything the engine does not copy (PartyList, calendar rules, virtual, ...)

    @property
    def is_lookup(self) -> bool:
        return self in (FieldType.LOOKUP, FieldType.OWNER)


@dataclass(frozen=True, slots=True)
class OptionMeta:
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class FieldMeta:
    """One attribute (column). ``targets`` are entity logical names for lookups; ``options`` for choices."""

    logical_name: str
    type: FieldType
    label: str = ""
    schema_name: str = ""
    targets: tuple[str, ...] = ()
    options: tuple[OptionMeta, ...] = ()
    max_length: int | None = None
    precision: int | None = None
    required: bool = False
    is_primary_id: bool = False
    is_primary_name: bool = False
    valid_for_create: bool = True
    valid_for_update: bool = True
    is_custom: bool = False


class Ownership(enum.StrEnum):
    USER = "user"  # user or team owned: has ownerid
    ORGANIZATION = "organization"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class EntityMeta:
    """One entity (table). ``fields`` is empty in listings and filled by ``get_entity``."""

    logical_name: str
    label: str = ""
    collection_label: str = ""
    schema_name: str = ""
    entity_set_name: str = ""
    primary_id: str = ""
    primary_name: str = ""
    ownership: Ownership = Ownership.USER
    change_tracking: bool = False
    is_intersect: bool = False
    is_custom: bool = False
    fields: tuple[FieldMeta, ...] = ()

    def field(self, logical_name: str) -> FieldMeta | None:
        for f in self.fields:
            if f.logical_name == logical_name:
                return f
        return None


class RelationshipKind(enum.StrEnum):
    ONE_TO_MANY = "1:N"
    MANY_TO_MANY = "N:N"


@dataclass(frozen=True, slots=True)
class RelationshipMeta:
    """A 1:N relationship (a lookup on the referencing entity) or an N:N one (an intersect entity)."""

    schema_name: str
    kind: RelationshipKind
    # 1:N
    referenced_entity: str = ""
    referenced_attribute: str = ""
    referencing_entity: str = ""
    referencing_attribute: str = ""
    referencing_navigation: str = ""  # the case-sensitive name used for "<nav>@odata.bind"
    referenced_navigation: str = ""
    # N:N
    entity1: str = ""
    entity2: str = ""
    intersect_entity: str = ""
    entity1_intersect_attribute: str = ""
    entity2_intersect_attribute: str = ""
    entity1_navigation: str = ""
    entity2_navigation: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the connector is signed in as."""

    user_id: str
    business_unit_id: str
    organization_id: str
    organization_name: str = ""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of records. ``etags`` maps record id to the opaque row version the server sent, if any."""

    records: tuple[Record, ...]
    etags: Mapping[str, str] = field(default_factory=dict)


class TokenKind(enum.StrEnum):
    DELTA_LINK = "delta"  # Dataverse change tracking
    ROW_VERSION = "rowversion"  # a row-version watermark (Resco Cloud; Dataverse tables without change tracking)


@dataclass(frozen=True, slots=True)
class ChangeToken:
    """An opaque "changes since" position. Persist it exactly as given; never build one by hand."""

    kind: TokenKind
    value: str


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of changes.

    Apply ``upserts`` and ``deleted_ids``, commit, and only then persist ``token`` when it is not ``None``.
    A token is handed out only where resuming from it after this page is safe, so a crash between
    two pages re-reads at most the pages since the last persisted token.
    """

    upserts: tuple[Record, ...]
    deleted_ids: tuple[str, ...] = ()
    token: ChangeToken | None = None
    etags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome of writing one record (or one association)."""

    id: str
    ok: bool
    error: str | None = None
    retryable: bool = False
    status: int | None = None
    conflict: bool = False  # 412: the record changed since the etag the caller sent

    @classmethod
    def success(cls, record_id: str) -> RecordResult:
        return cls(id=record_id, ok=True)


class BulkMessage(enum.StrEnum):
    CREATE_MULTIPLE = "CreateMultiple"
    UPDATE_MULTIPLE = "UpdateMultiple"
    UPSERT_MULTIPLE = "UpsertMultiple"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the connected organization supports, as far as the connector has learnt it."""

    product: Product
    max_page_size: int
    change_tracking: Mapping[str, bool] = field(default_factory=dict)  # entity -> tombstones available
    bulk_messages: Mapping[str, frozenset[BulkMessage]] = field(default_factory=dict)
    can_create_schema: bool = True
    many_to_many: bool = True  # N:N relationships and associate/disassociate are available


@dataclass(frozen=True, slots=True)
class ThrottleState:
    """For the status bar: how hard the organization is pushing back right now."""

    throttled_until: datetime | None = None
    remaining_requests: int | None = None
    remaining_execution_ms: int | None = None
    concurrency_limit: int = 1
    concurrency_ceiling: int = 1
    in_flight: int = 0
    throttle_events: int = 0
