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


def _reference_blob(items: list[list[object]]) -> str:
    """The hashed text as first defined: the ``[name, canonical value]`` pairs as compact JSON.

    Stored hashes (``record_state``, ``upload_baseline``) are of exactly this text, so it must never
    change; :func:`_fragment` produces the same characters faster and falls back to this for any
    value it does not know.
    """
    return json.dumps(items, separators=(",", ":"), ensure_ascii=False, default=str)


# What ``json.dumps(..., ensure_ascii=False)`` writes for a string (the C encoder when available).
_json_str = json.encoder.encode_basestring  # type: ignore[attr-defined]
_EXACT_INT = 2**53  # ints up to this survive ``round(float(n), 6)`` unchanged


def _fragment(value: object) -> str:
    """The JSON of ``_canonical(value)``, as :func:`_reference_blob` writes it (``value`` is not None)."""
    kind = type(value)
    if kind is str:
        if value[10:11] == "T" and _ISO_DATETIME.match(value):  # type: ignore[index, arg-type]
            value = _canonical(value)
        return _json_str(value)  # type: ignore[no-any-return]
    if kind is int:
        if -_EXACT_INT <= value <= _EXACT_INT:  # type: ignore[operator]
            return int.__repr__(value)  # type: ignore[arg-type]
    elif kind is bool:
        return "true" if value else "false"
    elif kind is float:
        if value.is_integer():  # type: ignore[attr-defined]  # finite and whole: round() keeps it as is
            return int.__repr__(int(value))  # type: ignore[call-overload]
        number = round(value, 6)  # type: ignore[call-overload]
        if number.is_integer():
            return int.__repr__(int(number))
        if number - number == 0.0:  # finite (NaN and infinities take the general path)
            return float.__repr__(number)
    elif kind is LookupValue:
        entity, rid = value.entity, value.id  # type: ignore[attr-defined]
        if type(entity) is str and type(rid) is str:
            return f'["@lookup",{_json_str(entity)},{_json_str(rid.lower())}]'
    return _reference_blob(_canonical(value))  # type: ignore[arg-type]


_NAMES: dict[object, tuple[tuple[str, str], ...]] = {}


def _hashed_names(fields: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The distinct field names in hash order, each with its ``["name",`` prefix (cached per tuple)."""
    cacheable = type(fields) is tuple
    if cacheable:
        found = _NAMES.get(fields)
        if found is not None:
            return found
    names = tuple((name, f"[{_json_str(name)},") for name in sorted(set(fields)))
    if cacheable:
        if len(_NAMES) > 512:
            _NAMES.clear()
        _NAMES[fields] = names
    return names


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def content_hash(record: Mapping[str, object], fields: Iterable[str]) -> str:
    """A stable hash of the given fields' values (absent and null are the same).

    The blake2b-128 of ``[["name",value],...]`` (compact JSON, names sorted, canonical values; see
    :func:`_reference_blob`), built here without a JSON encoder per record.
    """
    get = record.get
    parts = []
    for name, prefix in _hashed_names(fields):
        value = get(name)
        if value is not None:
            parts.append(f"{prefix}{_fragment(value)}]")
    return _digest(f"[{','.join(parts)}]")


def evaluable(record: Mapping[str, object]) -> dict[str, object]:
    """The record as the local filter evaluator reads it: a lookup compares by its record id."""
    return {k: (v.id if isinstance(v, LookupValue) else v) for k, v in record.items()}


def value_digest(value: object) -> str:
    """A short digest of one field value (same canonical spelling as ``content_hash``).

    ``content_hash({"v": value}, ("v",))[:12]``.
    """
    if value is None:
        return _digest("[]")[:12]
    return _value_digest(value)


# Recent value digests: picklists, flags, owners, cities repeat across records (a hit costs a tenth
# of a digest). Strings are keyed by themselves, numbers with their type (1, 1.0 and True are equal
# dict keys but have different digests), lookups by their two strings.
_DIGESTS: dict[object, str] = {}
_DIGESTS_MAX = 8192
_NUMBER_KINDS = frozenset({int, float, bool})


def _value_digest(value: object) -> str:
    kind = type(value)
    if kind is str:
        key: object = value
    elif kind in _NUMBER_KINDS:
        key = (kind, value)
    elif kind is LookupValue and type(value.entity) is str and type(value.id) is str:  # type: ignore[attr-defined]
        key = (kind, value.entity, value.id)  # type: ignore[attr-defined]
    else:
        return _digest(f'[["v",{_fragment(value)}]]')[:12]
    found = _DIGESTS.get(key)
    if found is None:
        found = _digest(f'[["v",{_fragment(value)}]]')[:12]
        if len(_DIGESTS) >= _DIGESTS_MAX:
            _DIGESTS.clear()
        _DIGESTS[key] = found
    return found


def record_digests(record: Mapping[str, object], fields: FieldPlan) -> dict[str, str]:
    """Per-field short digests of a record (absent and null alike are left out).

    The download stores them for what it writes to the client, so change capture can tell which
    fields a user changed afterwards (and send only those).
    """
    pid = fields.primary_id
    get = record.get
    out: dict[str, str] = {}
    for name in fields.fields:
        if name != pid:
            value = get(name)
            if value is not None:
                out[name] = _value_digest(value)
    return out
