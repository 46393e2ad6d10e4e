"""Which entities to sync first (parents before children), and which columns must stay selected.

``sync_order`` orders entities by their lookups so a record's parents exist before it is written.
The security entities (business units, users, teams) come first, N:N intersect entities last.
Lookups that cannot be satisfied by the order — a self-reference, a cycle such as
``account.primarycontactid -> contact`` with ``contact.parentcustomerid -> account``, or a security
entity pointing at a business table — are listed as *deferred*: write the records without them,
then set them in a second pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from crmsync_desktop.sync.connectors.types import EntityMeta, FieldType
from crmsync_desktop.sync.filters import FetchFilter, LinkEntity, parse_filter
from crmsync_desktop.sync.metadata.schema import ALWAYS_SYNCED, Schema

__all__ = ["DeferredLookup", "SyncOrder", "locked_fields", "sync_order"]

_REQUIRED_WEIGHT = 1000  # deferring a required lookup means writing a record the server may reject


@dataclass(frozen=True, slots=True)
class DeferredLookup:
    """A lookup to write in a second pass. ``reason``: ``self``, ``cycle`` or ``security``."""

    entity: str
    field: str
    target: str
    reason: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class SyncOrder:
    """``levels``: entities in the same level do not depend on each other (they may run in parallel)."""

    levels: tuple[tuple[str, ...], ...]
    deferred: tuple[DeferredLookup, ...] = ()
    cycles: tuple[tuple[str, ...], ...] = ()  # groups of entities whose lookups form a cycle

    @property
    def flat(self) -> tuple[str, ...]:
        return tuple(e for level in self.levels for e in level)

    def __iter__(self) -> Iterator[str]:
        """The entities one after the other (``flat``)."""
        return iter(self.flat)

    def __len__(self) -> int:
        return len(self.flat)

    def deferred_fields(self, entity: str) -> frozenset[str]:
        return frozenset(d.field for d in self.deferred if d.entity == entity)


@dataclass(frozen=True, slots=True)
class _Edge:
    child: str
    field: str
    parent: str
    required: bool


def _edges(schema: Schema, nodes: Sequence[str]) -> list[_Edge]:
    present = set(nodes)
    out: list[_Edge] = []
    for n in nodes:
        meta = schema.entity(n)
        if meta is None or meta.is_intersect:
            continue
        for f in meta.fields:
            if f.type.is_lookup:
                out += [_Edge(n, f.logical_name, t, f.required) for t in f.targets if t in present]
    return out


def _components(nodes: Iterable[str], edges: Sequence[_Edge]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each sorted."""
    graph: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        if e.child in graph and e.parent in graph:
            graph[e.child].append(e.parent)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            out.append(sorted(group))

    for n in sorted(graph):
        if n not in index:
            visit(n)
    return out


def _order(nodes: list[str], edges: list[_Edge]) -> tuple[list[list[str]], list[DeferredLookup]]:
    """Levels of ``nodes`` (parents first) and the edges deferred to break cycles."""
    remaining = set(nodes)
    inner = [e for e in edges if e.child in remaining and e.parent in remaining and e.child != e.parent]
    deferred: list[DeferredLookup] = []
    placed: list[str] = []
    while remaining:
        live = [e for e in inner if e.child in remaining and e.parent in remaining]
        waiting = {e.child for e in live}
        ready = sorted(remaining - waiting)
        if ready:
            placed += ready
            remaining -= set(ready)
            continue
        # every remaining entity waits: pick a cycle with nothing else to wait for, and break it
        groups = _components(remaining, live)
        group_of = {n: i for i, g in enumerate(groups) for n in g}
        sinks = [g for i, g in enumerate(groups)
                 if all(group_of[e.parent] == i for e in live if group_of[e.child] == i)]
        group = set(min(sinks))

        def cost(n: str, group: set[str] = group, live: list[_Edge] = live) -> tuple[int, int, str]:
            out_cost = sum(_REQUIRED_WEIGHT if e.required else 1 for e in live if e.child == n and e.parent in group)
            in_degree = sum(1 for e in live if e.parent == n and e.child in group)
            return (out_cost, -in_degree, n)

        pick = min(group, key=cost)
        for e in live:
            if e.child == pick:
                deferred.append(DeferredLookup(e.child, e.field, e.parent, "cycle", e.required))
        placed.append(pick)
        remaining.discard(pick)
    skipped = {(d.entity, d.field, d.target) for d in deferred}
    kept = [e for e in inner if (e.child, e.field, e.parent) not in skipped]
    level: dict[str, int] = {}
    for n in placed:  # parents are placed before their children
        level[n] = max((level[e.parent] + 1 for e in kept if e.child == n), default=0)
    levels: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for n in sorted(level):
        levels[level[n]].append(n)
    return levels, deferred


def sync_order(schema: Schema, entities: Iterable[str], *, include_security: bool = True) -> SyncOrder:
    """The order to sync ``entities`` in: the security entities first, intersect entities last.

    ``include_security``: add businessunit, systemuser and team (those the schema has) even when
    not in ``entities``; with False they are ordered first only if listed. Entities the schema does
    not know have no dependencies. Iterating the result gives the entities one after the other.
    """
    wanted = list(dict.fromkeys(entities))
    security = [n for n in ALWAYS_SYNCED if schema.has(n) and (include_security or n in wanted)]
    intersects = sorted(n for n in wanted if (m := schema.entity(n)) is not None and m.is_intersect)
    rest = sorted(n for n in wanted if n not in security and n not in intersects)
    nodes = security + rest
    edges = _edges(schema, nodes)
    deferred = [DeferredLookup(e.child, e.field, e.parent, "self", e.required) for e in edges if e.child == e.parent]
    deferred += [
        DeferredLookup(e.child, e.field, e.parent, "security", e.required)
        for e in edges if e.child in security and e.parent not in security
    ]
    first, sec_deferred = _order(security, [e for e in edges if e.child in security and e.parent in security])
    second, rest_deferred = _order(rest, [e for e in edges if e.child in rest and e.parent in rest])
    levels = [tuple(level) for level in (*first, *second) if level]
    if intersects:
        levels.append(tuple(intersects))
    cycles = tuple(tuple(g) for g in _components(nodes, [e for e in edges if e.child != e.parent]) if len(g) > 1)
    all_deferred = sorted(deferred + sec_deferred + rest_deferred, key=lambda d: (d.entity, d.field, d.target))
    return SyncOrder(tuple(levels), tuple(all_deferred), cycles)


# --- columns that cannot be deselected ---------------------------------------------------------------

def _walk(links: Iterable[LinkEntity], parent: str) -> Iterable[tuple[str, LinkEntity]]:
    for link in links:
        yield parent, link
        yield from _walk(link.links, link.name)


def _filter_columns(f: FetchFilter, entity: str) -> dict[str, str]:
    """The columns of ``entity`` that filter ``f`` reads, with why."""
    out: dict[str, str] = {}
    where = f"the {f.entity} sync filter"
    aliases = {link.alias: link.name for _, link in _walk(f.links, f.entity) if link.alias}
    for c in f.filter.walk_conditions() if f.filter else ():
        on = f.entity if c.entity_alias is None else aliases.get(c.entity_alias, c.entity_alias)
        if on == entity:
            out.setdefault(c.attribute, f"used by a condition of {where}")
            if c.value_of:
                out.setdefault(c.value_of, f"compared with in {where}")
    for parent, link in _walk(f.links, f.entity):
        if parent == entity:
            out.setdefault(link.to_attribute, f"links {link.name} in {where}")
        if link.name == entity:
            out.setdefault(link.from_attribute, f"links {parent} in {where}")
            for c in link.filter.walk_conditions() if link.filter else ():
                if c.entity_alias is None:
                    out.setdefault(c.attribute, f"used by a condition of {where}")
    return out


def locked_fields(entity_meta: EntityMeta, filters: Sequence[str]) -> dict[str, str]:
    """Columns of ``entity_meta`` that cannot be deselected in the field picker, with the reason.

    The primary key, the primary name, the owner, and every column the given FetchXML filters read:
    conditions on the entity, and the join columns of link-entities from or to it (the filters may
    be the entity's own or other entities' filters that link to it).

    Raises:
        FilterError: a filter is malformed.
    """
    name = entity_meta.logical_name
    out: dict[str, str] = {}
    if entity_meta.primary_id:
        out[entity_meta.primary_id] = "the primary key identifies the record"
    if entity_meta.primary_name:
        out.setdefault(entity_meta.primary_name, "the primary name is shown for the record everywhere")
    owner = entity_meta.field("ownerid")
    if owner is not None and owner.type in (FieldType.OWNER, FieldType.LOOKUP):
        out.setdefault("ownerid", "the owner decides who sees the record")
    for text in filters:
        for column, reason in _filter_columns(parse_filter(text), name).items():
            if entity_meta.field(column) is not None:
                out.setdefault(column, reason)
    return out
