"""Record plumbing shared by download, upload and verify: which fields travel, and a content hash.

A record keeps the same primary key (GUID) in both organizations, so copying is a projection onto
the fields both sides have plus an idempotent upsert. The content hash is what makes resuming and
echo suppression cheap: a record whose hash equals the one stored after the last sync is not
written again.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from crmsync_desktop.sync.connectors.types import EntityMeta, FieldMeta, FieldType, LookupValue, Record

# Managed by each organization itself: never copied, never part of the content hash.
SYSTEM_MANAGED = frozenset(
    {
        "versionnumber",
        "modifiedon",
        "createdon",
        "modifiedby",
        "createdby",
        "modifiedonbehalfby",
        "createdonbehalfby",
        "overriddencreatedon",
        "importsequencenumber",
        "timezoneruleversionnumber",
        "utcconversiontimezonecode",
        "owningbusinessunit",
        "owninguser",
        "owningteam",
        "row_version",
        "rowversion",
    }
)
_NOT_COPIED_TYPES = frozenset({FieldType.OTHER, FieldType.ROWVERSION, FieldType.BINARY})


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """The fields of one entity that travel between the organizations.

    Field names are the server's. The primary key is matched by role, not by name: Dataverse calls
    it ``accountid`` where Resco Cloud calls it ``id``, and the value (the GUID) is the same.
    """

    entity: str
    primary_id: str
    fields: tuple[str, ...]  # includes the primary id
    client_primary_id: str = ""

    @property
    def data_fields(self) -> tuple[str, ...]:
        return tuple(f for f in self.fields if f != self.primary_id)

    @property
    def client_id_name(self) -> str:
        return self.client_primary_id or self.primary_id

    @property
    def client_fields(self) -> tuple[str, ...]:
        """The same fields under the client's names (for reads from the client)."""
        return tuple(self.client_id_name if f == self.primary_id else f for f in self.fields)

    def to_client(self, record: Record) -> Record:
        """A projected (server-named) record as the client organization names its fields."""
        if self.client_id_name == self.primary_id or self.primary_id not in record:
            return record
        out = dict(record)
        out[self.client_id_name] = out.pop(self.primary_id)
        return out

    def from_client(self, record: Mapping[str, object]) -> Record:
        """A client record under the server's field names."""
        if self.client_id_name == self.primary_id or self.client_id_name not in record:
            return dict(record)  # type: ignore[arg-type]
        out: Record = dict(record)  # type: ignore[arg-type]
        out[self.primary_id] = out.pop(self.client_id_name)
        return out


def copyable(field: FieldMeta) -> bool:
    return field.type not in _NOT_COPIED_TYPES and field.logical_name not in SYSTEM_MANAGED


def plan_fields(server: EntityMeta, client: EntityMeta | None, selected: Sequence[str] = ()) -> FieldPlan:
    """Fields present and copyable on both sides (and chosen by the admin when ``selected`` is given)."""
    client_fields = {f.logical_name for f in client.fields} if client is not None else None
    if client_fields is not None:
        client_fields.add(server.primary_id)  # matched by role (see FieldPlan)
    chosen = set(selected)
    names = [server.primary_id]
    for f in server.fields:
        if f.logical_name == server.primary_id or not copyable(f):
            continue
        if client_fields is not None and f.logical_name not in client_fields:
            continue
        if chosen and f.logical_name not in chosen:
            continue
        names.append(f.logical_name)
    client_pid = client.primary_id if client is not None and client.primary_id else server.primary_id
    return FieldPlan(server.logical_name, server.primary_id, tuple(names), client_pid)


def project(record: Mapping[str, object], plan: FieldPlan) -> Record:
    """The record restricted to the plan's fields (missing fields are left out, not nulled)."""
    out: Record = {}
    for name in plan.fields:
        if name in record:
            out[name] = record[name]  # type: ignore[assignment]
    rid = out.get(plan.primary_id)
    if isinstance(rid, str):
        out[plan.primary_id] = rid.lower()
    return out


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def _canonical(value: object) -> object:
    """One spelling per value, so both organizations' JSON for the same data hash alike.

    Products differ in how they write the same value: ``1`` vs ``1.0`` for money, fractional
    seconds and ``Z`` vs ``+00:00`` in timestamps, upper- vs lower-case GUIDs.
    """
    if isinstance(value, LookupValue):
        return ["@lookup", value.entity, value.id.lower()]
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        number = round(float(value), 6)
        return int(number) if number.is_integer() else number
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        if (moment.hour, moment.minute, moment.second) == (0, 0, 0):
            return moment.strftime("%Y-%m-%d")  # a date-only value: one product sends it with a midnight time
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    return value


def content_hash(record: Mapping[str, object], fields: Iterable[str]) -> str:
    """A stable hash of the given fields' values (absent and null are the same)."""
    items = []
    for name in sorted(set(fields)):
        value = record.get(name)
        if value is None:
            continue
        items.append([name, _canonical(value)])
    blob = json.dumps(items, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=16).hexdigest()


def evaluable(record: Mapping[str, object]) -> dict[str, object]:
    """The record as the local filter evaluator reads it: a lookup compares by its record id."""
    return {k: (v.id if isinstance(v, LookupValue) else v) for k, v in record.items()}


def value_digest(value: object) -> str:
    """A short digest of one field value (same canonical spelling as ``content_hash``)."""
    return content_hash({"v": value}, ("v",))[:12]


def record_digests(record: Mapping[str, object], fields: FieldPlan) -> dict[str, str]:
    """Per-field short digests of a record (absent and null alike are left out).

    The download stores them for what it writes to the client, so change capture can tell which
    fields a user changed afterwards (and send only those).
    """
    return {name: value_digest(record[name]) for name in fields.data_fields if record.get(name) is not None}
