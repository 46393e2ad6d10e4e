"""The frozen FetchXML sync-filter tree: fetch → entity → filter groups → conditions and link-entities.

Values are kept as the strings FetchXML carries; typing happens when a filter is validated against
metadata (``validate.py``) or evaluated against a record (``evaluate.py``). Two filters are equal
exactly when their canonical FetchXML (``render_filter``) is equal.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass


class FilterType(enum.StrEnum):
    """How the children of a ``<filter>`` combine."""

    AND = "and"
    OR = "or"


class LinkType(enum.StrEnum):
    """The ``link-type`` of a ``<link-entity>`` (Dataverse Web API digest §4.3)."""

    INNER = "inner"
    OUTER = "outer"
    ANY = "any"
    NOT_ANY = "not-any"
    ALL = "all"
    NOT_ALL = "not-all"
    EXISTS = "exists"
    IN = "in"
    MATCH_FIRST_ROW = "matchfirstrowusingcrossapply"


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``<condition>``.

    Args:
        attribute: the column logical name.
        operator: the FetchXML operator name (``eq``, ``last-x-days``, …), checked at parse time.
        values: the operand(s) as written; empty for operators that take none.
        entity_alias: ``entityname``: the alias of a link-entity the column belongs to (a condition on
            a linked table written at the parent level), or None for the enclosing entity.
        value_of: ``valueof``: compare with another column of the same row instead of ``values``.
    """

    attribute: str
    operator: str
    values: tuple[str, ...] = ()
    entity_alias: str | None = None
    value_of: str | None = None


@dataclass(frozen=True, slots=True)
class FilterGroup:
    """One ``<filter type="and|or">``; ``items`` keeps the document order of conditions and groups."""

    type: FilterType = FilterType.AND
    items: tuple[Condition | FilterGroup, ...] = ()

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return tuple(item for item in self.items if isinstance(item, Condition))

    @property
    def groups(self) -> tuple[FilterGroup, ...]:
        return tuple(item for item in self.items if isinstance(item, FilterGroup))

    def walk_conditions(self) -> Iterator[Condition]:
        """Every condition of this group and its nested groups, depth first."""
        for item in self.items:
            if isinstance(item, Condition):
                yield item
            else:
                yield from item.walk_conditions()


@dataclass(frozen=True, slots=True)
class Order:
    """One ``<order attribute descending>``: kept so a filter round-trips; it never changes the row set."""

    attribute: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class LinkEntity:
    """One ``<link-entity>``: a join to a related table that can carry its own filter and links.

    ``from_attribute`` is the column on the linked table, ``to_attribute`` the column on the parent.
    """

    name: str
    from_attribute: str
    to_attribute: str
    link_type: LinkType = LinkType.INNER
    alias: str | None = None
    filter: FilterGroup | None = None
    links: tuple[LinkEntity, ...] = ()
    orders: tuple[Order, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchFilter:
    """A whole sync or upload filter: ``<fetch><entity name>…</entity></fetch>``.

    ``entity == ""`` is the empty filter ("no filter": all records); it renders as the empty string.
    ``count`` is the optional row limit (``<fetch count>``) the Resco filter editor can set.
    """

    entity: str = ""
    filter: FilterGroup | None = None
    links: tuple[LinkEntity, ...] = ()
    orders: tuple[Order, ...] = ()
    count: int | None = None

    @property
    def is_empty(self) -> bool:
        """True for "no filter" and for an entity without any condition or link (both: all records)."""
        return (self.filter is None or not self.filter.items) and not self.links and self.count is None

    def walk_links(self) -> Iterator[LinkEntity]:
        """Every link-entity, depth first."""
        stack = list(reversed(self.links))
        while stack:
            link = stack.pop()
            yield link
            stack.extend(reversed(link.links))


NO_FILTER = FetchFilter()
"""The empty filter: every record of the entity."""
