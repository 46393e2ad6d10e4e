"""Condition operators shared by FetchXML ``<condition>`` and the OData ``Microsoft.Dynamics.CRM.*`` query
functions: operator name + column + values -> SQL text with ``?`` parameters.

Relative date operators work on UTC calendar days (guess: the real service uses the caller's time zone).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from . import errors
from .metadata import Attr
from .values import fmt_dt, norm_guid, parse_dt

_INT = ("Integer", "BigInt", "Picklist", "State", "Status")
_REAL = ("Decimal", "Double", "Money")


@dataclass(frozen=True, slots=True)
class QueryContext:
    """What context-dependent operators need: the clock and the calling user."""

    now: dt.datetime
    userid: str
    businessunitid: str
    team_ids: tuple[str, ...]


# OData query function name -> FetchXML operator name
ODATA_FUNCTIONS = {
    "Today": "today", "Yesterday": "yesterday", "Tomorrow": "tomorrow", "LastSevenDays": "last-seven-days",
    "NextSevenDays": "next-seven-days", "LastWeek": "last-week", "ThisWeek": "this-week", "NextWeek": "next-week",
    "LastMonth": "last-month", "ThisMonth": "this-month", "NextMonth": "next-month", "LastYear": "last-year",
    "ThisYear": "this-year", "NextYear": "next-year", "LastXHours": "last-x-hours", "NextXHours": "next-x-hours",
    "LastXDays": "last-x-days", "NextXDays": "next-x-days", "LastXWeeks": "last-x-weeks",
    "NextXWeeks": "next-x-weeks", "LastXMonths": "last-x-months", "NextXMonths": "next-x-months",
    "LastXYears": "last-x-years", "NextXYears": "next-x-years", "OlderThanXMinutes": "olderthan-x-minutes",
    "OlderThanXHours": "olderthan-x-hours", "OlderThanXDays": "olderthan-x-days",
    "OlderThanXWeeks": "olderthan-x-weeks", "OlderThanXMonths": "olderthan-x-months",
    "OlderThanXYears": "olderthan-x-years", "On": "on", "OnOrBefore": "on-or-before", "OnOrAfter": "on-or-after",
    "Between": "between", "NotBetween": "not-between", "In": "in", "NotIn": "not-in",
    "EqualUserId": "eq-userid", "NotEqualUserId": "ne-userid", "EqualBusinessId": "eq-businessid",
    "NotEqualBusinessId": "ne-businessid", "EqualUserTeams": "eq-userteams",
    "EqualUserOrUserTeams": "eq-useroruserteams",
}
SUPPORTED = {
    "eq", "ne", "neq", "gt", "ge", "lt", "le", "between", "not-between", "in", "not-in", "null", "not-null",
    "like", "not-like", "begins-with", "not-begin-with", "ends-with", "not-end-with", *ODATA_FUNCTIONS.values(),
}


def coerce(attr: Attr, text: Any) -> Any:
    """A FetchXML/function value (a string) in storage form for comparisons."""
    if text is None:
        return None
    t = attr.atype
    s = str(text)
    try:
        if t in _INT:
            return int(s)
        if t in _REAL:
            return float(s)
        if t == "Boolean":
            return 1 if s.lower() in ("1", "true") else 0
        if t == "DateTime":
            if attr.meta.get("Format") == "DateOnly":
                return s[:10]
            return fmt_dt(parse_dt(s)) if "T" in s or " " in s.strip() else s[:10] + "T00:00:00Z"
        if t in ("Uniqueidentifier", "Lookup", "Owner", "Customer"):
            return norm_guid(s) or s
    except ValueError:
        raise errors.bad_request(f"Invalid value '{s}' for attribute '{attr.logical}'.",
                                 errors.INVALID_ARGUMENT) from None
    return s


def _day(d: dt.datetime) -> dt.datetime:
    return d.replace(hour=0, minute=0, second=0, microsecond=0)


def _add_months(d: dt.datetime, months: int) -> dt.datetime:
    m = d.month - 1 + months
    year, month = d.year + m // 12, m % 12 + 1
    return d.replace(year=year, month=month, day=1)


def _bound(attr: Attr, d: dt.datetime) -> str:
    if attr.meta.get("Format") == "DateOnly":
        return d.date().isoformat()
    return fmt_dt(d)


def _range(col: str, attr: Attr, start: dt.datetime | None, end: dt.datetime | None) -> tuple[str, list[Any]]:
    parts, params = [], []
    if start is not None:
        parts.append(f"{col} >= ?")
        params.append(_bound(attr, start))
    if end is not None:
        parts.append(f"{col} < ?")
        params.append(_bound(attr, end))
    return "(" + " AND ".join(parts) + ")", params


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def condition(col: str, attr: Attr, op: str, values: list[Any], ctx: QueryContext) -> tuple[str, list[Any]]:
    """SQL for one condition on column expression ``col``."""
    op = op.lower()
    if op not in SUPPORTED:
        raise errors.bad_request(f"The condition operator '{op}' is not supported by the emulator.",
                                 errors.INVALID_ARGUMENT)
    simple = {"eq": "=", "ne": "<>", "neq": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    if op in simple:
        _need(op, values, 1)
        v = coerce(attr, values[0])
        if op in ("ne", "neq"):
            return f"({col} IS NULL OR {col} <> ?)", [v]
        return f"{col} {simple[op]} ?", [v]
    if op == "null":
        return f"{col} IS NULL", []
    if op == "not-null":
        return f"{col} IS NOT NULL", []
    if op in ("in", "not-in"):
        if not values:
            raise errors.bad_request(f"The '{op}' operator needs at least one value.", errors.INVALID_ARGUMENT)
        marks = ", ".join("?" for _ in values)
        vals = [coerce(attr, v) for v in values]
        return (f"{col} IN ({marks})" if op == "in" else f"({col} IS NULL OR {col} NOT IN ({marks}))"), vals
    if op in ("between", "not-between"):
        _need(op, values, 2)
        lo, hi = coerce(attr, values[0]), coerce(attr, values[1])
        if op == "between":
            return f"{col} BETWEEN ? AND ?", [lo, hi]
        return f"({col} IS NULL OR {col} NOT BETWEEN ? AND ?)", [lo, hi]
    if op in ("like", "not-like"):
        _need(op, values, 1)
        return (f"{col} LIKE ?" if op == "like" else f"({col} IS NULL OR {col} NOT LIKE ?)"), [str(values[0])]
    if op in ("begins-with", "not-begin-with", "ends-with", "not-end-with"):
        _need(op, values, 1)
        v = _like_escape(str(values[0]))
        pattern = v + "%" if "begin" in op else "%" + v
        if op.startswith("not"):
            return f"({col} IS NULL OR {col} NOT LIKE ? ESCAPE '\\')", [pattern]
        return f"{col} LIKE ? ESCAPE '\\'", [pattern]
    if op in ("eq-userid", "ne-userid"):
        return (f"{col} = ?" if op == "eq-userid" else f"({col} IS NULL OR {col} <> ?)"), [ctx.userid]
    if op in ("eq-businessid", "ne-businessid"):
        return (f"{col} = ?" if op == "eq-businessid" else f"({col} IS NULL OR {col} <> ?)"), [ctx.businessunitid]
    if op in ("eq-userteams", "eq-useroruserteams"):
        ids = list(ctx.team_ids) + ([ctx.userid] if op == "eq-useroruserteams" else [])
        if not ids:
            return "0", []
        return f"{col} IN ({', '.join('?' for _ in ids)})", ids
    return _date_condition(col, attr, op, values, ctx)


def _need(op: str, values: list[Any], n: int) -> None:
    if len(values) < n:
        raise errors.bad_request(f"The '{op}' operator needs {n} value(s).", errors.INVALID_ARGUMENT)


def _int_value(op: str, values: list[Any]) -> int:
    _need(op, values, 1)
    try:
        return int(str(values[0]))
    except ValueError:
        raise errors.bad_request(f"The '{op}' operator needs an integer value.", errors.INVALID_ARGUMENT) from None


def _date_condition(col: str, attr: Attr, op: str, values: list[Any], ctx: QueryContext) -> tuple[str, list[Any]]:
    if attr.atype != "DateTime":
        raise errors.bad_request(f"The '{op}' operator is only valid for date and time columns.",
                                 errors.INVALID_ARGUMENT)
    now = ctx.now
    until_now = now + dt.timedelta(seconds=1)  # stored times have second precision; "now" must be included
    today = _day(now)
    day = dt.timedelta(days=1)
    week_start = today - dt.timedelta(days=(today.weekday() + 1) % 7)  # weeks start on Sunday (en-US)
    month_start = today.replace(day=1)
    year_start = today.replace(month=1, day=1)
    fixed = {
        "today": (today, today + day), "yesterday": (today - day, today), "tomorrow": (today + day, today + 2 * day),
        "last-seven-days": (today - 7 * day, until_now), "next-seven-days": (now, today + 8 * day),
        "this-week": (week_start, week_start + 7 * day), "last-week": (week_start - 7 * day, week_start),
        "next-week": (week_start + 7 * day, week_start + 14 * day),
        "this-month": (month_start, _add_months(month_start, 1)),
        "last-month": (_add_months(month_start, -1), month_start),
        "next-month": (_add_months(month_start, 1), _add_months(month_start, 2)),
        "this-year": (year_start, year_start.replace(year=year_start.year + 1)),
        "last-year": (year_start.replace(year=year_start.year - 1), year_start),
        "next-year": (year_start.replace(year=year_start.year + 1), year_start.replace(year=year_start.year + 2)),
    }
    if op in fixed:
        return _range(col, attr, *fixed[op])
    if op in ("on", "on-or-before", "on-or-after"):
        _need(op, values, 1)
        try:
            d = _day(parse_dt(str(values[0])[:10] + "T00:00:00Z"))
        except ValueError:
            raise errors.bad_request(f"Invalid date '{values[0]}'.", errors.INVALID_ARGUMENT) from None
        if op == "on":
            return _range(col, attr, d, d + day)
        if op == "on-or-before":
            return _range(col, attr, None, d + day)
        return _range(col, attr, d, None)
    n = _int_value(op, values)
    unit = op.rsplit("-", 1)[-1]
    if op.startswith("olderthan-x-"):
        deltas = {"minutes": dt.timedelta(minutes=n), "hours": dt.timedelta(hours=n), "days": n * day,
                  "weeks": 7 * n * day}
        if unit in deltas:
            return _range(col, attr, None, now - deltas[unit])
        months = n if unit == "months" else 12 * n
        return _range(col, attr, None, _add_months(now, -months).replace(day=min(now.day, 28)))
    if unit == "hours":
        h = dt.timedelta(hours=n)
        return _range(col, attr, now - h, until_now) if op.startswith("last") else _range(col, attr, now, now + h)
    span = {"days": n * day, "weeks": 7 * n * day}
    if op.startswith("last-x-"):
        if unit in span:
            return _range(col, attr, today - span[unit], until_now)
        months = n if unit == "months" else 12 * n
        return _range(col, attr, _add_months(today, -months).replace(day=min(today.day, 28)), until_now)
    if unit in span:
        return _range(col, attr, now, today + day + span[unit])
    months = n if unit == "months" else 12 * n
    return _range(col, attr, now, _add_months(today, months).replace(day=min(today.day, 28)) + day)
