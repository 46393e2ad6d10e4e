"""FetchXML (as Resco sync filters and the REST ``Fetch`` method use it) to a SQLAlchemy query.

Supports what sync filters contain (resco.md §0 item 11, §3): ``<attribute>``/``<all-attributes>``,
``<order>``, nested ``<filter type="and|or">``, ``<condition>`` with the common operators, and
``<link-entity>`` (inner/outer, with its own attributes and filters, aliased columns returned as
``alias.attribute``). Paging with ``count``/``page``/``paging-cookie``. Parsed with defusedxml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import sqlalchemy as sa
from defusedxml import ElementTree as SafeET

from crmsync_desktop.emulator.resco.schema import TARGET_SUFFIX, EntityDef, SchemaError
from crmsync_desktop.emulator.resco.store import RescoOrg

__all__ = ["DEFAULT_PAGE_SIZE", "FetchQuery", "parse_fetch"]

DEFAULT_PAGE_SIZE = 5000


@dataclass
class Column:
    label: str  # "name" or "alias.name"
    entity: EntityDef
    field_name: str
    sql: Any
    target_sql: Any = None  # a lookup's companion "<name>__target" column


@dataclass
class FetchQuery:
    entity: EntityDef
    statement: sa.Select[Any]
    count_statement: sa.Select[Any]
    columns: list[Column]
    page: int
    count: int
    want_total: bool
    links: list[str] = field(default_factory=list)


def parse_fetch(org: RescoOrg, xml: str | bytes, user_id: str) -> FetchQuery:
    try:
        root = SafeET.fromstring(xml)
    except Exception as exc:  # defusedxml raises ParseError or its own DefusedXmlException
        raise SchemaError(f"Invalid FetchXML: {exc}") from exc
    if root.tag != "fetch":
        raise SchemaError("FetchXML root element must be <fetch>.")
    entity_el = root.find("entity")
    if entity_el is None or not entity_el.get("name"):
        raise SchemaError("FetchXML needs <entity name=...>.")
    builder = _Builder(org, user_id)
    entity = org.entity(entity_el.get("name", ""))
    table = org.tables[entity.name].alias("e0")
    builder.aliases[entity.name] = (entity, table)
    from_clause: Any = table
    columns: list[Column] = builder.columns_of(entity_el, entity, table, prefix="")
    conditions: list[Any] = []
    orders: list[Any] = []
    from_clause = builder.walk(entity_el, entity, table, from_clause, conditions, orders)
    columns.extend(builder.link_columns)
    if not any(c.label == "id" for c in columns):
        columns.insert(0, Column("id", entity, "id", table.c.id))
    where = sa.and_(*conditions) if conditions else sa.true()
    selected = [c.sql.label(c.label) for c in columns]
    selected += [c.target_sql.label(c.label + TARGET_SUFFIX) for c in columns if c.target_sql is not None]
    statement = sa.select(*selected).select_from(from_clause).where(where)
    if root.get("distinct", "false").lower() == "true":
        statement = statement.distinct()
    statement = statement.order_by(*orders, table.c.id)
    top = root.get("top")
    count = int(top or root.get("count") or DEFAULT_PAGE_SIZE)
    page = int(root.get("page") or 1)
    if top and root.get("count"):
        raise SchemaError("The top attribute can't be specified with paging attribute count.")
    if count < 1 or page < 1:
        raise SchemaError("count and page must be positive.")
    count_statement = sa.select(sa.func.count(sa.distinct(table.c.id))).select_from(from_clause).where(where)
    statement = statement.offset((page - 1) * count).limit(count + (0 if top else 1))
    return FetchQuery(
        entity,
        statement,
        count_statement,
        columns,
        page,
        count,
        root.get("returntotalrecordcount", "false").lower() == "true",
    )


_OPERATORS = {
    "eq",
    "ne",
    "neq",
    "gt",
    "ge",
    "lt",
    "le",
    "like",
    "not-like",
    "begins-with",
    "not-begin-with",
    "ends-with",
    "not-end-with",
    "null",
    "not-null",
    "in",
    "not-in",
    "between",
    "not-between",
    "eq-userid",
    "ne-userid",
}


class _Builder:
    def __init__(self, org: RescoOrg, user_id: str) -> None:
        self.org = org
        self.user_id = user_id
        self.aliases: dict[str, tuple[EntityDef, Any]] = {}
        self.link_columns: list[Column] = []
        self._n = 0

    def columns_of(self, element: Element, entity: EntityDef, table: Any, prefix: str) -> list[Column]:
        if element.find("all-attributes") is not None:
            names = list(entity.fields)
        else:
            names = [a.get("name", "").lower() for a in element.findall("attribute")]
        columns = []
        for n in names:
            f = entity.field(n)
            target = table.c[f.name + TARGET_SUFFIX] if f.type == "lookup" else None
            columns.append(Column(prefix + n, entity, n, table.c[f.name], target))
        return columns

    def walk(
        self,
        element: Element,
        entity: EntityDef,
        table: Any,
        from_clause: Any,
        conditions: list[Any],
        orders: list[Any],
    ) -> Any:
        for child in element:
            if child.tag == "filter":
                conditions.append(self.filter(child, entity, table))
            elif child.tag == "order":
                name = child.get("attribute", "").lower()
                column = table.c[entity.field(name).name]
                orders.append(
                    column.desc() if child.get("descending", "false").lower() == "true" else column.asc()
                )
            elif child.tag == "link-entity":
                from_clause = self.link(child, entity, table, from_clause, conditions, orders)
        return from_clause

    def link(
        self,
        element: Element,
        parent: EntityDef,
        parent_table: Any,
        from_clause: Any,
        conditions: list[Any],
        orders: list[Any],
    ) -> Any:
        linked = self.org.entity(element.get("name", ""))
        self._n += 1
        alias = element.get("alias") or linked.name
        table = self.org.tables[linked.name].alias(f"e{self._n}")
        self.aliases[alias] = (linked, table)
        from_name = element.get("from", "id").lower()
        to_name = element.get("to", "id").lower()
        on = table.c[linked.field(from_name).name] == parent_table.c[parent.field(to_name).name]
        link_conditions: list[Any] = []
        for child in element.findall("filter"):
            link_conditions.append(self.filter(child, linked, table))
        outer = element.get("link-type", "inner").lower() == "outer"
        if outer:
            from_clause = from_clause.outerjoin(table, sa.and_(on, *link_conditions))
        else:
            from_clause = from_clause.join(table, on)
            conditions.extend(link_conditions)
        self.link_columns.extend(self.columns_of(element, linked, table, prefix=f"{alias}."))
        for child in element:
            if child.tag == "order":
                name = child.get("attribute", "").lower()
                column = table.c[linked.field(name).name]
                orders.append(
                    column.desc() if child.get("descending", "false").lower() == "true" else column.asc()
                )
            elif child.tag == "link-entity":
                from_clause = self.link(child, linked, table, from_clause, conditions, orders)
        return from_clause

    def filter(self, element: Element, entity: EntityDef, table: Any) -> Any:
        parts: list[Any] = []
        for child in element:
            if child.tag == "condition":
                parts.append(self.condition(child, entity, table))
            elif child.tag == "filter":
                parts.append(self.filter(child, entity, table))
        if not parts:
            return sa.true()
        return sa.or_(*parts) if element.get("type", "and").lower() == "or" else sa.and_(*parts)

    def condition(self, element: Element, entity: EntityDef, table: Any) -> Any:
        if element.get("entityname"):
            entity, table = self.aliases.get(element.get("entityname", ""), (None, None))  # type: ignore[assignment]
            if entity is None:
                raise SchemaError(f"Unknown entityname '{element.get('entityname')}' in condition.")
        name = element.get("attribute", "").lower()
        f = entity.field(name)
        column = table.c[f.name]
        op = element.get("operator", "").lower()
        if op not in _OPERATORS:
            raise SchemaError(f"Condition operator '{op}' is not supported.")
        raw_values = [v.text or "" for v in element.findall("value")]
        value = element.get("value")

        def conv(text: str | None) -> Any:
            if text is None:
                raise SchemaError(f"Condition on '{name}' with operator '{op}' needs a value.")
            return f.to_db(text)

        if op in ("null", "not-null"):
            return column.is_(None) if op == "null" else column.is_not(None)
        if op in ("eq-userid", "ne-userid"):
            return column == self.user_id if op == "eq-userid" else column != self.user_id
        if op in ("in", "not-in"):
            values = [conv(v) for v in raw_values] or ([conv(value)] if value is not None else [])
            return column.in_(values) if op == "in" else column.not_in(values)
        if op in ("between", "not-between"):
            if len(raw_values) != 2:
                raise SchemaError(f"Operator '{op}' needs two <value> elements.")
            low, high = conv(raw_values[0]), conv(raw_values[1])
            return column.between(low, high) if op == "between" else sa.not_(column.between(low, high))
        if op in ("like", "not-like"):
            text = value if value is not None else (raw_values[0] if raw_values else None)
            if text is None:
                raise SchemaError(f"Condition on '{name}' needs a value.")
            return column.like(text) if op == "like" else column.not_like(text)
        if op in ("begins-with", "not-begin-with", "ends-with", "not-end-with"):
            text = value or ""
            clause = (
                column.startswith(text, autoescape=True)
                if "begin" in op
                else column.endswith(text, autoescape=True)
            )
            return clause if not op.startswith("not-") else sa.not_(clause)
        operand = conv(value if value is not None else (raw_values[0] if raw_values else None))
        # Only the requested comparison is built: SQLAlchemy refuses ordering operators on booleans.
        compare = {
            "eq": lambda: column == operand,
            "ne": lambda: column != operand,
            "neq": lambda: column != operand,
            "gt": lambda: column > operand,
            "ge": lambda: column >= operand,
            "lt": lambda: column < operand,
            "le": lambda: column <= operand,
        }
        return compare[op]()
