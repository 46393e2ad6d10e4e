"""``evaluate``: decide locally whether one record matches a filter, without asking the server.

Semantics follow the server's (SQL) behaviour: text compares case- and accent-insensitively (the
default Dataverse collation), an empty column (None, "" or an empty list) satisfies only ``null``
(so ``ne``, ``not-like``, ``not-in`` are false for it), and relative dates use the day boundaries
of ``context.now``'s time zone. Link-entities, team/hierarchy, fiscal and week operators and row
limits need the server: ``can_evaluate_locally`` says so and ``evaluate`` refuses them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from crmsync_desktop.errors import FilterError
from crmsync_desktop.sync.filters.model import Condition, FetchFilter, FilterGroup
from crmsync_desktop.sync.filters.operators import LOCAL_OPERATORS
from crmsync_desktop.sync.filters.validate import GUID_RE


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    """Who and when a filter is evaluated for.

    Args:
        user_id: the signed-in server user (``eq-userid``).
        business_unit_id: that user's business unit (``eq-businessid``).
        now: the current time; naive means UTC. Its time zone sets where "today" begins.
    """

    user_id: str | UUID
    business_unit_id: str | UUID
    now: datetime

    @property
    def tz(self) -> tzinfo:
        return self.now.tzinfo or UTC

    @property
    def aware_now(self) -> datetime:
        return self.now if self.now.tzinfo else self.now.replace(tzinfo=UTC)

    @property
    def today(self) -> date:
        return self.aware_now.date()


def local_evaluation_blockers(f: FetchFilter) -> list[str]:
    """Why ``f`` cannot be evaluated locally (empty: it can)."""
    reasons = [f"the link-entity {link.name!r} needs rows of another table" for link in f.walk_links()]
    if f.count is not None:
        reasons.append(f"the row limit count={f.count} depends on the server's ordering")
    for c in f.filter.walk_conditions() if f.filter else ():
        if c.entity_alias is not None:
            reasons.append(f"the condition on {c.entity_alias}.{c.attribute} reads a linked table")
        elif c.operator not in LOCAL_OPERATORS:
            reasons.append(
                f"operator {c.operator!r} needs the server (teams, hierarchy, fiscal calendar "
                "or week settings)"
            )
    return reasons


def can_evaluate_locally(f: FetchFilter) -> bool:
    """True if ``evaluate`` can decide ``f`` from a record alone (no link-entity, no server-only operator)."""
    return not local_evaluation_blockers(f)


def evaluate(f: FetchFilter, record: Mapping[str, Any], context: EvaluationContext) -> bool:
    """Whether ``record`` matches ``f``.

    Args:
        f: the filter; ``NO_FILTER`` matches every record.
        record: column logical name → value (str, int, float, Decimal, bool, datetime, date, UUID,
            a list for multi-select choices, or None). A lookup may also be given under its Web API
            name ``_<column>_value``. A missing column is empty.
        context: the current user, business unit and time.

    Raises:
        FilterError: ``f`` cannot be evaluated locally (see ``can_evaluate_locally``), or a value
            in the filter does not fit the record's value (``gt "abc"`` on a number).
    """
    blockers = local_evaluation_blockers(f)
    if blockers:
        raise FilterError(f"This filter cannot be checked locally: {blockers[0]}.", entity=f.entity or None)
    return f.filter is None or _Evaluator(record, context).group(f.filter)


def _fold(text: str) -> str:
    """Case- and accent-insensitive form, like the server's default collation."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE → regex: ``%`` any run, ``_`` one character, ``[abc]``/``[a-c]``/``[^a]`` one of a set."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        close = pattern.find("]", i + 2) if ch == "[" else -1
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        elif close != -1:
            body = pattern[i + 1 : close]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            escaped = "".join("\\" + c if c in "\\[]^" else c for c in body)
            out.append(f"[{'^' if negate else ''}{escaped}]")
            i = close
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, tuple, set, frozenset)) and not value)


def _parse_datetime(text: str, tz: tzinfo) -> datetime:
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo else value.replace(tzinfo=tz)


_ISO_MOMENT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def _is_moment(value: Any) -> bool:
    """A date, a date-time, or text in ISO-8601 date/date-time form (as the Web API returns them)."""
    return isinstance(value, date) or (isinstance(value, str) and _ISO_MOMENT_RE.match(value) is not None)


def _is_date_only(text: str) -> bool:
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()) is not None


class _Evaluator:
    def __init__(self, record: Mapping[str, Any], context: EvaluationContext) -> None:
        self._record = record
        self._ctx = context

    def group(self, g: FilterGroup) -> bool:
        results = (self.condition(i) if isinstance(i, Condition) else self.group(i) for i in g.items)
        return all(results) if g.type.value == "and" else (not g.items or any(results))

    def _value(self, attribute: str) -> Any:
        if attribute in self._record:
            return self._record[attribute]
        return self._record.get(f"_{attribute}_value")

    # --- typed comparison -------------------------------------------------------------------------

    def _pair(self, c: Condition, actual: Any, raw: str) -> tuple[Any, Any]:
        """(record value, filter value) made comparable according to the record value's type."""
        try:
            if isinstance(actual, bool):
                if raw.strip().lower() not in ("0", "1", "true", "false"):
                    raise ValueError
                return actual, raw.strip().lower() in ("1", "true")
            if isinstance(actual, (int, float, Decimal)):
                return Decimal(str(actual)), Decimal(raw.strip())
            if isinstance(actual, datetime):
                return self._moment(actual), _parse_datetime(raw, self._ctx.tz)
            if isinstance(actual, date):
                return actual, date.fromisoformat(raw.strip())
            if isinstance(actual, UUID):
                return actual, UUID(raw.strip())
        except (ValueError, InvalidOperation):
            raise FilterError(
                f"The condition on {c.attribute!r} compares with {raw!r}, which does not fit "
                f"the record's value {actual!r}."
            ) from None
        if isinstance(actual, str):
            if GUID_RE.match(actual) and GUID_RE.match(raw.strip()):
                return UUID(actual.strip("{}")), UUID(raw.strip().strip("{}"))
            if _ISO_MOMENT_RE.match(actual) and _ISO_MOMENT_RE.match(raw.strip()):
                return self._moment(actual, c.attribute), _parse_datetime(raw, self._ctx.tz)
            return _fold(actual), _fold(raw)
        raise FilterError(
            f"The record's value of {c.attribute!r} has an unsupported type ({type(actual).__name__})."
        )

    def _moment(self, value: Any, attribute: str = "") -> datetime:
        """A record value as an aware datetime (date → midnight in the context's zone)."""
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(), self._ctx.tz)
        if isinstance(value, str):
            try:  # date-only text is a calendar day (midnight here); a naive time is UTC, like naive datetimes
                return _parse_datetime(value, self._ctx.tz if _is_date_only(value) else UTC)
            except ValueError:
                pass
        raise FilterError(f"The record's value of {attribute!r} ({value!r}) is not a date.")

    def _day(self, value: Any, attribute: str) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        return self._moment(value, attribute).astimezone(self._ctx.tz).date()

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(), self._ctx.tz)

    def _equal(self, c: Condition, actual: Any, raw: str) -> bool:
        left, right = self._pair(c, actual, raw)
        return bool(left == right)

    def _compare(self, c: Condition, actual: Any, raw: str) -> int:
        left, right = self._pair(c, actual, raw)
        return (left > right) - (left < right)

    def _between(self, c: Condition, actual: Any) -> bool:
        low, high = c.values
        if _is_date_only(low) and _is_date_only(high) and _is_moment(actual):
            day = self._day(actual, c.attribute)  # whole days, as the date picker means them
            return date.fromisoformat(low) <= day <= date.fromisoformat(high)
        return self._compare(c, actual, low) >= 0 and self._compare(c, actual, high) <= 0

    def _choices(self, c: Condition, actual: Any) -> set[int]:
        items = actual.split(",") if isinstance(actual, str) else actual
        try:
            return {int(str(item).strip()) for item in items}
        except (TypeError, ValueError):
            raise FilterError(
                f"The record's value of {c.attribute!r} ({actual!r}) is not a list of choice values."
            ) from None

    # --- conditions -------------------------------------------------------------------------------

    def condition(self, c: Condition) -> bool:
        actual = self._value(c.attribute)
        if c.operator == "null":
            return _is_empty(actual)
        if _is_empty(actual):
            return False  # SQL semantics: an empty column satisfies no other operator
        if c.value_of is not None:
            other = self._value(c.value_of)
            if _is_empty(other):
                return False
            return self._compare_values(c, actual, other)
        try:
            return self._operator(c, actual)
        except (ValueError, InvalidOperation) as exc:  # a hand-built filter that parse_filter would refuse
            raise FilterError(
                f"The condition on {c.attribute!r} ({c.operator} {', '.join(c.values)}) cannot be checked: {exc}."
            ) from None

    def _compare_values(self, c: Condition, actual: Any, other: Any) -> bool:
        raw = other.isoformat() if isinstance(other, (date, datetime)) else str(other)
        return self._relation(c.operator, self._compare(c, actual, raw))

    @staticmethod
    def _relation(operator: str, order: int) -> bool:
        return {
            "eq": order == 0,
            "ne": order != 0,
            "neq": order != 0,
            "gt": order > 0,
            "ge": order >= 0,
            "lt": order < 0,
            "le": order <= 0,
        }[operator]

    def _operator(self, c: Condition, actual: Any) -> bool:
        op, values = c.operator, c.values
        ctx = self._ctx
        if op == "not-null":
            return True
        if op in ("eq", "ne", "neq", "gt", "ge", "lt", "le"):
            return self._relation(op, self._compare(c, actual, values[0]))
        if op in ("in", "not-in"):
            found = any(self._equal(c, actual, v) for v in values)
            return found if op == "in" else not found
        if op in ("between", "not-between"):
            inside = self._between(c, actual)
            return inside if op == "between" else not inside
        if op in ("like", "not-like", "begins-with", "not-begin-with", "ends-with", "not-end-with"):
            return self._text(op, _fold(str(actual)), _fold(values[0]))
        if op in ("contain-values", "not-contain-values"):
            hit = bool(self._choices(c, actual) & {int(v) for v in values})
            return hit if op == "contain-values" else not hit
        if op in ("eq-userid", "ne-userid", "eq-businessid", "ne-businessid"):
            target = ctx.user_id if "userid" in op else ctx.business_unit_id
            same = self._equal(c, actual, str(target))
            return same if op.startswith("eq") else not same
        return self._date_operator(c, actual)

    @staticmethod
    def _text(op: str, text: str, operand: str) -> bool:
        if op in ("like", "not-like"):
            matched = like_regex(operand).fullmatch(text) is not None
            return matched if op == "like" else not matched
        if op in ("begins-with", "not-begin-with"):
            return text.startswith(operand) == (op == "begins-with")
        return text.endswith(operand) == (op == "ends-with")

    def _date_operator(self, c: Condition, actual: Any) -> bool:
        op, ctx = c.operator, self._ctx
        now, today = ctx.aware_now, ctx.today
        if op in ("on", "on-or-before", "on-or-after"):
            target = _parse_datetime(c.values[0], ctx.tz).astimezone(ctx.tz).date()
            day = self._day(actual, c.attribute)
            return {"on": day == target, "on-or-before": day <= target, "on-or-after": day >= target}[op]
        if op in ("today", "yesterday", "tomorrow"):
            offset = {"today": 0, "yesterday": -1, "tomorrow": 1}[op]
            return self._day(actual, c.attribute) == today + timedelta(days=offset)
        if op.endswith(("-month", "-year")):
            day = self._day(actual, c.attribute)
            step = {"this": 0, "last": -1, "next": 1}[op.split("-")[0]]
            if op.endswith("-year"):
                return day.year == today.year + step
            year, month0 = divmod(today.year * 12 + today.month - 1 + step, 12)
            return (day.year, day.month) == (year, month0 + 1)
        moment = self._moment(actual, c.attribute)
        if op in ("last-seven-days", "next-seven-days"):
            op, count = op.replace("seven", "x"), 7
        else:
            count = int(c.values[0])
        unit = op.rsplit("-", 1)[1]
        if op.startswith("olderthan-"):
            span = {
                "minutes": timedelta(minutes=count),
                "hours": timedelta(hours=count),
                "days": timedelta(days=count),
                "weeks": timedelta(weeks=count),
            }[unit]
            return moment < now - span
        if unit == "hours":
            span_start, span_end = now - timedelta(hours=count), now + timedelta(hours=count)
            return span_start <= moment <= now if op.startswith("last") else now <= moment <= span_end
        days = count * (7 if unit == "weeks" else 1)
        if op.startswith("last"):
            return self._midnight(today - timedelta(days=days)) <= moment <= now
        return now <= moment < self._midnight(today + timedelta(days=days + 1))
