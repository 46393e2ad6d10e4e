"""In-place editors of the filter tree: field and operator pickers, and a value editor per type and arity.

Field: the filterable columns of the condition's entity, by label. Operator: those that apply to
the field's type family. Value: option sets by label (several with checkboxes for "in"), Yes/No,
dates with a calendar, counts with a spin box, lookups as a GUID with the target entities shown,
two inputs for "between", comma-separated lists for "in" on text and numbers.
"""

from __future__ import annotations

from PySide6.QtCore import (
    QAbstractItemModel,
    QDate,
    QModelIndex,
    QPersistentModelIndex,
    QRegularExpression,
    Qt,
)
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QSpinBox,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from crmsync_desktop.sync.filters import OPERATORS, Arity, FilterType, LinkType, TypeFamily
from crmsync_desktop.sync.filters.operators import ValueKind
from crmsync_desktop.ui.models.filter_tree_model import (
    GROUP_LABELS,
    ConditionNode,
    FieldInfo,
    FilterTreeModel,
    GroupNode,
    ScopeNode,
    link_type_label,
    operator_label,
)

__all__ = ["FilterItemDelegate", "ValueEditor"]

_Index = QModelIndex | QPersistentModelIndex
_GUID = QRegularExpression(r"^\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?$")
_COMMON_LINKS = (LinkType.INNER, LinkType.OUTER, LinkType.NOT_ANY, LinkType.ANY, LinkType.EXISTS)


class ValueEditor(QWidget):
    """Edits the value(s) of one condition; ``values()`` returns them as FetchXML strings."""

    def __init__(self, info: FieldInfo | None, operator: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAutoFillBackground(True)
        spec = OPERATORS[operator]
        self.operator = operator
        self.arity = spec.arity
        self.kind = spec.value_kind
        self.family = info.family if info is not None else None
        self.options = info.options if info is not None else ()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.inputs: list[QWidget] = []
        self.list: QListWidget | None = None
        choice = self.family in (TypeFamily.CHOICE, TypeFamily.MULTICHOICE) and self.options and \
            self.kind in (ValueKind.TYPED, ValueKind.INTEGER)
        if self.arity is Arity.MANY and choice:
            self.list = QListWidget()
            for value, label in self.options:
                item = QListWidgetItem(f"{label} ({value})")
                item.setData(Qt.ItemDataRole.UserRole, str(value))
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked)
                self.list.addItem(item)
            layout.addWidget(self.list)
            return
        count = 2 if self.arity is Arity.TWO else 1
        for i in range(count):
            if i:
                layout.addWidget(QLabel("and"))
            widget = self._input(info, choice)
            self.inputs.append(widget)
            layout.addWidget(widget, 1)

    def _input(self, info: FieldInfo | None, choice: bool) -> QWidget:
        if choice:
            combo = QComboBox()
            for value, label in self.options:
                combo.addItem(f"{label} ({value})", str(value))
            return combo
        if self.family is TypeFamily.BOOLEAN and self.kind is ValueKind.TYPED:
            combo = QComboBox()
            combo.addItem("Yes", "1")
            combo.addItem("No", "0")
            return combo
        if self.kind in (ValueKind.COUNT, ValueKind.INTEGER):
            spin = QSpinBox()
            spin.setRange(1 if self.kind is ValueKind.COUNT else -9999, 100000)
            spin.setValue(30 if self.kind is ValueKind.COUNT else 1)
            return spin
        if self.family is TypeFamily.DATETIME and self.kind in (ValueKind.TYPED, ValueKind.DATE):
            date = QDateEdit()
            date.setCalendarPopup(True)
            date.setDisplayFormat("yyyy-MM-dd")
            date.setDate(QDate.currentDate())
            return date
        line = QLineEdit()
        if self.family is TypeFamily.ID and self.kind is ValueKind.TYPED and self.arity is not Arity.MANY:
            targets = " or ".join(info.targets) if info is not None and info.targets else "the record"
            line.setPlaceholderText(f"id (GUID) of {targets}")
            line.setValidator(QRegularExpressionValidator(_GUID, line))
        elif self.arity is Arity.MANY:
            line.setPlaceholderText("values separated by commas")
        elif self.kind is ValueKind.TEXT:
            line.setPlaceholderText("text; % matches any characters" if "like" in self.operator else "text")
        return line

    def set_values(self, values: list[str]) -> None:
        if self.list is not None:
            wanted = set(values)
            for row in range(self.list.count()):
                item = self.list.item(row)
                checked = item.data(Qt.ItemDataRole.UserRole) in wanted
                item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            return
        if self.arity is Arity.MANY and isinstance(self.inputs[0], QLineEdit):
            self.inputs[0].setText(", ".join(values))
            return
        for widget, value in zip(self.inputs, values, strict=False):
            if isinstance(widget, QComboBox):
                at = widget.findData(value)
                if at < 0 and value.lower() in ("true", "false"):
                    at = widget.findData("1" if value.lower() == "true" else "0")
                if at >= 0:
                    widget.setCurrentIndex(at)
            elif isinstance(widget, QSpinBox):
                try:
                    widget.setValue(int(value))
                except ValueError:
                    pass
            elif isinstance(widget, QDateEdit):
                date = QDate.fromString(value[:10], "yyyy-MM-dd")
                if date.isValid():
                    widget.setDate(date)
            elif isinstance(widget, QLineEdit):
                widget.setText(value)

    def values(self) -> list[str]:
        if self.list is not None:
            return [self.list.item(r).data(Qt.ItemDataRole.UserRole) for r in range(self.list.count())
                    if self.list.item(r).checkState() == Qt.CheckState.Checked]
        if self.arity is Arity.MANY and isinstance(self.inputs[0], QLineEdit):
            return [part.strip() for part in self.inputs[0].text().split(",") if part.strip()]
        out = []
        for widget in self.inputs:
            if isinstance(widget, QComboBox):
                out.append(str(widget.currentData()))
            elif isinstance(widget, QSpinBox):
                out.append(str(widget.value()))
            elif isinstance(widget, QDateEdit):
                out.append(widget.date().toString("yyyy-MM-dd"))
            elif isinstance(widget, QLineEdit):
                out.append(widget.text().strip())
        return out


class FilterItemDelegate(QStyledItemDelegate):
    """Creates the editor that fits the cell: field, operator, value, AND/OR, join type."""

    def _model(self, index: _Index) -> FilterTreeModel:
        model = index.model()
        assert isinstance(model, FilterTreeModel)
        return model

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: _Index) -> QWidget:
        model = self._model(index)
        node = model.node(index)
        col = index.column()
        if isinstance(node, ConditionNode):
            entity = model.condition_entity(node)
            if col == FilterTreeModel.COL_ITEM:
                combo = QComboBox(parent)
                for info in model.catalog.fields(entity):
                    combo.addItem(info.display, info.logical_name)
                if combo.findData(node.attribute) < 0 and node.attribute:
                    combo.addItem(node.attribute, node.attribute)
                combo.setMaxVisibleItems(20)
                return combo
            if col == FilterTreeModel.COL_OPERATOR:
                combo = QComboBox(parent)
                info = model.field_info(node)
                for name in model.catalog.operators(info.family if info else None):
                    combo.addItem(operator_label(name), name)
                combo.setMaxVisibleItems(20)
                return combo
            return ValueEditor(model.field_info(node), node.operator, parent)
        combo = QComboBox(parent)
        if isinstance(node, ScopeNode) and node.is_link:
            for link_type in _COMMON_LINKS:
                combo.addItem(link_type_label(link_type), link_type.value)
        elif isinstance(node, (GroupNode, ScopeNode)):
            for kind in FilterType:
                combo.addItem(GROUP_LABELS[kind], kind.value)
        return combo

    def setEditorData(self, editor: QWidget, index: _Index) -> None:
        value = index.data(Qt.ItemDataRole.EditRole)
        if isinstance(editor, ValueEditor):
            editor.set_values(list(value or []))
        elif isinstance(editor, QComboBox):
            at = editor.findData(value)
            if at >= 0:
                editor.setCurrentIndex(at)

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: _Index) -> None:
        if isinstance(editor, ValueEditor):
            model.setData(index, editor.values(), Qt.ItemDataRole.EditRole)
        elif isinstance(editor, QComboBox):
            model.setData(index, editor.currentData(), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: _Index) -> None:
        rect = option.rect  # type: ignore[attr-defined]
        if isinstance(editor, ValueEditor) and editor.list is not None:
            rect = rect.adjusted(0, 0, 0, min(160, 22 * max(1, editor.list.count())))
        editor.setGeometry(rect)
