"""``parse_filter``: FetchXML text → ``FetchFilter``, safely and with messages that point at the fault.

The XML goes through defusedxml with DTDs, entity declarations and external references forbidden, so
a "billion laughs" bomb or an XXE probe is rejected at its ``<!DOCTYPE`` before anything expands.
Every structural error names the element (and its line and column) and says what to change.
"""

from __future__ import annotations

import difflib
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from crmsync_desktop.errors import FilterError
from crmsync_desktop.sync.filters.model import (
    NO_FILTER,
    Condition,
    FetchFilter,
    FilterGroup,
    FilterType,
    LinkEntity,
    LinkType,
    Order,
)
from crmsync_desktop.sync.filters.operators import OPERATORS, VALUE_OF_OPERATORS, ValueKind

MAX_FILTER_CHARS = 1_000_000
"""A sync filter longer than this is refused before parsing (real ones are a few kilobytes)."""
MAX_NESTING_DEPTH = 32
"""Deepest allowed nesting of ``<filter>`` and ``<link-entity>`` elements."""

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Attributes that only matter to Dataverse's own editors or to column selection: accepted, not kept.
_FETCH_ATTRS = {
    "version",
    "count",
    "mapping",
    "distinct",
    "no-lock",
    "output-format",
    "returntotalrecordcount",
}
_ENTITY_ATTRS = {"name", "enableprefiltering", "prefilterparametername"}
_FILTER_ATTRS = {"type", "isquickfindfields", "hint"}
_CONDITION_ATTRS = {"attribute", "operator", "value", "entityname", "valueof", "uiname", "uitype", "uihidden"}
_VALUE_ATTRS = {"uiname", "uitype"}
_LINK_ATTRS = {"name", "from", "to", "link-type", "alias", "visible", "intersect"}
_ORDER_ATTRS = {"attribute", "descending"}
_IGNORED_CHILDREN = {"attribute", "all-attributes"}
# What people type for an operator, from SQL, OData or the filter editor's labels.
_OPERATOR_SYNONYMS = {
    "=": "eq",
    "==": "eq",
    "equals": "eq",
    "equal": "eq",
    "!=": "ne",
    "<>": "ne",
    "not-equal": "ne",
    ">": "gt",
    ">=": "ge",
    "<": "lt",
    "<=": "le",
    "contains": "like",
    "does-not-contain": "not-like",
    "starts-with": "begins-with",
    "startswith": "begins-with",
    "endswith": "ends-with",
    "is-null": "null",
    "is-not-null": "not-null",
    "contains-data": "not-null",
    "does-not-contain-data": "null",
}


class _PositionedBuilder(ET.TreeBuilder):
    """A TreeBuilder that remembers where each element starts, for error messages."""

    def __init__(self) -> None:
        super().__init__()
        self.parser: DefusedXMLParser | None = None
        self.positions: dict[int, tuple[int, int]] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:  # type: ignore[override]
        element = super().start(tag, attrs)
        expat = self.parser.parser  # type: ignore[union-attr]
        self.positions[id(element)] = (expat.CurrentLineNumber, expat.CurrentColumnNumber + 1)
        return element


def _parse_xml(xml: str) -> tuple[ET.Element, dict[int, tuple[int, int]]]:
    builder = _PositionedBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder.parser = parser
    try:
        parser.feed(xml)
        root = parser.close()
    except DTDForbidden as exc:
        raise FilterError(
            f"The filter contains a document type declaration (<!DOCTYPE {exc.name}>). Filters never accept "
            "DTDs or entity declarations, because they can expand into huge documents (an XML bomb) or read "
            "local files; remove the <!DOCTYPE …> part."
        ) from None
    except EntitiesForbidden as exc:
        raise FilterError(
            f"The filter declares an XML entity ({exc.name!r}). Entity declarations are never accepted in a "
            "filter (XML bomb protection); remove them."
        ) from None
    except ExternalReferenceForbidden:
        raise FilterError(
            "The filter refers to an external resource. External references are never accepted in a "
            "filter; remove them."
        ) from None
    except DefusedXmlException as exc:  # any other defusedxml refusal
        raise FilterError(f"The filter uses an XML feature that is not accepted: {exc}.") from None
    except ET.ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(": line ", 1)[0]
        raise FilterError(
            f"The filter is not well-formed XML: {reason} at line {line}, column {column + 1}. "
            "Check that every element is closed and quotes and < > & are written correctly."
        ) from None
    return root, builder.positions


def parse_filter(xml: str, *, entity: str | None = None) -> FetchFilter:
    """Parse one FetchXML sync or upload filter.

    Args:
        xml: ``<fetch><entity name="…">…</entity></fetch>``; empty or blank means "no filter".
        entity: if given, the filter must be for this entity (the one it is attached to).

    Returns:
        The filter tree; ``NO_FILTER`` for empty input.

    Raises:
        FilterError: malformed or unsafe XML, an unexpected element or attribute, an unknown
            operator, the wrong number or kind of values, a missing required attribute.
    """
    if not xml.strip():
        return NO_FILTER
    if len(xml) > MAX_FILTER_CHARS:
        raise FilterError(
            f"The filter is {len(xml):,} characters long; the limit is {MAX_FILTER_CHARS:,}. "
            "Simplify it (an 'in' condition with thousands of values is better expressed differently)."
        )
    root, positions = _parse_xml(xml)
    result = _Reader(positions).fetch(root)
    if entity is not None and result.entity != entity:
        raise FilterError(
            f"This filter is for entity {result.entity!r}, but it is attached to {entity!r}. "
            f'Use <entity name="{entity}"> or attach the filter to {result.entity!r}.',
            entity=entity,
        )
    return result


def _is_int(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", text.strip()) is not None


def is_iso_date(text: str) -> bool:
    """True if ``text`` is an ISO-8601 date (``2024-05-01``) or date-time."""
    for parse in (date.fromisoformat, datetime.fromisoformat):
        try:
            parse(text.strip())
        except ValueError:
            continue
        return True
    return False


class _Reader:
    """Walks the element tree; every error names the element and its position."""

    def __init__(self, positions: dict[int, tuple[int, int]]) -> None:
        self._positions = positions

    def _error(self, element: ET.Element, problem: str) -> FilterError:
        line, column = self._positions.get(id(element), (0, 0))
        key = next((k for k in ("name", "attribute") if element.get(k)), None)
        label = f'<{element.tag} {key}="{element.get(key)}">' if key else f"<{element.tag}>"
        return FilterError(f"{label} at line {line}, column {column}: {problem}")

    def _check_attrs(self, element: ET.Element, allowed: set[str]) -> None:
        for name in element.attrib:
            if name not in allowed:
                raise self._error(
                    element, f"unexpected attribute {name!r}; allowed here: {', '.join(sorted(allowed))}."
                )

    def _check_no_text(self, element: ET.Element) -> None:
        texts = [element.text] + [child.tail for child in element]
        stray = next((t.strip() for t in texts if t and t.strip()), None)
        if stray:
            raise self._error(element, f"unexpected text {stray[:40]!r}; only elements are allowed here.")

    def _required(self, element: ET.Element, attr: str, *, logical_name: bool = True) -> str:
        value = (element.get(attr) or "").strip()
        if not value:
            raise self._error(element, f"the {attr!r} attribute is required.")
        if logical_name and not _NAME_RE.match(value):
            raise self._error(element, f"{attr}={value!r} is not a valid logical name (letters, digits, _).")
        return value

    def _unexpected_child(self, child: ET.Element, parent: ET.Element, allowed: str) -> FilterError:
        return self._error(child, f"unexpected element inside <{parent.tag}>; allowed there: {allowed}.")

    def fetch(self, root: ET.Element) -> FetchFilter:
        if root.tag != "fetch":
            raise self._error(
                root,
                "a filter must start with <fetch> (for example "
                '<fetch version="1.0"><entity name="contact">…</entity></fetch>).',
            )
        self._check_attrs(root, _FETCH_ATTRS)
        self._check_no_text(root)
        count = None
        if "count" in root.attrib:
            raw = root.get("count", "")
            if not _is_int(raw) or int(raw) < 1:
                raise self._error(root, f"count={raw!r} must be a whole number of at least 1.")
            count = int(raw)
        entities = list(root)
        if len(entities) != 1 or entities[0].tag != "entity":
            raise self._error(root, "<fetch> must contain exactly one <entity> element.")
        entity = entities[0]
        self._check_attrs(entity, _ENTITY_ATTRS)
        name = self._required(entity, "name")
        group, links, orders = self._body(entity, depth=1)
        result = FetchFilter(entity=name, filter=group, links=links, orders=orders, count=count)
        self._check_aliases(entity, result)
        return result

    def _body(
        self, element: ET.Element, depth: int
    ) -> tuple[FilterGroup | None, tuple[LinkEntity, ...], tuple[Order, ...]]:
        self._check_no_text(element)
        groups: list[FilterGroup] = []
        links: list[LinkEntity] = []
        orders: list[Order] = []
        for child in element:
            if child.tag == "filter":
                groups.append(self._filter(child, depth + 1))
            elif child.tag == "link-entity":
                links.append(self._link(child, depth + 1))
            elif child.tag == "order":
                orders.append(self._order(child))
            elif child.tag not in _IGNORED_CHILDREN:
                raise self._unexpected_child(
                    child, element, "<filter>, <link-entity>, <order>, <attribute>, <all-attributes>"
                )
        # Several <filter> children of one entity are ANDed, exactly as one <filter type="and"> around them.
        group = (
            groups[0] if len(groups) == 1 else FilterGroup(FilterType.AND, tuple(groups)) if groups else None
        )
        return group, tuple(links), tuple(orders)

    def _depth(self, element: ET.Element, depth: int) -> None:
        if depth > MAX_NESTING_DEPTH:
            raise self._error(
                element, f"filters and links are nested more than {MAX_NESTING_DEPTH} levels deep."
            )

    def _filter(self, element: ET.Element, depth: int) -> FilterGroup:
        self._depth(element, depth)
        self._check_attrs(element, _FILTER_ATTRS)
        self._check_no_text(element)
        raw_type = element.get("type", "and")
        try:
            kind = FilterType(raw_type.strip().lower())
        except ValueError:
            raise self._error(element, f'type={raw_type!r} must be "and" or "or".') from None
        items: list[Condition | FilterGroup] = []
        for child in element:
            if child.tag == "condition":
                items.append(self._condition(child))
            elif child.tag == "filter":
                items.append(self._filter(child, depth + 1))
            else:
                raise self._unexpected_child(child, element, "<condition>, <filter>")
        return FilterGroup(kind, tuple(items))

    def _condition(self, element: ET.Element) -> Condition:
        self._check_attrs(element, _CONDITION_ATTRS)
        self._check_no_text(element)
        attribute = self._required(element, "attribute")
        raw_operator = self._required(element, "operator", logical_name=False)
        operator = raw_operator.lower()
        spec = OPERATORS.get(operator)
        if spec is None:
            close = [_OPERATOR_SYNONYMS[operator]] if operator in _OPERATOR_SYNONYMS else []
            close = close or difflib.get_close_matches(operator, OPERATORS, n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise self._error(
                element,
                f"unknown operator {raw_operator!r}.{hint} "
                "See docs/config-format.md for the supported operators.",
            )
        values: list[str] = []
        for child in element:
            if child.tag != "value":
                raise self._unexpected_child(child, element, "<value>")
            self._check_attrs(child, _VALUE_ATTRS)
            if len(child):
                raise self._error(child, "a <value> holds text only, not elements.")
            values.append(child.text or "")
        if "value" in element.attrib:
            if values:
                raise self._error(element, 'use either value="…" or <value> children, not both.')
            values.append(element.get("value", ""))
        if any(not v.strip() for v in values):
            raise self._error(element, 'a value is empty; to match empty columns use operator "null".')
        entity_alias = element.get("entityname") or None
        value_of = element.get("valueof") or None
        if value_of is not None:
            if operator not in VALUE_OF_OPERATORS:
                raise self._error(
                    element,
                    f"valueof can only be used with {', '.join(sorted(VALUE_OF_OPERATORS))}, "
                    f"not {operator!r}.",
                )
            if values:
                raise self._error(
                    element, "a condition with valueof compares two columns and takes no value."
                )
            if not _NAME_RE.match(value_of):
                raise self._error(element, f"valueof={value_of!r} is not a valid logical name.")
        elif not spec.arity.accepts(len(values)):
            raise self._error(
                element,
                f"operator {operator!r} takes {spec.arity.value}, but {len(values)} "
                f"{'was' if len(values) == 1 else 'were'} given.",
            )
        for value in values:
            self._check_value_kind(element, operator, spec.value_kind, value)
        return Condition(attribute, operator, tuple(values), entity_alias, value_of)

    def _check_value_kind(self, element: ET.Element, operator: str, kind: ValueKind, value: str) -> None:
        if kind is ValueKind.COUNT and not (_is_int(value) and int(value) >= 1):
            raise self._error(
                element, f"operator {operator!r} needs a whole number of at least 1, not {value!r}."
            )
        if kind is ValueKind.INTEGER and not _is_int(value):
            raise self._error(element, f"operator {operator!r} needs whole numbers, not {value!r}.")
        if kind is ValueKind.DATE and not is_iso_date(value):
            raise self._error(
                element, f"operator {operator!r} needs a date such as 2024-05-31, not {value!r}."
            )

    def _link(self, element: ET.Element, depth: int) -> LinkEntity:
        self._depth(element, depth)
        self._check_attrs(element, _LINK_ATTRS)
        name = self._required(element, "name")
        from_attribute = self._required(element, "from")
        to_attribute = self._required(element, "to")
        raw_type = element.get("link-type", "inner")
        try:
            link_type = LinkType(raw_type.strip().lower())
        except ValueError:
            allowed = ", ".join(t.value for t in LinkType)
            raise self._error(element, f"link-type={raw_type!r} is not one of: {allowed}.") from None
        alias = element.get("alias") or None
        if alias is not None and not _NAME_RE.match(alias):
            raise self._error(element, f"alias={alias!r} is not a valid alias (letters, digits, _).")
        group, links, orders = self._body(element, depth)
        return LinkEntity(name, from_attribute, to_attribute, link_type, alias, group, links, orders)

    def _order(self, element: ET.Element) -> Order:
        self._check_attrs(element, _ORDER_ATTRS)
        self._check_no_text(element)
        attribute = self._required(element, "attribute")
        raw = element.get("descending", "false").strip().lower()
        if raw not in ("true", "false"):
            raise self._error(element, f'descending={raw!r} must be "true" or "false".')
        return Order(attribute, raw == "true")

    def _check_aliases(self, entity: ET.Element, result: FetchFilter) -> None:
        seen: set[str] = set()
        for link in result.walk_links():
            if link.alias is not None:
                if link.alias in seen:
                    raise self._error(
                        entity, f"the alias {link.alias!r} is used by more than one <link-entity>."
                    )
                seen.add(link.alias)
        names = seen | {link.name for link in result.walk_links() if link.alias is None}
        groups = [result.filter] + [link.filter for link in result.walk_links()]
        for group in groups:
            for condition in group.walk_conditions() if group else ():
                if condition.entity_alias is not None and condition.entity_alias not in names:
                    raise self._error(
                        entity,
                        f"the condition on {condition.attribute!r} refers to entityname="
                        f"{condition.entity_alias!r}, but no <link-entity> has that alias.",
                    )
