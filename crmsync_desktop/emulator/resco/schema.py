"""Entity and field definitions of an emulated Resco Cloud organization, and value conversion.

Resco Cloud entities are created from Dataverse metadata by "Update Server" (resco.md §1.3), so
the field types are Dataverse's. One place maps each type to its SQLite column, its OData
``Edm`` type, its REST data-service type name (resco.md §7.1 list) and its wire format, so the
OData and REST faces cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

__all__ = ["FIELD_TYPES", "SYSTEM_FIELDS", "EntityDef", "FieldDef", "SchemaError"]


class SchemaError(ValueError):
    """A metadata request or a value that does not fit the schema (HTTP 400)."""


@dataclass(frozen=True)
class _TypeInfo:
    sa_type: Any
    edm: str
    rest: str  # Resco data-service type name


FIELD_TYPES: dict[str, _TypeInfo] = {
    "string": _TypeInfo(sa.Text, "Edm.String", "String"),
    "memo": _TypeInfo(sa.Text, "Edm.String", "String"),
    "int": _TypeInfo(sa.Integer, "Edm.Int32", "Integer"),
    "bigint": _TypeInfo(sa.BigInteger, "Edm.Int64", "Integer"),
    "decimal": _TypeInfo(sa.Float, "Edm.Decimal", "Decimal"),
    "double": _TypeInfo(sa.Float, "Edm.Double", "Float"),
    "money": _TypeInfo(sa.Float, "Edm.Decimal", "Money"),
    "bool": _TypeInfo(sa.Boolean, "Edm.Boolean", "Boolean"),
    "datetime": _TypeInfo(sa.DateTime, "Edm.DateTimeOffset", "DateTime"),
    "picklist": _TypeInfo(sa.Integer, "Edm.Int32", "Picklist"),
    "lookup": _TypeInfo(sa.String(36), "Edm.Guid", "Lookup"),
    "uniqueidentifier": _TypeInfo(sa.String(36), "Edm.Guid", "UniqueIdentifier"),
    "rowversion": _TypeInfo(sa.BigInteger, "Edm.Int64", "RowVersion"),
}

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TARGET_SUFFIX = "__target"  # companion column holding a lookup's target entity


@dataclass
class FieldDef:
    name: str
    type: str
    display_name: str = ""
    max_length: int | None = None
    required: bool = False
    options: list[dict[str, Any]] = field(default_factory=list)  # picklist: [{"value": 1, "label": "..."}]
    targets: list[str] = field(default_factory=list)  # lookup: target entity names
    system: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or TARGET_SUFFIX in self.name:
            raise SchemaError(f"Invalid field name '{self.name}': use lower-case letters, digits and '_'.")
        if self.type not in FIELD_TYPES:
            raise SchemaError(f"Unknown field type '{self.type}'. Known: {', '.join(sorted(FIELD_TYPES))}.")
        if self.type == "lookup" and not self.targets:
            raise SchemaError(f"Lookup field '{self.name}' needs at least one target entity.")
        if self.type == "picklist":
            try:
                self.options = [
                    {"value": int(o["value"]), "label": str(o.get("label", o["value"]))} for o in self.options
                ]
            except (KeyError, TypeError, ValueError) as exc:
                raise SchemaError(
                    f"Picklist '{self.name}' options need integer 'value' and 'label'."
                ) from exc
        self.display_name = self.display_name or self.name

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldDef:
        if not isinstance(data, dict) or "name" not in data or "type" not in data:
            raise SchemaError("A field needs 'name' and 'type'.")
        return cls(
            name=str(data["name"]).lower(),
            type=str(data["type"]).lower(),
            display_name=str(data.get("display_name") or ""),
            max_length=data.get("max_length"),
            required=bool(data.get("required", False)),
            options=list(data.get("options") or []),
            targets=[str(t).lower() for t in data.get("targets") or []],
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.type != "picklist":
            out.pop("options")
        if self.type != "lookup":
            out.pop("targets")
        return out

    def columns(self) -> list[sa.Column[Any]]:
        cols: list[sa.Column[Any]] = [sa.Column(self.name, FIELD_TYPES[self.type].sa_type)]
        if self.type == "lookup":
            cols.append(sa.Column(self.name + TARGET_SUFFIX, sa.String(64)))
        return cols

    # -- values ---------------------------------------------------------------------------------

    def to_db(self, value: Any, target: str | None = None) -> Any:
        """A JSON/XML-text value to the column value; raise ``SchemaError`` when it does not fit."""
        if value is None:
            return None
        try:
            return self._to_db(value)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise SchemaError(f"Invalid value for '{self.name}' ({self.type}): {value!r}") from exc

    def _to_db(self, value: Any) -> Any:
        kind = self.type
        if kind in ("string", "memo"):
            text = str(value)
            if self.max_length and len(text) > self.max_length:
                raise ValueError("too long")
            return text
        if kind in ("int", "bigint", "picklist", "rowversion"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("not an integer")
            number = int(value)
            if kind == "picklist" and self.options and number not in {o["value"] for o in self.options}:
                raise ValueError("not an option")
            if kind == "int" and not -(2**31) <= number < 2**31:
                raise ValueError("out of range")
            return number
        if kind in ("decimal", "double", "money"):
            if isinstance(value, bool):
                raise ValueError("not a number")
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1"):
                return True
            if text in ("false", "0"):
                return False
            raise ValueError("not a boolean")
        if kind == "datetime":
            return parse_datetime(value)
        if kind in ("lookup", "uniqueidentifier"):
            return str(uuid.UUID(str(value)))
        raise ValueError(kind)

    def to_wire(self, value: Any) -> Any:
        """Column value to JSON (OData); XML text uses ``to_text``."""
        if value is None:
            return None
        if self.type == "datetime":
            return format_datetime(value)
        if self.type in ("decimal", "money", "double"):
            return float(value)
        return value

    def to_text(self, value: Any) -> str:
        if self.type == "datetime":
            return format_datetime(value)
        if self.type == "bool":
            return "true" if value else "false"
        if isinstance(value, float):
            return repr(value)
        return str(value)


def parse_datetime(value: Any) -> dt.datetime:
    """ISO 8601 / RFC 3339 to naive UTC (the storage convention; odata-query compares naive UTC)."""
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value).strip()
        parsed = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed.replace(microsecond=0)


def format_datetime(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _system_fields() -> list[FieldDef]:
    return [
        FieldDef("id", "uniqueidentifier", "Id", system=True),
        FieldDef("createdon", "datetime", "Created On", system=True),
        FieldDef("modifiedon", "datetime", "Modified On", system=True),
        FieldDef("createdby", "lookup", "Created By", targets=["systemuser"], system=True),
        FieldDef("modifiedby", "lookup", "Modified By", targets=["systemuser"], system=True),
        FieldDef("ownerid", "lookup", "Owner", targets=["systemuser", "team"], system=True),
        FieldDef("versionnumber", "rowversion", "Row Version", system=True),
    ]


SYSTEM_FIELDS = frozenset(f.name for f in _system_fields())


@dataclass
class EntityDef:
    """An entity (table); ``fields`` includes the system fields every Resco entity has."""

    name: str
    display_name: str = ""
    primary_name: str | None = None
    fields: dict[str, FieldDef] = field(default_factory=dict)
    system: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name.startswith("_"):
            raise SchemaError(f"Invalid entity name '{self.name}'.")
        self.display_name = self.display_name or self.name
        for f in _system_fields():
            self.fields.setdefault(f.name, f)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EntityDef:
        if not isinstance(data, dict) or "name" not in data:
            raise SchemaError("An entity needs a 'name'.")
        entity = cls(
            name=str(data["name"]).lower(),
            display_name=str(data.get("display_name") or ""),
            primary_name=(str(data["primary_name"]).lower() if data.get("primary_name") else None),
        )
        for raw in data.get("fields") or []:
            f = FieldDef.from_json(raw)
            if f.name in SYSTEM_FIELDS:
                raise SchemaError(f"'{f.name}' is a system field.")
            entity.fields[f.name] = f
        if entity.primary_name and entity.primary_name not in entity.fields:
            entity.fields[entity.primary_name] = FieldDef(
                entity.primary_name, "string", "Name", max_length=None
            )
        return entity

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "primary_name": self.primary_name,
            "system": self.system,
            "fields": [f.to_json() for f in self.fields.values()],
        }

    def table(self, metadata: sa.MetaData) -> sa.Table:
        columns: list[sa.Column[Any]] = []
        for f in self.fields.values():
            columns.extend(f.columns())
        for column in columns:
            if column.name == "id":
                column.primary_key = True
        return sa.Table(
            self.name, metadata, *columns, sa.Index(f"ix_{self.name}_versionnumber", "versionnumber")
        )

    def field(self, name: str) -> FieldDef:
        try:
            return self.fields[name]
        except KeyError:
            raise SchemaError(f"The entity '{self.name}' has no field '{name}'.") from None
