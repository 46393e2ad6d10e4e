"""The filter editor's tree: entity → AND/OR groups, conditions and link-entities, editable in place.

A mutable node tree mirrors the frozen ``FetchFilter`` (``from_filter`` / ``to_filter``): the root
is the filtered entity, its children are the conditions and groups of its top ``<filter>`` followed
by its link-entities, and every link-entity is a scope of its own. Three columns: item (field,
group or entity), operator (or AND/OR, or join type) and value. Field, operator and value choices
come from the server's metadata through :class:`FieldCatalog`; option-set values show their labels
and lookups show their target entities.

Structural edits (add, delete, group, ungroup, link) reset the model: trees here have a handful of
rows, and a reset keeps the model provably consistent. ``filter_changed`` fires after every edit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont

from crmsync_desktop.sync.connectors.types import FieldType, RelationshipKind
from crmsync_desktop.sync.filters import (
    OPERATORS,
    Arity,
    AttributeType,
    Condition,
    FetchFilter,
    FilterGroup,
    FilterType,
    LinkEntity,
    LinkType,
    Order,
    TypeFamily,
)
from crmsync_desktop.sync.filters.operators import FAMILY_OF_TYPE, ValueKind
from crmsync_desktop.sync.metadata.schema import Schema

__all__ = [
    "OPERATOR_LABELS",
    "ConditionNode",
    "FieldCatalog",
    "FieldInfo",
    "FilterTreeModel",
    "GroupNode",
    "LinkOption",
    "Node",
    "ScopeNode",
    "from_filter",
    "operator_label",
    "to_filter",
]

_Index = QModelIndex | QPersistentModelIndex

OPERATOR_LABELS = {
    "eq": "Equals", "ne": "Does not equal", "neq": "Does not equal", "gt": "Greater than",
    "ge": "Greater than or equal", "lt": "Less than", "le": "Less than or equal", "between": "Between",
    "not-between": "Not between", "in": "Is one of", "not-in": "Is not one of", "null": "Does not contain data",
    "not-null": "Contains data", "like": "Like", "not-like": "Not like", "begins-with": "Begins with",
    "not-begin-with": "Does not begin with", "ends-with": "Ends with", "not-end-with": "Does not end with",
    "contain-values": "Contains values", "not-contain-values": "Does not contain values",
    "eq-userid": "Equals current user", "ne-userid": "Does not equal current user",
    "eq-businessid": "Equals current business unit", "ne-businessid": "Does not equal current business unit",
    "eq-userteams": "Equals current user's teams", "eq-useroruserteams": "Equals current user or their teams",
    "eq-useroruserhierarchy": "Equals current user or their reports",
    "eq-useroruserhierarchyandteams": "Equals current user, reports or teams",
    "eq-userlanguage": "Equals current user's language", "on": "On", "on-or-before": "On or before",
    "on-or-after": "On or after", "olderthan-x-minutes": "Older than X minutes",
    "olderthan-x-hours": "Older than X hours", "olderthan-x-days": "Older than X days",
    "olderthan-x-weeks": "Older than X weeks", "olderthan-x-months": "Older than X months",
    "olderthan-x-years": "Older than X years", "eq-or-above": "Equals or above", "eq-or-under": "Equals or under",
}
"""Woodford-style names of the operators (the rest are derived from the FetchXML name)."""

_FAMILY_DEFAULT_OPERATOR = {
    TypeFamily.STRING: "like", TypeFamily.DATETIME: "last-x-days", TypeFamily.ID: "eq",
    TypeFamily.CHOICE: "eq", TypeFamily.BOOLEAN: "eq", TypeFamily.MULTICHOICE: "contain-values",
}
_ATTRIBUTE_TYPE = {
    FieldType.MULTI_PICKLIST: AttributeType.MULTISELECT_PICKLIST,
    FieldType.ROWVERSION: AttributeType.BIGINT,
    FieldType.BINARY: AttributeType.FILE,
    FieldType.OTHER: AttributeType.VIRTUAL,
}
_LINK_LABELS = {
    LinkType.INNER: "Inner join (must have)", LinkType.OUTER: "Outer join (may have)", LinkType.ANY: "Any",
    LinkType.NOT_ANY: "Has none", LinkType.ALL: "All", LinkType.NOT_ALL: "Not all", LinkType.EXISTS: "Exists",
    LinkType.IN: "In", LinkType.MATCH_FIRST_ROW: "Match first row",
}
GROUP_LABELS = {FilterType.AND: "All of these (AND)", FilterType.OR: "Any of these (OR)"}
_MUTED = QColor("#6b6b6b")
_MISSING = QColor("#b3261e")


def operator_label(name: str) -> str:
    return OPERATOR_LABELS.get(name) or name.replace("-x-", " X ").replace("-", " ").capitalize()


def link_type_label(link_type: LinkType) -> str:
    return _LINK_LABELS.get(link_type, link_type.value)


# -- metadata ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One filterable column as the pickers show it."""

    logical_name: str
    label: str
    type: AttributeType
    family: TypeFamily
    targets: tuple[str, ...] = ()
    options: tuple[tuple[int, str], ...] = ()

    @property
    def display(self) -> str:
        return f"{self.label} ({self.logical_name})" if self.label and self.label != self.logical_name \
            else self.logical_name


@dataclass(frozen=True, slots=True)
class LinkOption:
    """A relationship of an entity, as a link-entity it can add."""

    schema_name: str
    entity: str
    from_attribute: str  # on the linked entity
    to_attribute: str  # on the parent
    description: str


class FieldCatalog:
    """Fields, operators and relationships of the server's entities, from the replicated ``Schema``."""

    def __init__(self, schema: Schema | None = None) -> None:
        self.schema = schema or Schema()
        self._fields: dict[str, dict[str, FieldInfo]] = {}
        for entity in self.schema.entities:
            infos = {}
            for f in entity.fields:
                attr_type = _ATTRIBUTE_TYPE.get(f.type) or AttributeType(f.type.value)
                infos[f.logical_name] = FieldInfo(
                    f.logical_name, f.label or f.logical_name, attr_type, FAMILY_OF_TYPE[attr_type], tuple(f.targets),
                    tuple((o.value, o.label) for o in f.options),
                )
            self._fields[entity.logical_name] = infos

    @property
    def loaded(self) -> bool:
        return bool(self._fields)

    def entity_label(self, entity: str) -> str:
        meta = self.schema.entity(entity)
        return meta.label if meta is not None and meta.label else entity

    def fields(self, entity: str) -> list[FieldInfo]:
        """The filterable columns of ``entity``, by label."""
        return sorted(
            (f for f in self._fields.get(entity, {}).values() if f.family is not TypeFamily.UNFILTERABLE),
            key=lambda f: (f.label.lower(), f.logical_name),
        )

    def field(self, entity: str, name: str) -> FieldInfo | None:
        return self._fields.get(entity, {}).get(name)

    @staticmethod
    def operators(family: TypeFamily | None) -> list[str]:
        """The operators that apply to a column family (every operator when unknown)."""
        return [name for name, spec in OPERATORS.items()
                if name != "neq" and (family is None or family in spec.families)]

    @staticmethod
    def default_operator(family: TypeFamily | None) -> str:
        return _FAMILY_DEFAULT_OPERATOR.get(family, "eq") if family is not None else "eq"

    def links(self, entity: str) -> list[LinkOption]:
        """Link-entities ``entity`` can join: parents through its lookups, children through theirs, N:N."""
        out: list[LinkOption] = []
        for r in self.schema.relationships_of(entity):
            if r.kind is RelationshipKind.ONE_TO_MANY:
                if r.referencing_entity == entity:
                    label = self.field(entity, r.referencing_attribute)
                    out.append(LinkOption(
                        r.schema_name, r.referenced_entity, r.referenced_attribute, r.referencing_attribute,
                        f"{self.entity_label(r.referenced_entity)} — parent through "
                        f"{label.label if label else r.referencing_attribute}",
                    ))
                if r.referenced_entity == entity:
                    label = self.field(r.referencing_entity, r.referencing_attribute)
                    out.append(LinkOption(
                        r.schema_name, r.referencing_entity, r.referencing_attribute, r.referenced_attribute,
                        f"{self.entity_label(r.referencing_entity)} — children through their "
                        f"{label.label if label else r.referencing_attribute}",
                    ))
            elif entity in (r.entity1, r.entity2) and r.intersect_entity:
                mine = r.entity1_intersect_attribute if r.entity1 == entity else r.entity2_intersect_attribute
                meta = self.schema.entity(entity)
                out.append(LinkOption(
                    r.schema_name, r.intersect_entity, mine, meta.primary_id if meta else mine,
                    f"{r.intersect_entity} — N:N {r.schema_name}",
                ))
        seen: set[tuple[str, str, str]] = set()
        unique = []
        for option in sorted(out, key=lambda o: o.description.lower()):
            key = (option.entity, option.from_attribute, option.to_attribute)
            if key not in seen:
                seen.add(key)
                unique.append(option)
        return unique


# -- nodes -------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    parent: Node | None = field(default=None, repr=False)
    children: list[Node] = field(default_factory=list, repr=False)

    def add(self, child: Node, at: int | None = None) -> Node:
        child.parent = self
        self.children.insert(len(self.children) if at is None else at, child)
        return child

    def row(self) -> int:
        return self.parent.children.index(self) if self.parent is not None else 0

    def scope(self) -> ScopeNode:
        node: Node | None = self
        while node is not None and not isinstance(node, ScopeNode):
            node = node.parent
        assert isinstance(node, ScopeNode)
        return node

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(eq=False)
class ConditionNode(Node):
    attribute: str = ""
    operator: str = "eq"
    values: list[str] = field(default_factory=list)
    entity_alias: str | None = None
    value_of: str | None = None


@dataclass(eq=False)
class GroupNode(Node):
    type: FilterType = FilterType.AND


@dataclass(eq=False)
class ScopeNode(Node):
    """The root entity, or a link-entity (``is_link``)."""

    entity: str = ""
    type: FilterType = FilterType.AND  # of its top <filter>
    is_link: bool = False
    from_attribute: str = ""
    to_attribute: str = ""
    link_type: LinkType = LinkType.INNER
    alias: str | None = None
    orders: tuple[Order, ...] = ()
    count: int | None = None  # root only

    @property
    def items(self) -> list[Node]:
        return [c for c in self.children if not isinstance(c, ScopeNode)]

    @property
    def links(self) -> list[ScopeNode]:
        return [c for c in self.children if isinstance(c, ScopeNode)]


def _group_items(parent: Node, group: FilterGroup | None) -> None:
    if group is None:
        return
    for item in group.items:
        if isinstance(item, Condition):
            parent.add(ConditionNode(attribute=item.attribute, operator=item.operator, values=list(item.values),
                                     entity_alias=item.entity_alias, value_of=item.value_of))
        else:
            _group_items(parent.add(GroupNode(type=item.type)), item)


def _scope(node: ScopeNode, group: FilterGroup | None, links: Iterable[LinkEntity]) -> ScopeNode:
    if group is not None:
        node.type = group.type
    _group_items(node, group)
    for link in links:
        child = ScopeNode(entity=link.name, type=FilterType.AND, is_link=True, from_attribute=link.from_attribute,
                          to_attribute=link.to_attribute, link_type=link.link_type, alias=link.alias,
                          orders=link.orders)
        node.add(_scope(child, link.filter, link.links))
    return node


def from_filter(f: FetchFilter, entity: str) -> ScopeNode:
    """The editable tree of ``f`` (``NO_FILTER``: the bare entity, "all records")."""
    root = ScopeNode(entity=f.entity or entity, orders=f.orders, count=f.count)
    return _scope(root, f.filter, f.links)


def _is_complete(node: ConditionNode) -> bool:
    spec = OPERATORS.get(node.operator)
    return bool(node.attribute) and spec is not None and (
        node.value_of is not None or spec.arity.accepts(len([v for v in node.values if v.strip()]))
    )


def _items(nodes: Sequence[Node], complete_only: bool) -> tuple[Condition | FilterGroup, ...]:
    out: list[Condition | FilterGroup] = []
    for node in nodes:
        if isinstance(node, ConditionNode):
            if complete_only and not _is_complete(node):
                continue
            out.append(Condition(node.attribute, node.operator, tuple(v.strip() for v in node.values if v.strip()),
                                 node.entity_alias, node.value_of))
        elif isinstance(node, GroupNode):
            items = _items(node.children, complete_only)
            if items or not complete_only:
                out.append(FilterGroup(node.type, items))
    return tuple(out)


def _link(node: ScopeNode, complete_only: bool) -> LinkEntity:
    items = _items(node.items, complete_only)
    return LinkEntity(node.entity, node.from_attribute, node.to_attribute, node.link_type, node.alias,
                      FilterGroup(node.type, items) if items else None,
                      tuple(_link(child, complete_only) for child in node.links), node.orders)


def to_filter(root: ScopeNode, *, complete_only: bool = False) -> FetchFilter:
    """The ``FetchFilter`` of the tree; ``complete_only`` leaves out conditions still being filled in."""
    items = _items(root.items, complete_only)
    return FetchFilter(
        entity=root.entity,
        filter=FilterGroup(root.type, items) if items else None,
        links=tuple(_link(child, complete_only) for child in root.links),
        orders=root.orders,
        count=root.count,
    )


# -- the Qt model ------------------------------------------------------------------------------------


class FilterTreeModel(QAbstractItemModel):
    """Entity → groups/conditions/links; columns Item, Operator, Value.

    Signals:
        filter_changed(): after any edit (values or structure).
    """

    HEADERS = ("Item", "Operator", "Value")
    COL_ITEM, COL_OPERATOR, COL_VALUE = range(3)
    NodeRole = Qt.ItemDataRole.UserRole + 1

    filter_changed = Signal()

    def __init__(self, entity: str, catalog: FieldCatalog | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.catalog = catalog or FieldCatalog()
        self.root = ScopeNode(entity=entity)
        self._alias_counter = itertools.count(1)

    # -- whole-tree operations ---------------------------------------------------------------------

    def set_catalog(self, catalog: FieldCatalog) -> None:
        self.catalog = catalog
        if self.rowCount():
            self.dataChanged.emit(self.index(0, 0), self.index(0, 2))
            self.layoutChanged.emit()

    def set_filter(self, f: FetchFilter, *, notify: bool = True) -> None:
        self.beginResetModel()
        self.root = from_filter(f, self.root.entity)
        self.endResetModel()
        if notify:
            self.filter_changed.emit()

    def fetch_filter(self, *, complete_only: bool = False) -> FetchFilter:
        return to_filter(self.root, complete_only=complete_only)

    def node(self, index: _Index) -> Node:
        return index.internalPointer() if index.isValid() else self._invisible  # type: ignore[no-any-return]

    def index_of(self, node: Node, column: int = 0) -> QModelIndex:
        if node is self.root:
            return self.createIndex(0, column, self.root)
        return self.createIndex(node.row(), column, node)

    def incomplete(self) -> list[str]:
        """What still has to be filled in, in tree order (the dialog lists it under the tree)."""
        problems = []
        for node in self.root.walk():
            if not isinstance(node, ConditionNode):
                continue
            scope = node.scope()
            where = f"{scope.entity} > condition {node.attribute or '(new)'}"
            if not node.attribute:
                problems.append(f"{where}: choose a field.")
            elif OPERATORS.get(node.operator) is None:
                problems.append(f"{where}: choose an operator.")
            elif not _is_complete(node):
                spec = OPERATORS[node.operator]
                problems.append(f"{where}: '{operator_label(node.operator)}' needs {spec.arity.value}.")
        return problems

    # -- structural edits --------------------------------------------------------------------------

    def _structure(self, change: Any) -> Any:
        self.beginResetModel()
        try:
            result = change()
        finally:
            self.endResetModel()
        self.filter_changed.emit()
        return result

    @staticmethod
    def container_for(node: Node) -> Node:
        """Where a new condition goes when ``node`` is selected: into a group/scope, or next to a condition."""
        if isinstance(node, (GroupNode, ScopeNode)):
            return node
        assert node.parent is not None
        return node.parent

    def add_condition(self, target: Node | None = None, attribute: str = "") -> ConditionNode:
        container = self.container_for(target or self.root)
        scope = container.scope()
        info = self.catalog.field(scope.entity, attribute) if attribute else None
        operator = self.catalog.default_operator(info.family if info else None)
        node = ConditionNode(attribute=attribute, operator=operator)

        def change() -> ConditionNode:
            at = len(scope.items) if container is scope else None  # conditions before the links
            return container.add(node, at)  # type: ignore[return-value]

        return self._structure(change)  # type: ignore[no-any-return]

    def add_link(self, target: Node | None, option: LinkOption, link_type: LinkType = LinkType.INNER) -> ScopeNode:
        scope = (target or self.root).scope()
        link = ScopeNode(entity=option.entity, is_link=True, from_attribute=option.from_attribute,
                         to_attribute=option.to_attribute, link_type=link_type)
        return self._structure(lambda: scope.add(link))  # type: ignore[no-any-return]

    def remove(self, nodes: Iterable[Node]) -> None:
        doomed = [n for n in nodes if n is not self.root and n.parent is not None]
        if not doomed:
            return

        def change() -> None:
            for node in doomed:
                if node.parent is not None and node in node.parent.children:
                    node.parent.children.remove(node)
                    node.parent = None

        self._structure(change)

    @staticmethod
    def groupable(nodes: Sequence[Node]) -> bool:
        """Conditions/groups that share one parent (what Group AND / Group OR wrap)."""
        return bool(nodes) and all(isinstance(n, (ConditionNode, GroupNode)) for n in nodes) and \
            len({id(n.parent) for n in nodes}) == 1

    def group(self, nodes: Sequence[Node], kind: FilterType) -> GroupNode | None:
        if not self.groupable(nodes):
            return None
        parent = nodes[0].parent
        assert parent is not None
        ordered = sorted(nodes, key=lambda n: n.row())

        def change() -> GroupNode:
            at = ordered[0].row()
            for node in ordered:
                parent.children.remove(node)
            group = GroupNode(type=kind)
            parent.add(group, at)
            for node in ordered:
                group.add(node)
            return group

        return self._structure(change)  # type: ignore[no-any-return]

    def ungroup(self, node: Node) -> bool:
        if not isinstance(node, GroupNode) or node.parent is None:
            return False
        parent = node.parent

        def change() -> None:
            at = node.row()
            parent.children.remove(node)
            for offset, child in enumerate(list(node.children)):
                parent.add(child, at + offset)
            node.children.clear()

        self._structure(change)
        return True

    def toggle_and_or(self, node: Node) -> bool:
        target = node if isinstance(node, (GroupNode, ScopeNode)) else node.parent
        if not isinstance(target, (GroupNode, ScopeNode)):
            return False
        target.type = FilterType.OR if target.type is FilterType.AND else FilterType.AND
        index = self.index_of(target, self.COL_OPERATOR)
        self.dataChanged.emit(index, index)
        self.filter_changed.emit()
        return True

    # -- QAbstractItemModel --------------------------------------------------------------------------

    @property
    def _invisible(self) -> Node:
        return _Invisible(self.root)

    def index(self, row: int, column: int, parent: _Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        if column < 0 or column >= len(self.HEADERS) or row < 0:
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(0, column, self.root) if row == 0 else QModelIndex()
        if parent.column() != 0:
            return QModelIndex()
        node: Node = parent.internalPointer()
        if row >= len(node.children):
            return QModelIndex()
        return self.createIndex(row, column, node.children[row])

    def parent(self, index: _Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        node: Node = index.internalPointer()
        if node is self.root or node.parent is None:
            return QModelIndex()
        return self.index_of(node.parent, 0)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        if not parent.isValid():
            return 1
        if parent.column() != 0:
            return 0
        return len(parent.internalPointer().children)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        node, col = index.internalPointer(), index.column()
        editable = False
        if isinstance(node, ConditionNode):
            spec = OPERATORS.get(node.operator)
            editable = col in (self.COL_ITEM, self.COL_OPERATOR) or (
                col == self.COL_VALUE and node.value_of is None and spec is not None and spec.arity is not Arity.NONE
            )
        elif isinstance(node, (GroupNode, ScopeNode)):
            editable = col == self.COL_OPERATOR
        if editable:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def field_info(self, node: ConditionNode) -> FieldInfo | None:
        scope = node.scope()
        entity = scope.entity
        if node.entity_alias:
            for link in self.root.walk():
                if isinstance(link, ScopeNode) and link.is_link and (link.alias or link.entity) == node.entity_alias:
                    entity = link.entity
        return self.catalog.field(entity, node.attribute) if node.attribute else None

    def condition_entity(self, node: ConditionNode) -> str:
        info_entity = node.scope().entity
        if node.entity_alias:
            for link in self.root.walk():
                if isinstance(link, ScopeNode) and link.is_link and (link.alias or link.entity) == node.entity_alias:
                    return link.entity
        return info_entity

    def value_text(self, node: ConditionNode) -> str:
        spec = OPERATORS.get(node.operator)
        if spec is None or spec.arity is Arity.NONE:
            return ""
        if node.value_of is not None:
            return f"(column {node.value_of})"
        info = self.field_info(node)
        shown = []
        for value in node.values:
            text = value
            if info is not None and spec.value_kind is ValueKind.TYPED:
                if info.family in (TypeFamily.CHOICE, TypeFamily.MULTICHOICE):
                    labels = dict(info.options)
                    try:
                        text = labels.get(int(value), value)
                    except ValueError:
                        pass
                elif info.family is TypeFamily.BOOLEAN:
                    text = {"1": "Yes", "true": "Yes", "0": "No", "false": "No"}.get(value.lower(), value)
                elif info.family is TypeFamily.ID and info.targets:
                    text = f"{value} ({' or '.join(info.targets)})"
            elif info is not None and spec.value_kind is ValueKind.INTEGER and info.family is TypeFamily.MULTICHOICE:
                try:
                    text = dict(info.options).get(int(value), value)
                except ValueError:
                    pass
            shown.append(text)
        if not shown:
            return "(enter a value)"
        return " and ".join(shown) if spec.arity is Arity.TWO else ", ".join(shown)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node: Node = index.internalPointer()
        col = index.column()
        if role == self.NodeRole:
            return node
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._text(node, col)
        if role == Qt.ItemDataRole.EditRole:
            if isinstance(node, ConditionNode):
                return (node.attribute, node.operator, list(node.values))[col]
            if isinstance(node, ScopeNode) and node.is_link and col == self.COL_OPERATOR:
                return node.link_type.value
            if isinstance(node, (GroupNode, ScopeNode)) and col == self.COL_OPERATOR:
                return node.type.value
            return None
        if role == Qt.ItemDataRole.FontRole and isinstance(node, ScopeNode) and col == self.COL_ITEM:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole:
            if isinstance(node, ConditionNode):
                if col == self.COL_ITEM and (not node.attribute or (self.catalog.loaded and self.field_info(node) is None)):
                    return QBrush(_MISSING)
                if col == self.COL_VALUE and not _is_complete(node) and node.attribute:
                    return QBrush(_MISSING)
            if isinstance(node, GroupNode) or (isinstance(node, ScopeNode) and col == self.COL_VALUE):
                return QBrush(_MUTED)
        return None

    def _text(self, node: Node, col: int) -> str:
        if isinstance(node, ScopeNode):
            label = self.catalog.entity_label(node.entity)
            name = f"{label} ({node.entity})" if label != node.entity else node.entity
            if not node.is_link:
                if col == self.COL_ITEM:
                    return name
                if col == self.COL_OPERATOR:
                    return GROUP_LABELS[node.type] if node.items else ""
                return "All records" if to_filter(node).is_empty else ""
            if col == self.COL_ITEM:
                return f"↳ {name}" + (f" as {node.alias}" if node.alias else "")
            if col == self.COL_OPERATOR:
                return link_type_label(node.link_type)
            parent = node.parent.scope().entity if node.parent is not None else ""
            return f"{node.entity}.{node.from_attribute} = {parent}.{node.to_attribute}"
        if isinstance(node, GroupNode):
            if col == self.COL_ITEM:
                return "AND group" if node.type is FilterType.AND else "OR group"
            if col == self.COL_OPERATOR:
                return GROUP_LABELS[node.type]
            return ""
        assert isinstance(node, ConditionNode)
        if col == self.COL_ITEM:
            if not node.attribute:
                return "(choose a field)"
            info = self.field_info(node)
            text = info.display if info is not None else node.attribute
            return f"{node.entity_alias}.{text}" if node.entity_alias else text
        if col == self.COL_OPERATOR:
            return operator_label(node.operator)
        return self.value_text(node)

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.EditRole:
            return False
        node: Node = index.internalPointer()
        col = index.column()
        if isinstance(node, ConditionNode):
            if col == self.COL_ITEM:
                self.set_condition_field(node, str(value))
            elif col == self.COL_OPERATOR:
                self.set_condition_operator(node, str(value))
            elif col == self.COL_VALUE:
                values = [value] if isinstance(value, str) else list(value)
                node.values = [str(v) for v in values]
            else:
                return False
        elif isinstance(node, ScopeNode) and node.is_link and col == self.COL_OPERATOR:
            node.link_type = LinkType(str(value))
        elif isinstance(node, (GroupNode, ScopeNode)) and col == self.COL_OPERATOR:
            node.type = FilterType(str(value))
        else:
            return False
        first, last = self.index_of(node, 0), self.index_of(node, 2)
        self.dataChanged.emit(first, last)
        self.filter_changed.emit()
        return True

    def set_condition_field(self, node: ConditionNode, attribute: str) -> None:
        if attribute == node.attribute:
            return
        old = self.field_info(node)
        node.attribute = attribute
        new = self.field_info(node)
        if new is None:
            return
        if node.operator not in self.catalog.operators(new.family):
            node.operator = self.catalog.default_operator(new.family)
            node.values = []
        elif old is None or old.family is not new.family:
            node.values = []

    def set_condition_operator(self, node: ConditionNode, operator: str) -> None:
        if operator not in OPERATORS or operator == node.operator:
            return
        old, new = OPERATORS.get(node.operator), OPERATORS[operator]
        node.operator = operator
        if new.arity is Arity.NONE or old is None or old.value_kind is not new.value_kind:
            node.values = []
        elif new.arity is Arity.ONE:
            node.values = node.values[:1]
        elif new.arity is Arity.TWO:
            node.values = node.values[:2]


class _Invisible(Node):
    """The parent of the root row (only ever returned by ``node(QModelIndex())``)."""

    def __init__(self, root: ScopeNode) -> None:
        super().__init__(None, [root])
