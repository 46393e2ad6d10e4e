"""Wire <-> storage conversion of column values (dates, GUIDs, numbers, choices) and their formatted values."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from . import errors
from .metadata import Attr

UTC = dt.timezone.utc
EDM = {"String": "Edm.String", "Memo": "Edm.String", "EntityName": "Edm.String", "Integer": "Edm.Int32",
       "Picklist": "Edm.Int32", "State": "Edm.Int32", "Status": "Edm.Int32", "BigInt": "Edm.Int64",
       "Decimal": "Edm.Decimal", "Money": "Edm.Decimal", "Double": "Edm.Double", "Boolean": "Edm.Boolean",
       "DateTime": "Edm.DateTimeOffset", "Uniqueidentifier": "Edm.Guid", "Lookup": "Edm.Guid",
       "Owner": "Edm.Guid", "Customer": "Edm.Guid"}
_GUID_RE = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")


def fmt_dt(value: dt.datetime) -> str:
    """Dataverse date-time on the wire: ISO 8601 UTC with Z, second precision."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_dt(text: str) -> dt.datetime:
    t = text.strip()
    if t.endswith("Z") or t.endswith("z"):
        t = t[:-1] + "+00:00"
    value = dt.datetime.fromisoformat(t)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def norm_guid(value: Any) -> str | None:
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        return None
    m = _GUID_RE.match(value.strip())
    return m.group(1).lower() if m else None


def payload_error(entity: str, literal: Any, attr: Attr) -> errors.DataverseError:
    edm = EDM.get(attr.atype, "Edm.String")
    if attr.atype == "DateTime" and attr.meta.get("Format") == "DateOnly":
        edm = "Edm.Date"
    return errors.DataverseError(
        400, errors.PAYLOAD_ERROR,
        f"Error identified in Payload provided by the user for Entity :'{entity}', For more information on "
        "this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ----> "
        f"InnerException : Microsoft.OData.ODataException: Cannot convert the literal '{literal}' to the "
        f"expected type '{edm}'.")


def to_storage(attr: Attr, value: Any) -> Any:
    """Validate one JSON value for ``attr`` and return what is stored in SQLite."""
    if value is None:
        return None
    t = attr.atype
    ent = attr.entity
    if t in ("String", "Memo", "EntityName"):
        if not isinstance(value, str):
            raise payload_error(ent, value, attr)
        max_length = attr.meta.get("MaxLength")
        if max_length and len(value) > int(max_length):
            raise errors.DataverseError(
                400, errors.VALIDATION,
                f"A validation error occurred. The length of the '{attr.logical}' attribute of the '{ent}' entity "
                f"exceeded the maximum allowed length of '{max_length}'.")
        return value
    if t in ("Integer", "BigInt", "Picklist", "State", "Status"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise payload_error(ent, value, attr)
        if t in ("Picklist", "State", "Status"):
            if value not in attr.options:
                accepted = ",".join(str(v) for v in sorted(attr.options))
                raise errors.DataverseError(
                    400, errors.PICKLIST_OUT_OF_RANGE,
                    f"A validation error occurred. The value {value} of '{attr.logical}' on record of type "
                    f"'{ent}' is outside the valid range. Accepted Values: {accepted}")
        elif t == "Integer":
            lo, hi = attr.meta.get("MinValue"), attr.meta.get("MaxValue")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise errors.DataverseError(
                    400, errors.VALIDATION,
                    f"A validation error occurred. The value of '{attr.logical}' on record of type '{ent}' is "
                    f"outside the valid range ({lo} to {hi}).")
        return value
    if t in ("Decimal", "Double", "Money"):
        if isinstance(value, bool):
            raise payload_error(ent, value, attr)
        if isinstance(value, str):  # IEEE754Compatible clients send decimals as strings
            try:
                value = float(value)
            except ValueError:
                raise payload_error(ent, value, attr) from None
        if not isinstance(value, (int, float)):
            raise payload_error(ent, value, attr)
        return float(value)
    if t == "Boolean":
        if not isinstance(value, bool):
            raise payload_error(ent, value, attr)
        return 1 if value else 0
    if t == "DateTime":
        if not isinstance(value, str):
            raise payload_error(ent, value, attr)
        try:
            if attr.meta.get("Format") == "DateOnly":
                return dt.date.fromisoformat(value[:10]).isoformat()
            return fmt_dt(parse_dt(value))
        except ValueError:
            raise payload_error(ent, value, attr) from None
    if t in ("Uniqueidentifier", "Lookup", "Owner", "Customer"):
        g = norm_guid(value)
        if g is None:
            raise payload_error(ent, value, attr)
        return g
    return value


def to_wire(atype: str, value: Any) -> Any:
    if value is None:
        return None
    if atype == "Boolean":
        return bool(value)
    return value


def formatted(attr: Attr, value: Any) -> str | None:
    """``OData.Community.Display.V1.FormattedValue`` text (guess: en-US formats, UTC times, "$" currency)."""
    if value is None:
        return None
    t = attr.atype
    if t in ("Picklist", "State", "Status", "Boolean"):
        return attr.options.get(int(value))
    if t == "Money":
        return f"${value:,.2f}" if value >= 0 else f"-${-value:,.2f}"
    if t in ("Decimal", "Double"):
        precision = int(attr.meta.get("Precision") or 2)
        return f"{value:,.{precision}f}"
    if t in ("Integer", "BigInt"):
        return f"{value:,}"
    if t == "DateTime":
        if len(value) == 10:
            d = dt.date.fromisoformat(value)
            return f"{d.month}/{d.day}/{d.year}"
        v = parse_dt(value)
        hour = v.hour % 12 or 12
        return f"{v.month}/{v.day}/{v.year} {hour}:{v.minute:02d} {'AM' if v.hour < 12 else 'PM'}"
    return None
