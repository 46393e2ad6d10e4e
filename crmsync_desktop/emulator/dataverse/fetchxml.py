"""FetchXML through the Web API (``GET <set>?fetchXml=...``): attributes, orders, nested filters,
conditions (see ``conditions``), link-entities (inner/outer/exists/any/not-any), ``count``/``page``
paging with paging cookies and ``morerecords``. Parsed with defusedxml.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from . import errors, rowjson
from .conditions import condition
from .metadata import Entity, q
from .query import Plan, ReadEnv, make_cookie, make_plan, parse_inner_cookie, serialize

SIMPLE_PAGING_LIMIT = 50000


@dataclass
class _Link:
    ent: Entity
    alias: str
    plan: Plan | None
    join_sql: str
    params: list[Any] = field(default_factory=list)


@dataclass
class _Build:
    env: ReadEnv
    aliases: dict[str, Entity] = field(default_factory=dict)
    links: list[_Link] = field(default_factory=list)
    wheres: list[tuple[str, list[Any]]] = field(default_factory=list)  # (sql, its parameters)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))


def _bad(message: str) -> errors.DataverseError:
    return errors.bad_request(message, errors.INVALID_ARGUMENT)


def _attr(ent: Entity, name: str | None) -> Any:
    a = ent.attrs.get(name or "")
    if a is None:
        raise _bad(f"'{ent.logical}' entity doesn't contain attribute with Name = '{name}'.")
    return a


def _select_names(ent: Entity, node: Element) -> list[str] | None:
    if node.find("all-attributes") is not None:
        return list(ent.attrs)
    names = [_attr(ent, a.get("name")).logical for a in node.findall("attribute")]
    return names or None


def _filter_sql(b: _Build, ent: Entity, alias: str, node: Element) -> tuple[str, list[Any]]:
    joiner = " OR " if (node.get("type") or "and").lower() == "or" else " AND "
    parts: list[str] = []
    params: list[Any] = []
    for child in node:
        if child.tag == "condition":
            c_alias = child.get("entityname") or alias
            c_ent = b.aliases.get(c_alias)
            if c_ent is None:
                raise _bad(f"No link-entity with alias '{c_alias}'.")
            a = _attr(c_ent, child.get("attribute"))
            values = [v.text or "" for v in child.findall("value")]
            if child.get("value") is not None:
                values.insert(0, child.get("value") or "")
            if child.get("valueof"):
                other = _attr(c_ent, child.get("valueof"))
                ops = {"eq": "=", "ne": "<>", "neq": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
                op = ops.get((child.get("operator") or "").lower())
                if op is None:
                    raise _bad("valueof supports only comparison operators.")
                parts.append(f"{q(c_alias)}.{q(a.logical)} {op} {q(c_alias)}.{q(other.logical)}")
                continue
            sql, p = condition(f"{q(c_alias)}.{q(a.logical)}", a, child.get("operator") or "", values, b.env.ctx)
            parts.append(sql)
            params.extend(p)
        elif child.tag == "filter":
            sql, p = _filter_sql(b, ent, alias, child)
            if sql:
                parts.append(sql)
                params.extend(p)
    return ("(" + joiner.join(parts) + ")" if parts else ""), params


def _link(b: _Build, parent: Entity, parent_alias: str, node: Element) -> None:
    name = node.get("name")
    ent = b.env.md.entities.get(name or "")
    if ent is None:
        raise _bad(f"Could not find an entity with name '{name}'.")
    alias = node.get("alias") or f"{ent.logical}{next(b.counter)}"
    if alias in b.aliases:
        raise _bad(f"Duplicate link-entity alias '{alias}'.")
    b.aliases[alias] = ent
    from_attr = _attr(ent, node.get("from")).logical
    to_attr = _attr(parent, node.get("to")).logical
    link_type = (node.get("link-type") or "inner").lower()
    on = f"{q(alias)}.{q(from_attr)} = {q(parent_alias)}.{q(to_attr)}"
    filters = [f for f in node.findall("filter")]
    if link_type in ("inner", "outer"):
        names = _select_names(ent, node)
        plan = make_plan(ent, names, alias=alias) if names else None
        join_params: list[Any] = []
        on_extra = ""
        for f in filters:
            sql, p = _filter_sql(b, ent, alias, f)
            if sql:  # an outer link's filter restricts the join; an inner link's filter restricts rows
                on_extra += " AND " + sql
                join_params.extend(p)
        kind = "LEFT JOIN" if link_type == "outer" else "JOIN"
        b.links.append(_Link(ent, alias, plan, f" {kind} {q(ent.logical)} {q(alias)} ON {on}{on_extra}",
                             join_params))
        for child in node.findall("link-entity"):
            _link(b, ent, alias, child)
        return
    if link_type in ("exists", "in", "any", "not-any"):
        sub_where, sub_params = [on], []
        for f in filters:
            sql, p = _filter_sql(b, ent, alias, f)
            if sql:
                sub_where.append(sql)
                sub_params.extend(p)
        neg = "NOT " if link_type == "not-any" else ""
        b.wheres.append((f"{neg}EXISTS (SELECT 1 FROM {q(ent.logical)} {q(alias)} WHERE "
                         f"{' AND '.join(sub_where)})", sub_params))
        return
    raise _bad(f"The link-type '{link_type}' is not supported by the emulator.")


def run_fetch(env: ReadEnv, ent: Entity, fetch_text: str) -> tuple[dict[str, Any], int]:
    try:
        root = ElementTree.fromstring(fetch_text)
    except Exception as e:
        raise _bad(f"Invalid FetchXML: {e}") from None
    if root.tag != "fetch":
        raise _bad("The root element of FetchXML must be <fetch>.")
    enode = root.find("entity")
    if enode is None or enode.get("name") != ent.logical:
        raise _bad(f"The entity name in FetchXML doesn't match the entity set '{ent.set_name}'.")
    if root.get("aggregate", "false").lower() == "true":
        raise _bad("Aggregate FetchXML queries are not supported by the emulator.")
    b = _Build(env)
    b.aliases[ent.logical] = ent
    base_alias = ent.logical
    names = _select_names(ent, enode) or [ent.pk]
    if ent.pk not in names:
        names.insert(0, ent.pk)
    plan = make_plan(ent, names, alias=base_alias)
    for child in enode.findall("link-entity"):
        _link(b, ent, base_alias, child)
    for f in enode.findall("filter"):
        sql, p = _filter_sql(b, ent, base_alias, f)
        if sql:
            b.wheres.append((sql, p))
    orders = []
    for o in enode.findall("order"):
        if o.get("alias"):
            raise _bad("Ordering by an aggregate alias is not supported by the emulator.")
        a = _attr(ent, o.get("attribute"))
        orders.append(f"{q(base_alias)}.{q(a.logical)} {'DESC' if o.get('descending') == 'true' else 'ASC'}")
    top = root.get("top")
    count = root.get("count")
    page = int(root.get("page") or 1)
    if top and (count or root.get("page")):
        raise _bad("The top attribute can't be specified with paging attribute page or count.")
    size = int(count or 5000)
    if size < 1 or size > 5000:
        raise _bad("The count attribute must be between 1 and 5000.")
    cookie = root.get("paging-cookie")
    keyset = None
    if cookie and not orders and page > 1:
        _, inner = parse_inner_cookie(cookie)
        last = inner.get(ent.pk)
        if last:
            keyset = last.strip("{}").lower()
    if not cookie and not top and page * size > SIMPLE_PAGING_LIMIT:
        raise errors.DataverseError(400, "0x8004430A",
                                    "Paging without a paging cookie is limited to 50000 records.")
    select_cols = [plan.sql] + [link.plan.sql for link in b.links if link.plan]
    wheres = [w for w, _ in b.wheres]
    params = [p for link in b.links for p in link.params] + [p for _, ps in b.wheres for p in ps]
    if keyset:
        wheres.append(f"{q(base_alias)}.{q(ent.pk)} > ?")
        params.append(keyset)
    order_sql = ", ".join(orders + [f"{q(base_alias)}.{q(ent.pk)} ASC"])
    distinct = "DISTINCT " if root.get("distinct", "false").lower() == "true" else ""
    limit = int(top) if top else size
    offset = 0 if (top or keyset) else (page - 1) * size
    tail = (f" FROM {q(ent.logical)} {q(base_alias)}{''.join(link.join_sql for link in b.links)}"
            f"{(' WHERE ' + ' AND '.join(wheres)) if wheres else ''} ORDER BY {order_sql} "
            f"LIMIT {limit + 1} OFFSET {offset}")
    value: Any = None
    # The rows as JSON text rendered by SQLite (see rowjson); DISTINCT compares the columns, so not with it.
    rr = None if distinct else rowjson.row_renderer(
        plan, env.ann, env.conn, omit_nulls=True,
        links=tuple((link.plan, link.alias + ".") for link in b.links if link.plan is not None))
    if rr is not None:
        rows = rowjson.fetch(env.conn, f"SELECT {rr.select}{tail}", params)
        if rows is not None:
            more = len(rows) > limit and not top
            rows = rows[:limit]
            pieces = rowjson.render(rr, rows)
            if pieces is not None:
                value = rowjson.array(pieces)
                last_pk = rows[-1][rr.PK] if rows else None
    if value is None:
        try:
            rows = env.conn.execute(f"SELECT {distinct}{', '.join(select_cols)}{tail}", params).fetchall()
        except Exception as e:  # sqlite3 errors from odd FetchXML are the client's fault
            raise _bad(f"The FetchXML query could not be executed: {e}") from None
        more = len(rows) > limit and not top
        rows = rows[:limit]
        width = len(plan.sql.split(", "))
        base_rows = [r[:width] for r in rows]
        value = serialize(env, plan, base_rows, omit_nulls=True)
        start = width
        for link in b.links:
            if link.plan is None:
                continue
            w = len(link.plan.sql.split(", "))
            link_rows = [r[start:start + w] for r in rows]
            for v, lv in zip(value, serialize(env, link.plan, link_rows, omit_nulls=True,
                                              key_prefix=link.alias + ".", etag=False)):
                v.update(lv)
            start += w
        last_pk = base_rows[-1][plan.pk_index] if base_rows else None
    body: dict[str, Any] = {"@odata.context": f"{env.root}/$metadata#{ent.set_name}"}
    if root.get("returntotalrecordcount", "false").lower() == "true" and env.ann.wants(
            "Microsoft.Dynamics.CRM.totalrecordcount"):
        body["@Microsoft.Dynamics.CRM.totalrecordcount"] = -1
    if more and env.ann.wants("Microsoft.Dynamics.CRM.fetchxmlpagingcookie"):
        body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"] = make_cookie(page + 1,
                                                                           {ent.pk: "{" + str(last_pk).upper() + "}"})
    if more and env.ann.wants("Microsoft.Dynamics.CRM.morerecords"):
        body["@Microsoft.Dynamics.CRM.morerecords"] = True
    body["value"] = value
    return body, len(rows)
