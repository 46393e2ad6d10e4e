"""The FetchXML operator table: arity, the column types each operator applies to, summary wording.

The names and families are those of the Dataverse Web API digest §4.3. ``local`` marks the operators
``evaluate`` can decide from a record alone; the rest need the server (teams, hierarchy, fiscal
calendar, the user's week start).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class AttributeType(enum.StrEnum):
    """A column type, as Dataverse names it (``AttributeTypeCode``, lower-cased)."""

    STRING = "string"
    MEMO = "memo"
    ENTITY_NAME = "entityname"
    INTEGER = "integer"
    BIGINT = "bigint"
    DECIMAL = "decimal"
    DOUBLE = "double"
    MONEY = "money"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    LOOKUP = "lookup"
    CUSTOMER = "customer"
    OWNER = "owner"
    UNIQUEIDENTIFIER = "uniqueidentifier"
    PICKLIST = "picklist"
    STATE = "state"
    STATUS = "status"
    MULTISELECT_PICKLIST = "multiselectpicklist"
    PARTYLIST = "partylist"
    VIRTUAL = "virtual"
    IMAGE = "image"
    FILE = "file"

    @classmethod
    def coerce(cls, value: str) -> AttributeType:
        """``"DateTime"``, ``"datetime"`` or ``AttributeType.DATETIME`` → ``AttributeType.DATETIME``."""
        return cls(value.lower())


class TypeFamily(enum.StrEnum):
    """Column types that accept the same operators and the same value syntax."""

    STRING = "text"
    WHOLE_NUMBER = "whole number"
    NUMBER = "number"
    DATETIME = "date and time"
    ID = "lookup or id"
    CHOICE = "choice"
    BOOLEAN = "yes/no"
    MULTICHOICE = "choices"
    UNFILTERABLE = "unfilterable"


FAMILY_OF_TYPE: Mapping[AttributeType, TypeFamily] = MappingProxyType(
    {
        AttributeType.STRING: TypeFamily.STRING,
        AttributeType.MEMO: TypeFamily.STRING,
        AttributeType.ENTITY_NAME: TypeFamily.STRING,
        AttributeType.INTEGER: TypeFamily.WHOLE_NUMBER,
        AttributeType.BIGINT: TypeFamily.WHOLE_NUMBER,
        AttributeType.DECIMAL: TypeFamily.NUMBER,
        AttributeType.DOUBLE: TypeFamily.NUMBER,
        AttributeType.MONEY: TypeFamily.NUMBER,
        AttributeType.BOOLEAN: TypeFamily.BOOLEAN,
        AttributeType.DATETIME: TypeFamily.DATETIME,
        AttributeType.LOOKUP: TypeFamily.ID,
        AttributeType.CUSTOMER: TypeFamily.ID,
        AttributeType.OWNER: TypeFamily.ID,
        AttributeType.UNIQUEIDENTIFIER: TypeFamily.ID,
        AttributeType.PICKLIST: TypeFamily.CHOICE,
        AttributeType.STATE: TypeFamily.CHOICE,
        AttributeType.STATUS: TypeFamily.CHOICE,
        AttributeType.MULTISELECT_PICKLIST: TypeFamily.MULTICHOICE,
        AttributeType.PARTYLIST: TypeFamily.UNFILTERABLE,
        AttributeType.VIRTUAL: TypeFamily.UNFILTERABLE,
        AttributeType.IMAGE: TypeFamily.UNFILTERABLE,
        AttributeType.FILE: TypeFamily.UNFILTERABLE,
    }
)


class Arity(enum.Enum):
    """How many values an operator takes."""

    NONE = "no value"
    ONE = "exactly one value"
    TWO = "exactly two values"
    MANY = "one or more values"

    def accepts(self, count: int) -> bool:
        if self is Arity.MANY:
            return count >= 1
        return count == {Arity.NONE: 0, Arity.ONE: 1, Arity.TWO: 2}[self]


class ValueKind(enum.Enum):
    """What the operator's values must look like, independent of the column type."""

    TYPED = "typed"  # like the column: checked by validate_filter against metadata
    COUNT = "count"  # a whole number >= 1: last-x-days 30
    INTEGER = "integer"  # a whole number: fiscal year / period
    DATE = "date"  # an ISO-8601 date or date-time: on 2024-05-01
    TEXT = "text"  # any text (string operators)


@dataclass(frozen=True, slots=True)
class OperatorSpec:
    name: str
    arity: Arity
    families: frozenset[TypeFamily]
    value_kind: ValueKind
    phrase: str  # summary wording; {0}, {1} are values, {all} all values comma separated
    local: bool  # evaluate() can decide it from the record and the context alone


_F = TypeFamily
_SCALAR = frozenset({_F.STRING, _F.WHOLE_NUMBER, _F.NUMBER, _F.DATETIME, _F.ID, _F.CHOICE, _F.BOOLEAN})
_EQUATABLE = _SCALAR | {_F.MULTICHOICE}
_ORDERED = frozenset({_F.STRING, _F.WHOLE_NUMBER, _F.NUMBER, _F.DATETIME})
_RANGED = frozenset({_F.WHOLE_NUMBER, _F.NUMBER, _F.DATETIME})
_LISTED = frozenset({_F.STRING, _F.WHOLE_NUMBER, _F.NUMBER, _F.ID, _F.CHOICE, _F.MULTICHOICE})
_TEXT = frozenset({_F.STRING})
_IDS = frozenset({_F.ID})
_DATES = frozenset({_F.DATETIME})
_LANGUAGE = frozenset({_F.WHOLE_NUMBER, _F.CHOICE})


def _op(
    name: str, arity: Arity, families: frozenset[TypeFamily], kind: ValueKind, phrase: str, local: bool
) -> OperatorSpec:
    return OperatorSpec(name, arity, families, kind, phrase, local)


_N, _1, _2, _M = Arity.NONE, Arity.ONE, Arity.TWO, Arity.MANY
_T, _C, _I, _D, _X = ValueKind.TYPED, ValueKind.COUNT, ValueKind.INTEGER, ValueKind.DATE, ValueKind.TEXT

_SPECS = [
    # Comparison
    _op("eq", _1, _EQUATABLE, _T, "= {0}", True),
    _op("ne", _1, _EQUATABLE, _T, "!= {0}", True),
    _op("neq", _1, _EQUATABLE, _T, "!= {0}", True),
    _op("gt", _1, _ORDERED, _T, "> {0}", True),
    _op("ge", _1, _ORDERED, _T, ">= {0}", True),
    _op("lt", _1, _ORDERED, _T, "< {0}", True),
    _op("le", _1, _ORDERED, _T, "<= {0}", True),
    _op("between", _2, _RANGED, _T, "is between {0} and {1}", True),
    _op("not-between", _2, _RANGED, _T, "is not between {0} and {1}", True),
    _op("in", _M, _LISTED, _T, "is one of {all}", True),
    _op("not-in", _M, _LISTED, _T, "is not one of {all}", True),
    _op("null", _N, _EQUATABLE, _T, "is empty", True),
    _op("not-null", _N, _EQUATABLE, _T, "has a value", True),
    # String
    _op("like", _1, _TEXT, _X, "is like '{0}'", True),
    _op("not-like", _1, _TEXT, _X, "is not like '{0}'", True),
    _op("begins-with", _1, _TEXT, _X, "begins with '{0}'", True),
    _op("not-begin-with", _1, _TEXT, _X, "does not begin with '{0}'", True),
    _op("ends-with", _1, _TEXT, _X, "ends with '{0}'", True),
    _op("not-end-with", _1, _TEXT, _X, "does not end with '{0}'", True),
    # Choices (multi-select)
    _op("contain-values", _M, frozenset({_F.MULTICHOICE}), _I, "contains {all}", True),
    _op("not-contain-values", _M, frozenset({_F.MULTICHOICE}), _I, "does not contain {all}", True),
    # User / business unit context
    _op("eq-userid", _N, _IDS, _T, "is current user", True),
    _op("ne-userid", _N, _IDS, _T, "is not current user", True),
    _op("eq-businessid", _N, _IDS, _T, "is current business unit", True),
    _op("ne-businessid", _N, _IDS, _T, "is not current business unit", True),
    _op("eq-userteams", _N, _IDS, _T, "is a team of current user", False),
    _op("eq-useroruserteams", _N, _IDS, _T, "is current user or their teams", False),
    _op("eq-useroruserhierarchy", _N, _IDS, _T, "is current user or their reports", False),
    _op("eq-useroruserhierarchyandteams", _N, _IDS, _T, "is current user, their reports or teams", False),
    _op("eq-userlanguage", _N, _LANGUAGE, _T, "is current user's language", False),
    # Hierarchy
    _op("above", _1, _IDS, _T, "is above {0}", False),
    _op("eq-or-above", _1, _IDS, _T, "is {0} or above", False),
    _op("under", _1, _IDS, _T, "is under {0}", False),
    _op("eq-or-under", _1, _IDS, _T, "is {0} or under", False),
    _op("not-under", _1, _IDS, _T, "is not under {0}", False),
    # Dates, relative to now
    _op("today", _N, _DATES, _T, "is today", True),
    _op("yesterday", _N, _DATES, _T, "is yesterday", True),
    _op("tomorrow", _N, _DATES, _T, "is tomorrow", True),
    _op("this-week", _N, _DATES, _T, "is this week", False),
    _op("last-week", _N, _DATES, _T, "is last week", False),
    _op("next-week", _N, _DATES, _T, "is next week", False),
    _op("this-month", _N, _DATES, _T, "is this month", True),
    _op("last-month", _N, _DATES, _T, "is last month", True),
    _op("next-month", _N, _DATES, _T, "is next month", True),
    _op("this-year", _N, _DATES, _T, "is this year", True),
    _op("last-year", _N, _DATES, _T, "is last year", True),
    _op("next-year", _N, _DATES, _T, "is next year", True),
    _op("last-seven-days", _N, _DATES, _T, "is in the last 7 days", True),
    _op("next-seven-days", _N, _DATES, _T, "is in the next 7 days", True),
    _op("last-x-hours", _1, _DATES, _C, "is in the last {0} hours", True),
    _op("next-x-hours", _1, _DATES, _C, "is in the next {0} hours", True),
    _op("last-x-days", _1, _DATES, _C, "is in the last {0} days", True),
    _op("next-x-days", _1, _DATES, _C, "is in the next {0} days", True),
    _op("last-x-weeks", _1, _DATES, _C, "is in the last {0} weeks", True),
    _op("next-x-weeks", _1, _DATES, _C, "is in the next {0} weeks", True),
    _op("last-x-months", _1, _DATES, _C, "is in the last {0} months", False),
    _op("next-x-months", _1, _DATES, _C, "is in the next {0} months", False),
    _op("last-x-years", _1, _DATES, _C, "is in the last {0} years", False),
    _op("next-x-years", _1, _DATES, _C, "is in the next {0} years", False),
    _op("olderthan-x-minutes", _1, _DATES, _C, "is older than {0} minutes", True),
    _op("olderthan-x-hours", _1, _DATES, _C, "is older than {0} hours", True),
    _op("olderthan-x-days", _1, _DATES, _C, "is older than {0} days", True),
    _op("olderthan-x-weeks", _1, _DATES, _C, "is older than {0} weeks", True),
    _op("olderthan-x-months", _1, _DATES, _C, "is older than {0} months", False),
    _op("olderthan-x-years", _1, _DATES, _C, "is older than {0} years", False),
    _op("on", _1, _DATES, _D, "is on {0}", True),
    _op("on-or-before", _1, _DATES, _D, "is on or before {0}", True),
    _op("on-or-after", _1, _DATES, _D, "is on or after {0}", True),
    # Fiscal calendar (organization settings: never local)
    _op("this-fiscal-year", _N, _DATES, _T, "is this fiscal year", False),
    _op("this-fiscal-period", _N, _DATES, _T, "is this fiscal period", False),
    _op("last-fiscal-year", _N, _DATES, _T, "is last fiscal year", False),
    _op("last-fiscal-period", _N, _DATES, _T, "is last fiscal period", False),
    _op("next-fiscal-year", _N, _DATES, _T, "is next fiscal year", False),
    _op("next-fiscal-period", _N, _DATES, _T, "is next fiscal period", False),
    _op("last-x-fiscal-years", _1, _DATES, _C, "is in the last {0} fiscal years", False),
    _op("last-x-fiscal-periods", _1, _DATES, _C, "is in the last {0} fiscal periods", False),
    _op("next-x-fiscal-years", _1, _DATES, _C, "is in the next {0} fiscal years", False),
    _op("next-x-fiscal-periods", _1, _DATES, _C, "is in the next {0} fiscal periods", False),
    _op("in-fiscal-year", _1, _DATES, _I, "is in fiscal year {0}", False),
    _op("in-fiscal-period", _1, _DATES, _I, "is in fiscal period {0}", False),
    _op("in-fiscal-period-and-year", _2, _DATES, _I, "is in fiscal period {0} of {1}", False),
    _op(
        "in-or-before-fiscal-period-and-year",
        _2,
        _DATES,
        _I,
        "is in or before fiscal period {0} of {1}",
        False,
    ),
    _op(
        "in-or-after-fiscal-period-and-year", _2, _DATES, _I, "is in or after fiscal period {0} of {1}", False
    ),
]

OPERATORS: Mapping[str, OperatorSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
"""Every supported operator by its exact FetchXML name."""

LOCAL_OPERATORS: frozenset[str] = frozenset(spec.name for spec in _SPECS if spec.local)
"""Operators ``evaluate`` can decide locally."""

VALUE_OF_OPERATORS: frozenset[str] = frozenset({"eq", "ne", "neq", "gt", "ge", "lt", "le"})
"""Operators that may compare with another column (``valueof``) instead of a value."""
