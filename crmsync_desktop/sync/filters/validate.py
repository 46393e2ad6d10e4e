"""``validate_filter``: check a parsed filter against the server organization's metadata.

Metadata is anything with ``attributes_of(entity) -> Mapping[str, AttributeInfo] | None`` (the
``FilterMetadata`` protocol), or a plain mapping ``{entity: {attribute: type | AttributeInfo}}``
which ``MetadataMap.from_mapping`` turns into one. Every problem is reported, not just the first.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Protocol, runtime_checkable

from crmsync_desktop.errors import FilterError
from crmsync_desktop.sync.filters.model import Condition, FetchFilter, FilterGroup, LinkEntity, Order
from crmsync_desktop.sync.filters.operators import (
    FAMILY_OF_TYPE,
    OPERATORS,
    AttributeType,
    TypeFamily,
    ValueKind,
)
from crmsync_desktop.sync.filters.parser import is_iso_date

GUID_RE = re.compile(r"^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$")
"""A GUID as FetchXML accepts it, with or without braces."""


@dataclass(frozen=True, slots=True)
class AttributeInfo:
    """One column: its type and, for lookups, the entities it can point to (empty: unknown)."""

    type: AttributeType
    targets: tuple[str, ...] = ()


@runtime_checkable
class FilterMetadata(Protocol):
    """What ``validate_filter`` needs to know about the server organization."""

    def attributes_of(self, entity: str) -> Mapping[str, AttributeInfo] | None:
        """The columns of ``entity`` by logical name, or None if there is no such entity."""


RawAttribute = AttributeInfo | AttributeType | str | tuple[str, Iterable[str]]


@dataclass(frozen=True, slots=True)
class MetadataMap:
    """A ``FilterMetadata`` held in memory: ``{entity: {attribute: AttributeInfo}}``."""

    entities: Mapping[str, Mapping[str, AttributeInfo]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Mapping[str, RawAttribute]]) -> MetadataMap:
        """Build from ``{"contact": {"ownerid": ("owner", ["systemuser", "team"]), "fullname": "String"}}``."""

        def info(value: RawAttribute) -> AttributeInfo:
            if isinstance(value, AttributeInfo):
                return value
            if isinstance(value, tuple):
                return AttributeInfo(AttributeType.coerce(value[0]), tuple(value[1]))
            return AttributeInfo(AttributeType.coerce(value))

        return cls({entity: {name: info(v) for name, v in attrs.items()} for entity, attrs in raw.items()})

    def attributes_of(self, entity: str) -> Mapping[str, AttributeInfo] | None:
        return self.entities.get(entity)


@dataclass(frozen=True, slots=True)
class FilterProblem:
    """One thing wrong with a filter: where (``contact > link-entity account > condition 'x'``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def as_metadata(metadata: FilterMetadata | Mapping[str, Mapping[str, RawAttribute]]) -> FilterMetadata:
    """Accept a ``FilterMetadata`` or a plain mapping."""
    if isinstance(metadata, FilterMetadata):
        return metadata
    return MetadataMap.from_mapping(metadata)


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _value_problem(family: TypeFamily, value: str) -> str | None:
    text = value.strip()
    if family is TypeFamily.ID:
        return (
            None
            if GUID_RE.match(text)
            else f"{value!r} is not a GUID (like 00000000-0000-0000-0000-000000000000)"
        )
    if family in (TypeFamily.WHOLE_NUMBER, TypeFamily.CHOICE, TypeFamily.MULTICHOICE):
        return None if re.fullmatch(r"[+-]?\d+", text) else f"{value!r} is not a whole number"
    if family is TypeFamily.NUMBER:
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
        return None if number is not None and number.is_finite() else f"{value!r} is not a number"
    if family is TypeFamily.BOOLEAN:
        return (
            None if text.lower() in ("0", "1", "true", "false") else f"{value!r} is not 0, 1, true or false"
        )
    if family is TypeFamily.DATETIME:
        return (
            None
            if is_iso_date(text)
            else f"{value!r} is not a date (like 2024-05-31 or 2024-05-31T08:00:00Z)"
        )
    return None  # text columns take any text


class _Validator:
    def __init__(self, metadata: FilterMetadata) -> None:
        self._metadata = metadata
        self.problems: list[FilterProblem] = []
        self._aliases: dict[str, str] = {}

    def _add(self, path: str, message: str) -> None:
        self.problems.append(FilterProblem(path, message))

    def run(self, f: FetchFilter) -> None:
        attrs = self._metadata.attributes_of(f.entity)
        if attrs is None:
            self._add(
                f.entity,
                f"unknown entity {f.entity!r}: the server organization has no such table. "
                "Update the server metadata or fix the entity name.",
            )
            return
        for link in f.walk_links():
            self._aliases[link.alias or link.name] = link.name
        self._scope(f.entity, f.entity, attrs, f.filter, f.links, f.orders)

    def _scope(
        self,
        path: str,
        entity: str,
        attrs: Mapping[str, AttributeInfo],
        group: FilterGroup | None,
        links: tuple[LinkEntity, ...],
        orders: tuple[Order, ...],
    ) -> None:
        for order in orders:
            if order.attribute not in attrs:
                self._add(
                    f"{path} > order {order.attribute!r}",
                    f"unknown column {order.attribute!r} of {entity!r}{_suggest(order.attribute, attrs)}.",
                )
        if group is not None:
            for condition in group.walk_conditions():
                self._condition(path, entity, attrs, condition)
        for link in links:
            self._link(path, entity, attrs, link)

    def _condition(self, path: str, entity: str, attrs: Mapping[str, AttributeInfo], c: Condition) -> None:
        where = f"{path} > condition {c.attribute!r}"
        if c.entity_alias is not None:
            if c.entity_alias not in self._aliases:
                self._add(where, f"entityname={c.entity_alias!r} matches no link-entity alias.")
                return
            entity = self._aliases[c.entity_alias]
            linked = self._metadata.attributes_of(entity)
            if linked is None:
                return  # already reported at its link-entity
            attrs = linked
        info = attrs.get(c.attribute)
        if info is None:
            self._add(where, f"unknown column {c.attribute!r} of {entity!r}{_suggest(c.attribute, attrs)}.")
            return
        family = FAMILY_OF_TYPE[info.type]
        spec = OPERATORS[c.operator]
        if family is TypeFamily.UNFILTERABLE:
            self._add(where, f"{info.type.value} columns cannot be used in a filter.")
            return
        if family not in spec.families:
            allowed = ", ".join(sorted(fam.value for fam in spec.families))
            self._add(
                where,
                f"operator {c.operator!r} cannot be used on the {info.type.value} column "
                f"{c.attribute!r}; it applies to {allowed} columns.",
            )
            return
        if c.value_of is not None:
            other = attrs.get(c.value_of)
            if other is None:
                self._add(where, f"valueof refers to unknown column {c.value_of!r} of {entity!r}.")
            elif FAMILY_OF_TYPE[other.type] is not family:
                self._add(
                    where,
                    f"valueof column {c.value_of!r} is {other.type.value}, "
                    f"but {c.attribute!r} is {info.type.value}.",
                )
            return
        if spec.value_kind is ValueKind.TYPED:
            for value in c.values:
                problem = _value_problem(family, value)
                if problem:
                    self._add(where, f"{problem}, as the {info.type.value} column {c.attribute!r} needs.")

    def _link(
        self, path: str, parent: str, parent_attrs: Mapping[str, AttributeInfo], link: LinkEntity
    ) -> None:
        where = f"{path} > link-entity {link.name!r}" + (f" (alias {link.alias!r})" if link.alias else "")
        attrs = self._metadata.attributes_of(link.name)
        if attrs is None:
            self._add(where, f"unknown entity {link.name!r}: the server organization has no such table.")
            return
        to_info = parent_attrs.get(link.to_attribute)
        from_info = attrs.get(link.from_attribute)
        if to_info is None:
            self._add(
                where,
                f"to={link.to_attribute!r} is not a column of {parent!r}"
                f"{_suggest(link.to_attribute, parent_attrs)}.",
            )
        if from_info is None:
            self._add(
                where,
                f"from={link.from_attribute!r} is not a column of {link.name!r}"
                f"{_suggest(link.from_attribute, attrs)}.",
            )
        if to_info is not None and from_info is not None:
            self._join(where, parent, link, to_info, from_info)
        self._scope(where, link.name, attrs, link.filter, link.links, link.orders)

    def _join(
        self, where: str, parent: str, link: LinkEntity, to_info: AttributeInfo, from_info: AttributeInfo
    ) -> None:
        to_family, from_family = FAMILY_OF_TYPE[to_info.type], FAMILY_OF_TYPE[from_info.type]
        if to_family is not from_family:
            self._add(
                where,
                f"cannot join {parent}.{link.to_attribute} ({to_info.type.value}) to "
                f"{link.name}.{link.from_attribute} ({from_info.type.value}).",
            )
            return
        # A lookup on either side must point at the other table; a join of two plain columns is not checked.
        to_points = bool(to_info.targets) and link.name in to_info.targets
        from_points = bool(from_info.targets) and parent in from_info.targets
        if (to_info.targets or from_info.targets) and not (to_points or from_points):
            reasons = []
            if to_info.targets:
                reasons.append(
                    f"{parent}.{link.to_attribute} points to {', '.join(to_info.targets)}, "
                    f"not to {link.name!r}"
                )
            if from_info.targets:
                reasons.append(
                    f"{link.name}.{link.from_attribute} points to {', '.join(from_info.targets)}, "
                    f"not to {parent!r}"
                )
            self._add(where, f"these columns are not related: {'; '.join(reasons)}.")


def validate_filter(
    f: FetchFilter,
    metadata: FilterMetadata | Mapping[str, Mapping[str, RawAttribute]],
    *,
    raise_on_problems: bool = False,
) -> list[FilterProblem]:
    """Check ``f`` against the server's metadata.

    Checks: unknown entities (also of link-entities), unknown columns (conditions, valueof, joins,
    orders), operators that do not apply to the column type (``like`` on a number, ``last-x-days``
    on a non-date), values of the wrong kind (a lookup value that is not a GUID, a number that is
    not a number), joins between unrelated columns.

    Args:
        f: a parsed filter; ``NO_FILTER`` is always valid.
        metadata: a ``FilterMetadata`` or ``{entity: {attribute: type}}``.
        raise_on_problems: raise one ``FilterError`` listing every problem instead of returning them.

    Returns:
        The problems, in document order; empty when the filter is valid.
    """
    if not f.entity:
        return []
    validator = _Validator(as_metadata(metadata))
    validator.run(f)
    if validator.problems and raise_on_problems:
        count = len(validator.problems)
        lines = "\n".join(f"- {p}" for p in validator.problems)
        raise FilterError(
            f"The filter for {f.entity!r} has {count} problem{'s' if count > 1 else ''}:\n{lines}",
            entity=f.entity,
        )
    return validator.problems
