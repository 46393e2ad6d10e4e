"""Collection pages rendered as JSON text by SQLite: the hot path of paged reads.

``query.serialize`` builds one dict per row and ``json.dumps`` encodes the page; on a 5,000-row page
that (plus turning every column into a Python object) was most of the emulator's CPU. Here the
SELECT list itself makes each row's JSON text with one ``json_object`` call, and Python only glues
the rows together:

* booleans are ``json('true')`` / ``json('false')`` (JSON values that json_object inserts as they are);
* lookup annotations exist only on a set lookup, so a run of annotated lookups is a ``CASE``: all set
  or all null (the usual rows) are still one ``json_object``; other rows join their members with ``||``;
* floating-point values: SQLite prints doubles with 15 significant digits where Python's ``json``
  prints the shortest repr that round-trips. Both print a whole number below 10**15 as ``123.0``, so
  SQLite prints those; any other REAL member is a marker (``[""]``, which no scalar member can
  produce: a ``"`` inside a string is always escaped; not an object either, whose ``}`` the trimming
  of runs of members below would take) and the value also comes back as a number, which Python
  prints into the marker's place;
* FetchXML leaves null members out: the row is then ``json_patch('{}', <row>)`` (a merge patch drops them).

The text is byte for byte what ``serialize`` followed by ``json.dumps(..., ensure_ascii=False,
separators=(",", ":"))`` gives for the same rows (same members, same order, same escaping). Where
that cannot be guaranteed, the caller falls back to ``serialize``:

* formatted values are requested (Python formatting and primary-name look-ups), a column is selected
  twice, or a lookup has no target table: :func:`row_renderer` returns ``None``;
* a row whose INTEGER column holds a non-integer (SQLite would print it), whose REAL column holds text
  or an infinity, or whose ``versionnumber`` is not an integer (its primary key then comes back NULL):
  :func:`render` returns ``None``;
* a BLOB in a member: SQLite refuses it, :func:`fetch` returns ``None`` (the reference path then fails as always);
* an SQLite whose JSON functions do not behave as described (:func:`available`, checked once).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from .metadata import Entity, sql_type
from .odata import Annotations

_MAX = "1.7976931348623157e308"  # DBL_MAX: beyond it a REAL is an infinity (json: Infinity / -Infinity)
MARK = b'[""]'  # stands for a float in a row's text (see the module docstring)
_MARK_SQL = "json('[\"\"]')"
_TRUE_SQL, _FALSE_SQL = "json('true')", "json('false')"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class RawJson:
    """Already encoded JSON (UTF-8) standing for one value of a response body (``service.json_response`` splices it
    in): the concatenation of ``parts`` (kept apart so that a 5,000-row page is copied once, into the body)."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts


def body_parts(body: Any) -> list[bytes]:
    """``json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()`` in pieces, with :class:`RawJson`
    members spliced in."""
    if not (isinstance(body, dict) and any(type(v) is RawJson for v in body.values())):
        return [_dumps(body).encode()]
    parts = [b"{"]
    for k, v in body.items():
        if len(parts) > 1:
            parts.append(b",")
        parts.append((_dumps(k) + ":").encode())
        if type(v) is RawJson:
            parts.extend(v.parts)
        else:
            parts.append(_dumps(v).encode())
    parts.append(b"}")
    return parts


def array(rows: list[bytes], extra: list[Any] | None = None) -> RawJson:
    """A JSON array: ``rows`` (what :func:`render` returned: encoded rows, comma-separated), then ``extra`` values."""
    parts = [b"["]
    parts.extend(rows)
    for value in extra or ():
        if len(parts) > 1:
            parts.append(b",")
        parts.append(_dumps(value).encode())
    parts.append(b"]")
    return RawJson(parts)


# ---- the SQLite check --------------------------------------------------------------------------------
_available: bool | None = None
_PROBE_TEXT = "".join(chr(c) for c in range(0x80)) + "\u00e9\u20ac\U0001f600\u2028\u2029\ufeff"
_WHOLE = (0.0, 1.0, -1.0, 10.0, 123456.0, -987654321.0, 100000000000000.0, 562949953421312.0, 999999999999999.0,
          -999999999999999.0)


def available(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite's JSON functions behave as this module expects (checked once per process)."""
    global _available
    if _available is None:
        mark = f"CASE WHEN ?2 IS NULL THEN NULL ELSE {_MARK_SQL} END"
        boolean = f"CASE WHEN ?2 IS NULL THEN NULL WHEN ?2 <> 0 THEN {_TRUE_SQL} ELSE {_FALSE_SQL} END"
        row = (f"json_object('a', ?1, 'b', 9007199254740993, 'c', NULL, 'd', -7, 'e', '', 'f', {mark}, "
               f"'g', {boolean}, 'h', CASE WHEN ?2 = 0 THEN {_TRUE_SQL} ELSE {_FALSE_SQL} END, "
               + ", ".join(f"'r{i}', {v!r}" for i, v in enumerate(_WHOLE)) + ")")
        try:
            got = conn.execute(
                f"SELECT CAST({row} AS BLOB), json_patch('{{}}', {row}), rtrim({row}, '}}') || ',' || "
                "trim(json_object('k', 'v', 'w', 1), '{}') || '}', json_quote(?1)", (_PROBE_TEXT, 1.5)).fetchone()
            full = {"a": _PROBE_TEXT, "b": 9007199254740993, "c": None, "d": -7, "e": "", "f": [""], "g": True,
                    "h": False, **{f"r{i}": v for i, v in enumerate(_WHOLE)}}
            patched = {k: v for k, v in full.items() if v is not None}
            expected = (_dumps(full).encode(), _dumps(patched), _dumps({**full, "k": "v", "w": 1}), _dumps(_PROBE_TEXT))
            _available = tuple(got) == expected and MARK in expected[0]
        except sqlite3.Error:
            _available = False
    return _available


# ---- the SELECT list -------------------------------------------------------------------------------------
def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _affinity(ent: Entity, a: Any) -> str:
    return "TEXT" if a.logical == ent.pk else sql_type(a.atype)


@dataclass
class RowRenderer:
    """A SELECT list: the row's JSON text (UTF-8), the values of its floats Python prints (``reals`` columns, NULL
    where SQLite printed the member), then its ``versionnumber`` and primary key (NULL: use ``serialize``)."""

    select: str
    reals: int

    VERSION, PK = -2, -1  # the primary key is NULL in a flagged row


# A row is a list of items: ("m", key, sql) a member json_object renders as serialize does (TEXT, INTEGER,
# NULL or a JSON value); ("t", sql) SQL text ``,"key":value...`` with its leading comma (or '', nothing);
# ("g", [(key, column, [(key, sql) members when set])]) consecutive lookups with annotations.
_Item = tuple[Any, ...]
_Lookup = tuple[str, str, list[tuple[str, str]]]
_EXPAND_GROUPS = 2  # lookup groups turned into CASE branches (3 ** n branches), the others member by member


class _Builder:
    def __init__(self, omit_nulls: bool) -> None:
        self.omit = omit_nulls
        self.items: list[_Item] = []
        self.reals: list[str] = []  # REAL columns, in member order
        self.flags: list[str] = []

    def finish(self, version_col: str, pk_col: str) -> RowRenderer:
        row = self._compile(self.items, _EXPAND_GROUPS)
        reals = [f"CASE WHEN {col} IS NULL OR {_whole(col)} THEN NULL ELSE {col} END" for col in self.reals]
        pk = f"CASE WHEN {' OR '.join(self.flags)} THEN NULL ELSE {pk_col} END"
        select = ", ".join([f"CAST({row} AS BLOB)", *reals, version_col, pk])
        return RowRenderer(select, len(self.reals))

    def _object(self, members: list[tuple[str, str]]) -> str:
        jo = "json_object(" + ", ".join(f"{_lit(k)}, {v}" for k, v in members) + ")"
        return f"json_patch('{{}}', {jo})" if self.omit else jo  # a JSON merge patch drops the null members

    def _compile(self, items: list[_Item], expand: int) -> str:
        """The row's text: one json_object when every item is a member, else runs of members joined by ``||``."""
        at = next((i for i, item in enumerate(items) if item[0] == "g"), None)
        if at is not None and expand:
            # Rows with every lookup of the group set, or none (the usual), keep to one json_object; the others
            # take the lookups one by one.
            group = items[at][1]
            before, after = items[:at], items[at + 1:]
            every = [("m", k, v) for _, _, members in group for k, v in members]
            none = [("m", key, col) for key, col, _ in group]  # nulls (dropped by json_patch when omitted)
            all_set = " AND ".join(f"{col} IS NOT NULL" for _, col, _ in group)
            none_set = " AND ".join(f"{col} IS NULL" for _, col, _ in group)
            return (f"CASE WHEN {all_set} THEN {self._compile(before + every + after, expand - 1)} "
                    f"WHEN {none_set} THEN {self._compile(before + none + after, expand - 1)} "
                    f"ELSE {self._compile(before + [('t', self._each(group))] + after, expand - 1)} END")
        items = [("t", self._each(item[1])) if item[0] == "g" else item for item in items]
        if all(item[0] == "m" for item in items):
            return self._object([(item[1], item[2]) for item in items])
        chain: list[str] = []
        span: list[tuple[str, str]] = []
        first = True  # the row's first members (the etag, never null) open it: their "{" is kept

        def flush() -> None:
            nonlocal first
            if not span:
                return
            jo = self._object(span)
            if first:
                chain.append(f"rtrim({jo}, '}}')")
            elif self.omit:  # ",members", or '' when every member was null
                chain.append(f"rtrim(',' || trim({jo}, '{{}}'), ',')")
            else:
                chain.extend(["','", f"trim({jo}, '{{}}')"])
            first = False
            span.clear()

        for item in items:
            if item[0] == "m":
                span.append((item[1], item[2]))
                continue
            flush()
            assert not first, "a row starts with a member (the etag)"
            chain.append(item[1])
        flush()
        chain.append("'}'")
        return " || ".join(chain)

    def _each(self, group: list[_Lookup]) -> str:
        """Lookups one by one: a null one is ``"key":null`` (or nothing), a set one is followed by its annotations."""
        return " || ".join(
            f"CASE WHEN {col} IS NULL THEN {_lit('' if self.omit else ',' + _dumps(key) + ':null')} "
            f"ELSE ',' || trim(json_object({', '.join(f'{_lit(k)}, {v}' for k, v in members)}), '{{}}') END"
            for key, col, members in group)


def _add_plan(b: _Builder, plan: Any, ann: Annotations, *, key_prefix: str, etag: bool, bools_last: bool) -> None:
    from .query import _BOOL, _LOOKUP, _nav_name  # query imports this module

    ent: Entity = plan.ent
    cols: list[str] = plan.cols
    items = b.items
    if etag:
        version = cols[0]
        items.append(("m", "@odata.etag", f"""'W/"' || {version} || '"'"""))
        b.flags.append(f"{version} IS NULL OR {version} <> CAST({version} AS INTEGER)")
    annotated = ann.wants(Annotations.NAV) or ann.wants(Annotations.LOOKUP_NAME)
    group: list[_Lookup] = []  # consecutive annotated lookups
    later: list[_Item] = []
    for key, i, kind, a in plan.specs:
        key = key_prefix + key
        col = cols[i]
        if kind == _LOOKUP and annotated:
            group.append((key, col, _lookup_members(ent, a, key, col, cols[i + 1], ann, _nav_name)))
            continue
        if group:
            items.append(("g", group))
            group = []
        if kind == _BOOL:  # serialize: v != 0 (any number, text or blob but 0 is true)
            value = f"CASE WHEN {col} IS NULL THEN NULL WHEN {col} <> 0 THEN {_TRUE_SQL} ELSE {_FALSE_SQL} END"
            (later if bools_last else items).append(("m", key, value))
            continue
        affinity = _affinity(ent, a)
        if affinity == "REAL":
            items.append(("m", key, f"CASE WHEN {col} IS NULL THEN NULL WHEN {_whole(col)} THEN {col} ELSE {_MARK_SQL} END"))
            b.reals.append(col)
            # text (a REAL column keeps what isn't a number), a blob or an infinity: serialize's way
            b.flags.append(f"{col} <> CAST({col} AS REAL) OR {col} > {_MAX} OR {col} < -{_MAX}")
            continue
        if affinity == "INTEGER":
            b.flags.append(f"{col} <> CAST({col} AS INTEGER)")  # a non-integral REAL in an INTEGER column
        items.append(("m", key, col))
    if group:
        items.append(("g", group))
    items.extend(later)


def _whole(col: str) -> str:
    """A whole number below 10**15, which SQLite prints as Python does (``123.0``)."""
    return f"({col} = CAST({col} AS INTEGER) AND {col} > -1e15 AND {col} < 1e15)"


def _lookup_members(ent: Entity, a: Any, key: str, col: str, type_col: str, ann: Annotations, nav_name: Any
                    ) -> list[tuple[str, str]]:
    """A set lookup's members: its value, then the annotations asked for (serialize's order)."""
    target = f"(CASE WHEN {type_col} IS NULL OR {type_col} = '' THEN {_lit(a.targets[0])} ELSE {type_col} END)"
    members = [(key, col)]
    if ann.wants(Annotations.NAV):
        members.append((key + "@" + Annotations.NAV, _nav_case(ent, a, target, nav_name)))
    if ann.wants(Annotations.LOOKUP_NAME):
        members.append((key + "@" + Annotations.LOOKUP_NAME, target))
    return members


def _nav_case(ent: Entity, a: Any, target: str, nav_name: Any) -> str:
    """``query._nav_name(ent, a, <target>)`` as SQL (targets compared case-sensitively, as Python does)."""
    names = {t: nav_name(ent, a, t) for nav in ent.navs.values() if nav.attr == a.logical for t in nav.targets}
    other = nav_name(ent, a, "\x00no such table")
    if all(n == other for n in names.values()):
        return _lit(other)
    whens = " ".join(f"WHEN {_lit(t)} THEN {_lit(n)}" for t, n in names.items())
    return f"(CASE {target} COLLATE BINARY {whens} ELSE {_lit(other)} END)"


def row_renderer(plan: Any, ann: Annotations, conn: sqlite3.Connection, *, omit_nulls: bool = False,
                 links: tuple[tuple[Any, str], ...] = ()) -> RowRenderer | None:
    """The renderer of ``plan``'s rows as ``query.serialize(env, plan, rows, omit_nulls=...)`` encodes them.

    ``links`` are (plan, key prefix) of FetchXML link-entities whose members (``omit_nulls``, no etag)
    follow the row's own. ``None`` when the fast path does not apply (see the module docstring).
    """
    if ann.formatted or not available(conn):
        return None
    for p, _ in ((plan, ""), *links):
        keys = [spec[0] for spec in p.specs]
        if len(set(keys)) != len(keys):  # a column selected twice (FetchXML): serialize's dict keeps one member
            return None
        if any(a.is_lookup and not a.targets for a in p.attrs):
            return None
    b = _Builder(omit_nulls)
    bools_last = not ann.any and not omit_nulls  # serialize's plain path writes booleans after the rest
    _add_plan(b, plan, ann, key_prefix="", etag=True, bools_last=bools_last)
    for link_plan, prefix in links:
        _add_plan(b, link_plan, ann, key_prefix=prefix, etag=False, bools_last=False)
    return b.finish(plan.cols[0], plan.cols[plan.pk_index])


def render(rr: RowRenderer, rows: list[tuple[Any, ...]]) -> list[bytes] | None:
    """The rows' JSON texts, comma-separated (pieces to concatenate); ``None`` when a row has to go through
    ``serialize`` (flagged)."""
    if not rows:
        return []
    if None in map(itemgetter(RowRenderer.PK), rows):
        return None
    pieces = list(map(itemgetter(0), rows))
    if rr.reals:
        floats = [v for r in rows for v in r[1:rr.reals + 1] if v is not None]
        if floats:
            pieces = b",".join(pieces).split(MARK)
            if len(pieces) != len(floats) + 1:  # cannot happen (see the module docstring): play safe
                return None
            out = [b""] * (2 * len(pieces) - 1)
            out[0::2] = pieces
            out[1::2] = [repr(v).encode() for v in floats]  # json.dumps prints finite floats (and ints) so
            return out
    out = [b","] * (2 * len(pieces) - 1)
    out[0::2] = pieces
    return out


def fetch(conn: sqlite3.Connection, sql: str, params: Any) -> list[tuple[Any, ...]] | None:
    """``conn.execute(sql, params).fetchall()``, or ``None`` on any SQLite error (e.g. a BLOB, which JSON cannot
    hold): the caller then runs the reference query, which fails (or not) exactly as it always did."""
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.Error:
        return None
