"""OData request vocabulary: ``Prefer`` preferences, annotation selection, ``$select``/``$orderby``/``$expand``
parsing, parameter aliases, and ``$filter`` -> SQL through odata-query (with the SQLite fixes of
stack-recipes §9 and the Dataverse query functions).
"""

from __future__ import annotations

import datetime as dt
import decimal
import fnmatch
import itertools
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from odata_query import ast as oast
from odata_query import exceptions as oexc
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.sqlalchemy import AstToSqlAlchemyCoreVisitor
from sqlalchemy.dialects import sqlite as sqlite_dialect

from . import conditions, errors
from .metadata import Entity, Metadata
from .values import fmt_dt

logging.getLogger("odata_query").setLevel(logging.ERROR)  # it warns on every contains() (stack-recipes §9)
_LEXER, _PARSER = ODataLexer(), ODataParser()
_DIALECT = sqlite_dialect.dialect(paramstyle="named")
_ENUM_RE = re.compile(r"Microsoft\.Dynamics\.CRM\.[A-Za-z]+'([^']*)'")
_ALIAS_RE = re.compile(r"('(?:[^']|'')*')|@([A-Za-z_][A-Za-z0-9_]*)")
MAX_PAGE_SIZE = 5000


# ---- Prefer ----------------------------------------------------------------------------------------
def parse_prefer(values: list[str]) -> dict[str, str]:
    prefs: dict[str, str] = {}
    for header in values:
        for item in _split_outside_quotes(header, ","):
            item = item.strip()
            if not item:
                continue
            name, _, value = item.partition("=")
            prefs[name.strip().lower()] = value.strip().strip('"')
    return prefs


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    out, cur, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


class Annotations:
    """Which instance annotations ``Prefer: odata.include-annotations`` asked for."""

    FORMATTED = "OData.Community.Display.V1.FormattedValue"
    LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
    NAV = "Microsoft.Dynamics.CRM.associatednavigationproperty"

    def __init__(self, value: str | None) -> None:
        self.patterns = [p.strip() for p in (value or "").split(",") if p.strip()]
        self.any = bool(self.patterns)
        self.formatted = self.wants(self.FORMATTED)
        self.lookup = self.wants(self.LOOKUP_NAME) or self.wants(self.NAV)

    def wants(self, name: str) -> bool:
        for p in self.patterns:
            if p.startswith("-"):
                continue
            if fnmatch.fnmatchcase(name, p):
                return True
        return False


# ---- option parsing ----------------------------------------------------------------------------------
def split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    out, cur, depth, quoted = [], [], 0, False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [p.strip() for p in out if p.strip()]


def no_property(ent: Entity, name: str) -> errors.DataverseError:
    return errors.bad_request(f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{ent.logical}'.")


def parse_select(ent: Entity, text: str | None) -> list[str]:
    """Selected column logical names (primary key always first)."""
    if not text:
        return list(ent.attrs)
    names = [ent.pk]
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        a = ent.attr_by_odata(item)
        if a is None:
            raise no_property(ent, item)
        if a.logical not in names:
            names.append(a.logical)
    return names


def parse_orderby(ent: Entity, text: str | None) -> list[tuple[str, bool]]:
    out = []
    for item in split_top(text or ""):
        parts = item.split()
        a = ent.attr_by_odata(parts[0])
        if a is None:
            raise no_property(ent, parts[0])
        desc = len(parts) > 1 and parts[1].lower() == "desc"
        if len(parts) > 1 and parts[1].lower() not in ("asc", "desc"):
            raise errors.bad_request(f"Syntax error in $orderby '{item}'.")
        out.append((a.logical, desc))
    return out


@dataclass
class ExpandItem:
    nav: str
    select: str | None = None
    filter: str | None = None
    orderby: str | None = None
    top: int | None = None
    options: dict[str, str] = field(default_factory=dict)


def parse_expand(text: str | None) -> list[ExpandItem]:
    items = []
    for part in split_top(text or ""):
        m = re.match(r"^([A-Za-z0-9_]+)(?:\((.*)\))?$", part, re.S)
        if not m:
            raise errors.bad_request(f"Syntax error in $expand '{part}'.")
        item = ExpandItem(m.group(1))
        for opt in split_top(m.group(2) or "", ";"):
            name, _, value = opt.partition("=")
            name = name.strip().lower()
            if name == "$select":
                item.select = value
            elif name == "$filter":
                item.filter = value
            elif name == "$orderby":
                item.orderby = value
            elif name == "$top":
                item.top = int(value)
            else:
                raise errors.bad_request(f"The query option '{name}' is not supported inside $expand.")
        items.append(item)
    return items


def substitute_aliases(text: str, params: dict[str, str]) -> str:
    """Parameter aliases (``@p1`` with ``&@p1=...``); an unassigned alias is null."""
    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(1)
        return params.get("@" + m.group(2), "null")
    return _ALIAS_RE.sub(repl, text)


def normalize_enums(text: str) -> str:
    """``Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'`` -> ``'UserOwned'`` (odata-query can't lex enum literals)."""
    return _ENUM_RE.sub(lambda m: "'" + m.group(1) + "'", text)


def parse_filter(text: str) -> oast._Node:
    try:
        return _PARSER.parse(_LEXER.tokenize(normalize_enums(text)))
    except oexc.ODataException as e:
        raise errors.bad_request(f"Syntax error in $filter '{text}': {e}") from None


# ---- $filter -> SQL ------------------------------------------------------------------------------------
class FilterVisitor(AstToSqlAlchemyCoreVisitor):
    """odata-query Core visitor with Dataverse storage conventions and query functions."""

    def __init__(self, md: Metadata, ent: Entity, ctx: conditions.QueryContext) -> None:
        assert ent.table is not None
        super().__init__(ent.table)
        self.md = md
        self.ent = ent
        self.ctx = ctx
        self._n = itertools.count()

    def visit_Identifier(self, node: oast.Identifier) -> Any:
        try:
            return self.table.c[node.name]
        except KeyError:
            raise no_property(self.ent, node.name) from None

    def visit_DateTime(self, node: oast.DateTime) -> Any:
        try:
            value = node.py_val
        except ValueError:
            raise errors.bad_request(f"Invalid date-time literal '{node.val}'.") from None
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.timezone.utc)
            return sa.literal(fmt_dt(value))
        return sa.literal(str(node.val))

    def visit_Date(self, node: oast.Date) -> Any:
        return sa.literal(str(node.val))

    def visit_GUID(self, node: oast.GUID) -> Any:
        return sa.literal(str(node.val).lower())

    def visit_Float(self, node: oast.Float) -> Any:
        return sa.literal(float(node.val))

    def _substr_function(self, field: oast._Node, substr: oast._Node, fname: str) -> Any:
        if isinstance(substr, oast.String):
            return getattr(self.visit(field), fname)(substr.py_val, autoescape=True)
        return super()._substr_function(field, substr, fname)

    def func_indexof(self, first: oast._Node, second: oast._Node) -> Any:
        return sa.func.instr(self.visit(first), self.visit(second)) - 1

    def visit_Attribute(self, node: oast.Attribute) -> Any:
        """Single-valued navigation: ``primarycontactid/fullname`` -> correlated scalar subquery."""
        if not isinstance(node.owner, oast.Identifier):
            raise errors.bad_request("Only one level of navigation is supported in $filter.")
        nav = self.ent.navs.get(node.owner.name)
        if nav is None:
            raise no_property(self.ent, node.owner.name)
        target = self.md.entities[nav.targets[0]] if len(nav.targets) == 1 else None
        if target is None or target.table is None:
            raise errors.bad_request(f"Filtering through the polymorphic navigation '{nav.name}' is not supported.")
        alias = target.table.alias(f"nav_{next(self._n)}")
        a = target.attr_by_odata(node.attr)
        if a is None:
            raise no_property(target, node.attr)
        return (sa.select(alias.c[a.odata_name])
                .where(alias.c[target.pk] == self.table.c[f"_{nav.attr}_value"])
                .correlate(self.table).scalar_subquery())

    def visit_Call(self, node: oast.Call) -> Any:
        if node.func.namespace == ("Microsoft", "Dynamics", "CRM"):
            return self._query_function(node)
        return super().visit_Call(node)

    def _query_function(self, node: oast.Call) -> Any:
        op = conditions.ODATA_FUNCTIONS.get(node.func.name)
        if op is None:
            raise errors.bad_request(f"The query function '{node.func.name}' is not supported by the emulator.")
        prop, values = None, []
        for arg in node.args:
            if not isinstance(arg, oast.NamedParam):
                raise errors.bad_request(f"Bad argument to {node.func.name}.")
            if arg.name.name == "PropertyName":
                prop = _literal(arg.param)
            elif arg.name.name in ("PropertyValue", "PropertyValues"):
                v = _literal(arg.param)
                values = list(v) if isinstance(v, list) else [v]
        a = self.ent.attr_by_odata(str(prop)) if prop else None
        if a is None:
            raise no_property(self.ent, str(prop))
        sql, params = conditions.condition(f"{_qi(self.ent.logical)}.{_qi(a.logical)}", a, op, values, self.ctx)
        names = {}
        for value in params:
            name = f"qf{next(self._n)}"
            sql = sql.replace("?", f":{name}", 1)
            names[name] = value
        return sa.text(sql).bindparams(**names)


def _literal(node: oast._Node) -> Any:
    if isinstance(node, oast.List):
        return [_literal(n) for n in node.val]
    if isinstance(node, (oast.String, oast.Integer, oast.Float, oast.Boolean)):
        return node.py_val
    if isinstance(node, (oast.GUID, oast.Date, oast.DateTime)):
        return str(node.val)
    raise errors.bad_request("Unsupported literal in a query function.")


def _qi(name: str) -> str:
    return '"' + name + '"'


def filter_sql(md: Metadata, ent: Entity, text: str, ctx: conditions.QueryContext,
               aliases: dict[str, str]) -> tuple[str, dict[str, Any]]:
    tree = parse_filter(substitute_aliases(text, aliases))
    try:
        expr = FilterVisitor(md, ent, ctx).visit(tree)
    except errors.DataverseError:
        raise
    except oexc.InvalidFieldException as e:
        raise no_property(ent, str(e).rsplit(":", 1)[-1].strip()) from None
    except (oexc.ODataException, NotImplementedError, TypeError, AttributeError) as e:
        raise errors.bad_request(f"The $filter '{text}' is not supported: {e}") from None
    # Compile inside a SELECT over the table so navigation subqueries correlate with it, then keep the WHERE.
    bare = str(sa.select(sa.literal_column("1")).select_from(ent.table).compile(dialect=_DIALECT))
    compiled = sa.select(sa.literal_column("1")).select_from(ent.table).where(expr).compile(dialect=_DIALECT)
    text_sql = str(compiled)
    prefix = bare + " \nWHERE "
    if not text_sql.startswith(prefix):  # pragma: no cover - SQLAlchemy rendering changed
        raise errors.DataverseError(500, errors.UNEXPECTED, "Could not translate $filter.")
    params = {k: _param(v) for k, v in compiled.params.items()}
    return text_sql[len(prefix):], params


def _param(v: Any) -> Any:
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, dt.datetime):
        return fmt_dt(v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc))
    if isinstance(v, dt.date):
        return v.isoformat()
    return v
