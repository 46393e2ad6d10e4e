"""Canonical FetchXML for a filter (``render_filter``) and its one-line summary (``summarize_filter``).

The canonical form is indented by two spaces, attributes in a fixed order, single-value operators
as ``value="…"`` and multi-value operators as ``<value>`` children, so equal filters render to equal
text and ``parse_filter(render_filter(f)) == f``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from crmsync_desktop.errors import FilterError
from crmsync_desktop.sync.filters.model import (
    Condition,
    FetchFilter,
    FilterGroup,
    LinkEntity,
    LinkType,
    Order,
)
from crmsync_desktop.sync.filters.operators import OPERATORS, Arity

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _attr(value: str) -> str:
    if _XML_INVALID.search(value):
        raise FilterError(f"The value {value!r} contains a control character that XML cannot carry.")
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


def _text(value: str) -> str:
    if _XML_INVALID.search(value):
        raise FilterError(f"The value {value!r} contains a control character that XML cannot carry.")
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _open(tag: str, attrs: list[tuple[str, str | None]]) -> str:
    parts = "".join(f' {name}="{_attr(value)}"' for name, value in attrs if value is not None)
    return f"<{tag}{parts}"


def _condition(c: Condition, indent: str) -> list[str]:
    spec = OPERATORS.get(c.operator)
    multi = spec is not None and spec.arity in (Arity.TWO, Arity.MANY)
    attrs: list[tuple[str, str | None]] = [
        ("attribute", c.attribute),
        ("operator", c.operator),
        ("entityname", c.entity_alias),
        ("valueof", c.value_of),
    ]
    if not multi and len(c.values) == 1:
        return [f"{indent}{_open('condition', [*attrs, ('value', c.values[0])])} />"]
    if not c.values:
        return [f"{indent}{_open('condition', attrs)} />"]
    lines = [f"{indent}{_open('condition', attrs)}>"]
    lines += [f"{indent}  <value>{_text(v)}</value>" for v in c.values]
    lines.append(f"{indent}</condition>")
    return lines


def _group(g: FilterGroup, indent: str) -> list[str]:
    head = f'{indent}<filter type="{g.type.value}"'
    if not g.items:
        return [f"{head} />"]
    lines = [f"{head}>"]
    for item in g.items:
        lines += (
            _condition(item, indent + "  ") if isinstance(item, Condition) else _group(item, indent + "  ")
        )
    lines.append(f"{indent}</filter>")
    return lines


def _orders(orders: tuple[Order, ...], indent: str) -> list[str]:
    return [
        f"{indent}{_open('order', [('attribute', o.attribute), ('descending', 'true' if o.descending else None)])} />"
        for o in orders
    ]


def _children(
    group: FilterGroup | None, links: tuple[LinkEntity, ...], orders: tuple[Order, ...], indent: str
) -> list[str]:
    lines = _orders(orders, indent)
    if group is not None:
        lines += _group(group, indent)
    for link in links:
        lines += _link(link, indent)
    return lines


def _link(link: LinkEntity, indent: str) -> list[str]:
    head = _open(
        "link-entity",
        [
            ("name", link.name),
            ("from", link.from_attribute),
            ("to", link.to_attribute),
            ("link-type", link.link_type.value),
            ("alias", link.alias),
        ],
    )
    body = _children(link.filter, link.links, link.orders, indent + "  ")
    if not body:
        return [f"{indent}{head} />"]
    return [f"{indent}{head}>", *body, f"{indent}</link-entity>"]


def render_filter(f: FetchFilter) -> str:
    """The canonical FetchXML of ``f``; the empty string for ``NO_FILTER``.

    Raises:
        FilterError: a value contains a control character XML 1.0 cannot represent.
    """
    if not f.entity:
        return ""
    fetch = _open("fetch", [("version", "1.0"), ("count", None if f.count is None else str(f.count))])
    entity = _open("entity", [("name", f.entity)])
    body = _children(f.filter, f.links, f.orders, "    ")
    if not body:
        return f"{fetch}>\n  {entity} />\n</fetch>"
    return "\n".join([f"{fetch}>", f"  {entity}>", *body, "  </entity>", "</fetch>"])


# --- one-line summary ------------------------------------------------------------------------------

DEFAULT_DISPLAY_NAMES: Mapping[str, str] = {
    "ownerid": "Owner",
    "owninguser": "Owning User",
    "owningteam": "Owning Team",
    "owningbusinessunit": "Business Unit",
    "statecode": "Status",
    "statuscode": "Status Reason",
    "createdon": "Created On",
    "modifiedon": "Modified On",
    "createdby": "Created By",
    "modifiedby": "Modified By",
}
"""Display names of the system columns most filters use; anything else shows its logical name."""

DEFAULT_VALUE_LABELS: Mapping[tuple[str, str], str] = {
    ("statecode", "0"): "Active",
    ("statecode", "1"): "Inactive",
}
"""Labels of the standard Status values, keyed by (column, value)."""

_LINK_WORDS = {
    LinkType.OUTER: "optionally with",
    LinkType.NOT_ANY: "without",
    LinkType.ALL: "with all",
    LinkType.NOT_ALL: "not with all",
}


class _Summarizer:
    def __init__(self, names: Mapping[str, str], labels: Mapping[tuple[str, str], str]) -> None:
        self._names = names
        self._labels = labels

    def _column(self, attribute: str, alias: str | None = None) -> str:
        name = self._names.get(attribute, attribute)
        return f"{alias}.{name}" if alias else name

    def condition(self, c: Condition) -> str:
        spec = OPERATORS[c.operator]
        if c.value_of is not None:
            values = [self._column(c.value_of)]
        else:
            values = [self._labels.get((c.attribute, v), v) for v in c.values]
        phrase = spec.phrase.format(*values, all=", ".join(values)) if values else spec.phrase
        return f"{self._column(c.attribute, c.entity_alias)} {phrase}"

    def group(self, g: FilterGroup, parent: FilterGroup | None) -> str:
        parts = [self.condition(i) if isinstance(i, Condition) else self.group(i, g) for i in g.items]
        text = f" {g.type.value} ".join(p for p in parts if p)
        # Parentheses only where they change the meaning: an "or" inside an "and" and vice versa.
        needs_parentheses = parent is not None and parent.type is not g.type and len(parts) > 1
        return f"({text})" if needs_parentheses else text

    def link(self, link: LinkEntity) -> str:
        words = _LINK_WORDS.get(link.link_type, "with")
        inner = self.body(link.filter, link.links)
        return f"{words} {link.name}" + (f" where {inner}" if inner else "")

    def body(self, group: FilterGroup | None, links: tuple[LinkEntity, ...]) -> str:
        parts = [self.group(group, None)] if group is not None and group.items else []
        parts += [self.link(link) for link in links]
        return " and ".join(parts)


def summarize_filter(
    f: FetchFilter,
    *,
    display_names: Mapping[str, str] | None = None,
    value_labels: Mapping[tuple[str, str], str] | None = None,
) -> str:
    """A one-line human summary for the entity grid.

    Args:
        f: the filter.
        display_names: column display names by logical name (added to ``DEFAULT_DISPLAY_NAMES``).
        value_labels: value labels by (column, value) (added to ``DEFAULT_VALUE_LABELS``).

    Returns:
        For example ``"Owner is current user and Status = Active"``; ``"All records"`` for no filter.
    """
    names = {**DEFAULT_DISPLAY_NAMES, **(display_names or {})}
    labels = {**DEFAULT_VALUE_LABELS, **(value_labels or {})}
    text = _Summarizer(names, labels).body(f.filter, f.links) or "All records"
    if f.count is not None:
        text += f" (first {f.count} records)"
    return text
