"""Column types that keep SQLite's loose typing honest: UTC timestamps and string enums.

SQLite stores ``DateTime`` as naive text and silently drops any tzinfo (stack-recipes §8 pitfall),
so :class:`UtcDateTime` converts every aware value to UTC before binding and hands back aware UTC
datetimes; a naive value is taken to be UTC already. :class:`EnumText` stores a ``StrEnum`` by its
value in a plain ``VARCHAR``, which keeps migrations free of application enums and lets a newer
app add members without a schema change.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=enum.StrEnum)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (microseconds kept: ordering matters)."""
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive value is assumed to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC text, returned as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return to_utc(value).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class EnumText(TypeDecorator[E], Generic[E]):
    """A ``StrEnum`` stored by value in a ``VARCHAR(length)``."""

    impl = String
    cache_ok = True

    def __init__(self, enum_cls: type[E], length: int = 32) -> None:
        super().__init__(length)
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_cls(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        return self.enum_cls(value)
