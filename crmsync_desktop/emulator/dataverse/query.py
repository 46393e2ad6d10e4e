"""Reading rows: OData collection/single-row queries, ``$expand``, paging with opaque nextLinks, change
tracking (delta links, tombstones), and the row serializer shared with FetchXML.

Collection pages (OData, change tracking, FetchXML) are rendered to JSON text by SQLite itself
(``rowjson``); ``serialize`` (SQLite tuples -> dicts through a precomputed column plan) is the
reference encoding, used for single rows, ``$expand``, formatted values and whatever ``rowjson``
declines.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from defusedxml import ElementTree

from . import errors, rowjson
from .conditions import QueryContext
from .metadata import Attr, Entity, q
from .odata import (
    MAX_PAGE_SIZE,
    Annotations,
    ExpandItem,
    filter_sql,
    parse_expand,
    parse_orderby,
    parse_select,
)
from .values import formatted

COUNT_LIMIT = 5000
_BOOL, _LOOKUP = 1, 2
_DELTA_DATE = "%m/%d/%Y %H:%M:%S"


@dataclass
class ReadEnv:
    org: Any  # DataverseOrg (not imported: avoids a cycle)
    root: str  # service root, e.g. http://127.0.0.1:8000/api/data/v9.2
    ann: Annotations
    ctx: QueryContext
    query: dict[str, str]
    raw_query: str

    @property
    def md(self) -> Any:
        return self.org.md

    @property
    def conn(self) -> Any:
        return self.org.conn


# ---- column plans and serialization -------------------------------------------------------------------
@dataclass
class Plan:
    ent: Entity
    attrs: list[Attr]
    sql: str  # select list
    specs: list[tuple[str, int, int, Attr]]  # (json key, tuple index, kind, attr)
    pk_index: int
    cols: list[str]  # the select list's columns (qualified), by tuple index


def make_plan(ent: Entity, names: list[str], alias: str | None = None) -> Plan:
    prefix = q(alias or ent.logical) + "."
    cols = [prefix + "versionnumber"]
    specs = []
    attrs = []
    pk_index = 0
    for name in names:
        a = ent.attrs[name]
        attrs.append(a)
        idx = len(cols)
        cols.append(prefix + q(a.logical))
        if a.logical == ent.pk:
            pk_index = idx
        if a.is_lookup:
            cols.append(prefix + q(a.type_column))
            specs.append((a.odata_name, idx, _LOOKUP, a))
        else:
            specs.append((a.logical, idx, _BOOL if a.atype == "Boolean" else 0, a))
    return Plan(ent, attrs, ", ".join(cols), specs, pk_index, cols)


def context_select(ent: Entity, select_text: str | None) -> str:
    if not select_text:
        return ""
    names = []
    for item in select_text.split(","):
        a = ent.attr_by_odata(item.strip())
        if a is not None:
            names.append(a.odata_name)
    return "(" + ",".join(names) + ")"


def serialize(env: ReadEnv, plan: Plan, rows: list[tuple[Any, ...]], *, omit_nulls: bool = False,
              key_prefix: str = "", etag: bool = True) -> list[dict[str, Any]]:
    specs = plan.specs
    ann = env.ann
    if not ann.any and not omit_nulls and not key_prefix:
        out = []
        plain = [(k, i) for k, i, kind, _ in specs if kind != _BOOL]
        bools = [(k, i) for k, i, kind, _ in specs if kind == _BOOL]
        for r in rows:
            d = {"@odata.etag": f'W/"{r[0]}"'} if etag else {}
            for k, i in plain:
                d[k] = r[i]
            for k, i in bools:
                v = r[i]
                d[k] = None if v is None else v != 0
            out.append(d)
        return out
    names = lookup_names(env, plan, rows) if ann.formatted else {}
    out = []
    for r in rows:
        d = {"@odata.etag": f'W/"{r[0]}"'} if etag else {}
        for k, i, kind, a in specs:
            v = r[i]
            if v is None:
                if not omit_nulls:
                    d[key_prefix + k] = None
                continue
            key = key_prefix + k
            if kind == _BOOL:
                v = v != 0
            d[key] = v
            if kind == _LOOKUP:
                target = r[i + 1] or (a.targets[0] if a.targets else None)
                if ann.formatted:
                    name = names.get((target, v))
                    if name is not None:
                        d[key + "@" + Annotations.FORMATTED] = name
                if ann.wants(Annotations.NAV):
                    d[key + "@" + Annotations.NAV] = _nav_name(plan.ent, a, target)
                if ann.wants(Annotations.LOOKUP_NAME):
                    d[key + "@" + Annotations.LOOKUP_NAME] = target
            elif ann.formatted:
                f = formatted(a, r[i])
                if f is not None:
                    d[key + "@" + Annotations.FORMATTED] = f
        out.append(d)
    return out


def _nav_name(ent: Entity, a: Attr, target: str | None) -> str:
    for nav in ent.navs.values():
        if nav.attr == a.logical and (target in nav.targets or a.logical == "ownerid"):
            return nav.name
    return a.logical


def lookup_names(env: ReadEnv, plan: Plan, rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], str]:
    wanted: dict[str, set[str]] = defaultdict(set)
    for _, i, kind, a in plan.specs:
        if kind != _LOOKUP:
            continue
        for r in rows:
            if r[i] is not None:
                wanted[r[i + 1] or a.targets[0]].add(r[i])
    names: dict[tuple[str, str], str] = {}
    for target, ids in wanted.items():
        ent = env.md.entities.get(target)
        if ent is None or not ent.primary_name:
            continue
        id_list = list(ids)
        for start in range(0, len(id_list), 900):
            chunk = id_list[start:start + 900]
            sql = (f"SELECT {q(ent.pk)}, {q(ent.primary_name)} FROM {q(ent.logical)} WHERE {q(ent.pk)} IN "
                   f"({', '.join('?' for _ in chunk)})")
            for rid, name in env.conn.execute(sql, chunk):
                if name is not None:
                    names[(target, rid)] = name
    return names


@dataclass
class Page:
    """One page of rows: ``rows`` as fetched (the row after the page included, when there is one), ``items`` the
    first ``limit`` of them as JSON texts (``encoded``, by ``rowjson``) or as ``serialize`` dicts."""

    rows: list[tuple[Any, ...]]
    items: list[Any]  # encoded: pieces of text (rowjson.render), else one dict per row
    encoded: bool
    version: int  # index of versionnumber in a row
    pk: int  # index of the primary key in a row
    count: int  # rows in the page

    def value(self, extra: list[dict[str, Any]] | None = None) -> Any:
        """The body's ``value``: the rows, then ``extra`` objects."""
        if self.encoded:
            return rowjson.array(self.items, extra)
        return self.items + list(extra or ())


def select_page(env: ReadEnv, plan: Plan, tail: str, params: Any, limit: int, *, fast: bool = True) -> Page:
    """``SELECT <plan's row> <tail>`` (FROM/WHERE/ORDER BY/LIMIT) and the first ``limit`` rows as a body's value."""
    rr = rowjson.row_renderer(plan, env.ann, env.conn) if fast else None
    if rr is not None:
        rows = rowjson.fetch(env.conn, f"SELECT {rr.select}{tail}", params)
        if rows is not None:
            pieces = rowjson.render(rr, rows[:limit])
            if pieces is not None:
                return Page(rows, pieces, True, rr.VERSION, rr.PK, min(len(rows), limit))
    rows = env.conn.execute(f"SELECT {plan.sql}{tail}", params).fetchall()
    value = serialize(env, plan, rows[:limit])
    return Page(rows, value, False, 0, plan.pk_index, len(value))


# ---- paging cookies ------------------------------------------------------------------------------------
def make_cookie(page: int, inner_attrs: dict[str, str], tracking: bool = False) -> str:
    """``<cookie pagenumber=".." pagingcookie="<double-encoded inner cookie>" istracking=".."/>``."""
    inner = "<cookie page=\"%d\">" % (page - 1) + "".join(
        f'<{k} last="{_xml_attr(v)}" />' for k, v in inner_attrs.items()) + "</cookie>"
    encoded = quote(quote(inner, safe=""), safe="")
    return (f'<cookie pagenumber="{page}" pagingcookie="{encoded}" '
            f'istracking="{"True" if tracking else "False"}" />')


def _xml_attr(v: str) -> str:
    return v.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def parse_inner_cookie(encoded_or_xml: str) -> tuple[int, dict[str, str]]:
    """Inner paging cookie (URL-encoded once or twice, or already XML) -> (page, {element: last})."""
    text = encoded_or_xml
    for _ in range(3):
        if text.lstrip().startswith("<"):
            break
        text = unquote(text)
    try:
        root = ElementTree.fromstring(text)
    except Exception:
        raise errors.DataverseError(400, errors.QUERY_BUILDER_INVALID_PAGING_COOKIE,
                                    "The paging cookie is not valid.") from None
    page = int(root.get("page", "0") or 0)
    return page, {child.tag: child.get("last", "") for child in root}


def parse_skiptoken(token: str) -> tuple[int, dict[str, str]]:
    try:
        root = ElementTree.fromstring(token)
        page = int(root.get("pagenumber", "1"))
        _, inner = parse_inner_cookie(root.get("pagingcookie", ""))
    except errors.DataverseError:
        raise
    except Exception:
        raise errors.bad_request("The $skiptoken is not valid.") from None
    return page, inner


def link_with(env: ReadEnv, path: str, drop: tuple[str, ...], add: tuple[str, str] | None) -> str:
    """Rebuild a link from the raw query string (kept verbatim), dropping and adding options."""
    parts = [p for p in env.raw_query.split("&") if p and unquote(p.split("=", 1)[0]) not in drop]
    if add is not None:
        parts.append(f"{add[0]}={quote(add[1], safe='')}")
    return f"{env.root}/{path}" + ("?" + "&".join(parts) if parts else "")


# ---- collection queries ----------------------------------------------------------------------------------
def page_size(prefer: dict[str, str]) -> tuple[int, bool]:
    raw = prefer.get("odata.maxpagesize")
    if raw is None:
        return MAX_PAGE_SIZE, False
    try:
        n = int(raw)
    except ValueError:
        raise errors.bad_request(f"Invalid odata.maxpagesize '{raw}'.") from None
    if n < 1 or n > MAX_PAGE_SIZE:
        raise errors.bad_request(f"The odata.maxpagesize preference must be between 1 and {MAX_PAGE_SIZE}.",
                                 errors.INVALID_ARGUMENT)
    return n, True


def where_clause(env: ReadEnv, ent: Entity, filter_text: str | None) -> tuple[list[str], dict[str, Any]]:
    if not filter_text:
        return [], {}
    aliases = {k: v for k, v in env.query.items() if k.startswith("@")}
    sql, params = filter_sql(env.md, ent, filter_text, env.ctx, aliases)
    return [f"({sql})"], params


def read_collection(env: ReadEnv, ent: Entity, path: str, prefer: dict[str, str], *,
                    extra_where: str | None = None, extra_params: dict[str, Any] | None = None,
                    context: str | None = None) -> tuple[dict[str, Any], list[str], int]:
    qopts = env.query
    unsupported = [o for o in ("$skip", "$apply", "$search") if o in qopts]
    if unsupported:
        raise errors.bad_request(f"The query parameter {unsupported[0]} is not supported.")
    size, size_applied = page_size(prefer)
    applied = [f"odata.maxpagesize={size}"] if size_applied else []
    names = parse_select(ent, qopts.get("$select"))
    plan = make_plan(ent, names)
    expands = parse_expand(qopts.get("$expand"))
    wheres, params = where_clause(env, ent, qopts.get("$filter"))
    if extra_where:
        wheres.append(extra_where)
        params.update(extra_params or {})
    orderby = parse_orderby(ent, qopts.get("$orderby"))
    top = None
    if "$top" in qopts:
        try:
            top = int(qopts["$top"])
        except ValueError:
            raise errors.bad_request(f"Invalid $top '{qopts['$top']}'.") from None
        if size_applied:
            top = None  # the current docs: $top is ignored when odata.maxpagesize is sent (guess documented)
    page = 1
    last_pk: str | None = None
    if "$skiptoken" in qopts:
        page, inner = parse_skiptoken(qopts["$skiptoken"])
        last_pk = inner.get(ent.pk) or None
        if last_pk:
            last_pk = last_pk.strip("{}").lower()
    order_sql = ", ".join(f"{q(ent.logical)}.{q(c)} {'DESC' if d else 'ASC'}" for c, d in orderby)
    order_sql = (order_sql + ", " if order_sql else "") + f"{q(ent.logical)}.{q(ent.pk)} ASC"
    limit = size if top is None else min(top, size)
    offset = 0
    if last_pk and not orderby:
        wheres.append(f"{q(ent.logical)}.{q(ent.pk)} > :_lastpk")
        params["_lastpk"] = last_pk
    elif page > 1:
        offset = (page - 1) * size
    where_sql = (" WHERE " + " AND ".join(wheres)) if wheres else ""
    page_ = select_page(env, plan, f" FROM {q(ent.logical)}{where_sql} ORDER BY {order_sql} "
                                   f"LIMIT {limit + 1} OFFSET {offset}", params, limit, fast=not expands)
    more = len(page_.rows) > limit and top is None
    rows = page_.rows[:limit]
    body: dict[str, Any] = {"@odata.context": context or
                            f"{env.root}/$metadata#{ent.set_name}{context_select(ent, qopts.get('$select'))}"}
    if qopts.get("$count", "").lower() == "true":
        base_where = [w for w in wheres if ":_lastpk" not in w]
        base_params = {k: v for k, v in params.items() if k != "_lastpk"}
        count_sql = (f"SELECT COUNT(*) FROM (SELECT 1 FROM {q(ent.logical)}"
                     f"{(' WHERE ' + ' AND '.join(base_where)) if base_where else ''} LIMIT {COUNT_LIMIT + 1})")
        total = env.conn.execute(count_sql, base_params).fetchone()[0]
        body["@odata.count"] = min(total, COUNT_LIMIT)
        if env.ann.wants("Microsoft.Dynamics.CRM.totalrecordcount"):
            body["@Microsoft.Dynamics.CRM.totalrecordcount"] = min(total, COUNT_LIMIT)
        if env.ann.wants("Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"):
            body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = total > COUNT_LIMIT
    if env.ann.wants("Microsoft.Dynamics.CRM.globalmetadataversion"):
        body["@Microsoft.Dynamics.CRM.globalmetadataversion"] = str(env.md.version)
    if expands:
        apply_expands(env, ent, plan, rows, page_.items, expands)
    body["value"] = page_.value()
    if more and rows:
        last = rows[-1][page_.pk]
        first = rows[0][page_.pk]
        cookie = make_cookie(page + 1, {ent.pk: "{" + str(last).upper() + "}"} if not orderby else
                             {ent.pk: "{" + str(first).upper() + "}"})
        body["@odata.nextLink"] = link_with(env, path, ("$skiptoken",), ("$skiptoken", cookie))
    return body, applied, len(rows)


def read_one(env: ReadEnv, ent: Entity, rid: str) -> tuple[dict[str, Any], int]:
    names = parse_select(ent, env.query.get("$select"))
    plan = make_plan(ent, names)
    row = env.conn.execute(f"SELECT {plan.sql} FROM {q(ent.logical)} WHERE {q(ent.pk)} = ?", (rid,)).fetchone()
    if row is None:
        raise errors.not_found(ent.logical, rid)
    value = serialize(env, plan, [row])
    expands = parse_expand(env.query.get("$expand"))
    if expands:
        apply_expands(env, ent, plan, [row], value, expands)
    body = {"@odata.context": f"{env.root}/$metadata#{ent.set_name}"
                              f"{context_select(ent, env.query.get('$select'))}/$entity"}
    body.update(value[0])
    return body, int(row[0])


# ---- $expand -----------------------------------------------------------------------------------------
def apply_expands(env: ReadEnv, ent: Entity, plan: Plan, rows: list[tuple[Any, ...]],
                  value: list[dict[str, Any]], expands: list[ExpandItem]) -> None:
    for item in expands:
        nav = ent.navs.get(item.nav)
        if nav is not None:
            _expand_single(env, ent, plan, rows, value, item, nav)
            continue
        cnav = ent.collection_navs.get(item.nav)
        if cnav is None:
            raise errors.bad_request(f"Could not find a property named '{item.nav}' on type "
                                     f"'Microsoft.Dynamics.CRM.{ent.logical}'.")
        _expand_collection(env, ent, plan, rows, value, item, cnav)


def _expand_single(env: ReadEnv, ent: Entity, plan: Plan, rows: list[tuple[Any, ...]],
                   value: list[dict[str, Any]], item: ExpandItem, nav: Any) -> None:
    a = ent.attrs[nav.attr]
    ids_by_target: dict[str, set[str]] = defaultdict(set)
    cur = env.conn.execute(
        f"SELECT {q(ent.pk)}, {q(a.logical)}, {q(a.type_column)} FROM {q(ent.logical)} WHERE {q(ent.pk)} IN "
        f"({', '.join('?' for _ in rows)})", [r[plan.pk_index] for r in rows]) if rows else []
    link = {}
    for rid, tid, ttype in cur:
        ttype = ttype or a.targets[0]
        if tid is not None and ttype in nav.targets:
            link[rid] = (ttype, tid)
            ids_by_target[ttype].add(tid)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for target, ids in ids_by_target.items():
        tent = env.md.entities[target]
        tplan = make_plan(tent, parse_select(tent, item.select))
        id_list = list(ids)
        for start in range(0, len(id_list), 900):
            chunk = id_list[start:start + 900]
            trows = env.conn.execute(f"SELECT {tplan.sql} FROM {q(tent.logical)} WHERE {q(tent.pk)} IN "
                                     f"({', '.join('?' for _ in chunk)})", chunk).fetchall()
            for tr, tv in zip(trows, serialize(env, tplan, trows)):
                found[(target, tr[tplan.pk_index])] = tv
    for r, v in zip(rows, value):
        key = link.get(r[plan.pk_index])
        v[item.nav] = found.get(key) if key else None


def _expand_collection(env: ReadEnv, ent: Entity, plan: Plan, rows: list[tuple[Any, ...]],
                       value: list[dict[str, Any]], item: ExpandItem, cnav: Any) -> None:
    other = env.md.entities[cnav.other]
    oplan = make_plan(other, parse_select(other, item.select))
    parent_ids = [r[plan.pk_index] for r in rows]
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    wheres, params = where_clause(env, other, item.filter)
    orderby = parse_orderby(other, item.orderby)
    order_sql = ", ".join(f"o.{q(c)} {'DESC' if d else 'ASC'}" for c, d in orderby) or f"o.{q(other.pk)}"
    oplan_alias = make_plan(other, [a.logical for a in oplan.attrs], alias="o")
    extra = "".join(" AND " + w.replace(f"{other.logical}.", "o.") for w in wheres)
    for start in range(0, len(parent_ids), 500):
        chunk = parent_ids[start:start + 500]
        marks = ", ".join(f":p{i}" for i in range(len(chunk)))
        p = dict(params)
        p.update({f"p{i}": v for i, v in enumerate(chunk)})
        if cnav.kind == "1n":
            sql = (f"SELECT o.{q(cnav.referencing_attr)}, {oplan_alias.sql} FROM {q(other.logical)} o "
                   f"WHERE o.{q(cnav.referencing_attr)} IN ({marks}){extra} ORDER BY {order_sql}")
        else:
            sql = (f"SELECT i.{q(cnav.self_attr)}, {oplan_alias.sql} FROM {q(cnav.intersect)} i JOIN "
                   f"{q(other.logical)} o ON o.{q(other.pk)} = i.{q(cnav.other_attr)} "
                   f"WHERE i.{q(cnav.self_attr)} IN ({marks}){extra} ORDER BY {order_sql}")
        fetched = env.conn.execute(sql, p).fetchall()
        trimmed = [r[1:] for r in fetched]
        for r, v in zip(fetched, serialize(env, oplan_alias, trimmed)):
            if item.top is None or len(children[r[0]]) < item.top:
                children[r[0]].append(v)
    for r, v in zip(rows, value):
        v[item.nav] = children.get(r[plan.pk_index], [])


# ---- change tracking -------------------------------------------------------------------------------------
def make_delta_token(version: int, when: dt.datetime) -> str:
    return f"{version}!{when.astimezone(dt.timezone.utc).strftime(_DELTA_DATE)}"


def parse_delta_token(env: ReadEnv, token: str) -> int:
    m = re.match(r"^(\d+)!(.+)$", token.strip())
    if not m:
        raise errors.bad_request("The $deltatoken is not valid.", errors.INVALID_ARGUMENT)
    try:
        issued = dt.datetime.strptime(m.group(2), _DELTA_DATE).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise errors.bad_request("The $deltatoken is not valid.", errors.INVALID_ARGUMENT) from None
    version = int(m.group(1))
    days = env.org.change_tracking_days
    if version < env.org.expired_below_version or env.ctx.now - issued > dt.timedelta(days=days):
        raise errors.expired_version_stamp()
    return version


def check_tracking_options(env: ReadEnv, ent: Entity) -> None:
    if not ent.change_tracking:
        raise errors.bad_request(f"Change tracking is not enabled for the entity '{ent.logical}'.",
                                 errors.INVALID_ARGUMENT)
    for opt in ("$filter", "$orderby", "$expand", "$top"):
        if opt in env.query:
            raise errors.bad_request(f'The "{opt}" query parameter isn\'t supported when Change Tracking is enabled.')


def read_tracked_initial(env: ReadEnv, ent: Entity, path: str, prefer: dict[str, str]
                         ) -> tuple[dict[str, Any], list[str], int]:
    """First ``Prefer: odata.track-changes`` read: every row, deltaLink on the last page."""
    check_tracking_options(env, ent)
    size, size_applied = page_size(prefer)
    plan = make_plan(ent, parse_select(ent, env.query.get("$select")))
    snapshot, last_pk = None, None
    if "$skiptoken" in env.query:
        page, inner = parse_skiptoken(env.query["$skiptoken"])
        snapshot = int(inner.get("snapshot") or 0) or None
        last_pk = (inner.get(ent.pk) or "").strip("{}").lower() or None
    else:
        page = 1
    if snapshot is None:
        snapshot = env.org.current_version
    where, params = "", []
    if last_pk:
        where, params = f" WHERE {q(ent.pk)} > ?", [last_pk]
    page_ = select_page(env, plan, f" FROM {q(ent.logical)}{where} ORDER BY {q(ent.pk)} LIMIT {size + 1}", params,
                        size)
    more = len(page_.rows) > size
    rows = page_.rows[:size]
    body: dict[str, Any] = {"@odata.context": f"{env.root}/$metadata#{ent.set_name}"
                                              f"{context_select(ent, env.query.get('$select'))}",
                            "value": page_.value()}
    if more:
        cookie = make_cookie(page + 1, {ent.pk: "{" + str(rows[-1][page_.pk]).upper() + "}",
                                        "snapshot": str(snapshot)}, tracking=True)
        body["@odata.nextLink"] = link_with(env, path, ("$skiptoken",), ("$skiptoken", cookie))
    else:
        token = make_delta_token(snapshot, env.ctx.now)
        body["@odata.deltaLink"] = link_with(env, path, ("$skiptoken", "$deltatoken"), ("$deltatoken", token))
    applied = ["odata.track-changes"] + ([f"odata.maxpagesize={size}"] if size_applied else [])
    return body, applied, len(rows)


def read_delta(env: ReadEnv, ent: Entity, path: str, prefer: dict[str, str]) -> tuple[dict[str, Any], list[str], int]:
    """A deltaLink read: changed rows (by version), then ``$deletedEntity`` tombstones, new deltaLink."""
    check_tracking_options(env, ent)
    since = parse_delta_token(env, env.query["$deltatoken"])
    size, size_applied = page_size(prefer)
    plan = make_plan(ent, parse_select(ent, env.query.get("$select")))
    phase, last, until = "r", since, env.org.current_version
    page = 1
    if "$skiptoken" in env.query:
        page, inner = parse_skiptoken(env.query["$skiptoken"])
        phase = inner.get("phase", "r")
        last = int(inner.get("after") or since)
        until = int(inner.get("until") or until)
    page_: Page | None = None
    stone_values: list[dict[str, Any]] = []
    more, next_state = False, None
    if phase == "r":
        page_ = select_page(env, plan, f" FROM {q(ent.logical)} WHERE versionnumber > ? AND versionnumber <= ? "
                                       f"ORDER BY versionnumber LIMIT {size + 1}", (last, until), size)
        if len(page_.rows) > size:
            more, next_state = True, ("r", int(page_.rows[size - 1][page_.version]))
        if not more:
            phase, last = "t", since
    if phase == "t" and not more:
        room = size - (page_.count if page_ is not None else 0)
        stones = env.conn.execute(
            f"SELECT id, MAX(versionnumber) AS v FROM _tombstone WHERE entity = ? AND versionnumber > ? AND "
            f"versionnumber <= ? AND id NOT IN (SELECT {q(ent.pk)} FROM {q(ent.logical)}) GROUP BY id "
            f"ORDER BY v LIMIT {room + 1}", (ent.logical, last, until)).fetchall()
        if len(stones) > room:
            stones = stones[:room]
            more, next_state = True, ("t", int(stones[-1][1]) if stones else last)
        ctx = f"{env.root}/$metadata#{ent.set_name}/$deletedEntity"
        stone_values = [{"@odata.context": ctx, "id": sid, "reason": "deleted"} for sid, _ in stones]
    value: Any = page_.value(stone_values) if page_ is not None else stone_values
    n = (page_.count if page_ is not None else 0) + len(stone_values)
    body: dict[str, Any] = {"@odata.context": f"{env.root}/$metadata#{ent.set_name}"
                                              f"{context_select(ent, env.query.get('$select'))}/$delta",
                            "value": value}
    if more and next_state is not None:
        cookie = make_cookie(page + 1, {"phase": next_state[0], "after": str(next_state[1]), "until": str(until)},
                             tracking=True)
        body["@odata.nextLink"] = link_with(env, path, ("$skiptoken",), ("$skiptoken", cookie))
    else:
        body["@odata.deltaLink"] = link_with(env, path, ("$skiptoken", "$deltatoken"),
                                             ("$deltatoken", make_delta_token(until, env.ctx.now)))
    applied = ["odata.track-changes"] + ([f"odata.maxpagesize={size}"] if size_applied else [])
    return body, applied, n


def count_rows(env: ReadEnv, ent: Entity) -> int:
    if "$deltatoken" in env.query:
        since = parse_delta_token(env, env.query["$deltatoken"])
        changed = env.conn.execute(f"SELECT COUNT(*) FROM {q(ent.logical)} WHERE versionnumber > ?",
                                   (since,)).fetchone()[0]
        deleted = env.conn.execute(
            f"SELECT COUNT(DISTINCT id) FROM _tombstone WHERE entity = ? AND versionnumber > ? AND id NOT IN "
            f"(SELECT {q(ent.pk)} FROM {q(ent.logical)})", (ent.logical, since)).fetchone()[0]
        return int(changed + deleted)
    wheres, params = where_clause(env, ent, env.query.get("$filter"))
    where_sql = (" WHERE " + " AND ".join(wheres)) if wheres else ""
    total = env.conn.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {q(ent.logical)}{where_sql} "
                             f"LIMIT {COUNT_LIMIT + 1})", params).fetchone()[0]
    return int(min(total, COUNT_LIMIT))
