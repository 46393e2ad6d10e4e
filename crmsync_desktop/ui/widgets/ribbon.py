"""A Woodford-style ribbon: groups of large icon-over-label buttons with a caption under each group.

The buttons are plain ``QToolButton``s bound to ``QAction``s, so enabling, shortcuts, menus and
tests all go through the actions; the ribbon only lays them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolBar, QToolButton, QVBoxLayout, QWidget

from crmsync_desktop.ui.icons import RESOURCES_DIR

__all__ = ["TOOLBAR_ICON_DIR", "RibbonGroup", "add_ribbon_group", "toolbar_icon"]

TOOLBAR_ICON_DIR = RESOURCES_DIR / "icons"
ICON_SIZE = QSize(28, 28)


@cache
def toolbar_icon(name: str) -> QIcon:
    """The toolbar icon ``name`` (an SVG shipped in ``resources/icons``; needs a QGuiApplication)."""
    path = TOOLBAR_ICON_DIR / f"{name}.svg"
    if not path.is_file():
        raise FileNotFoundError(f"toolbar icon missing from the package: {path}")
    return QIcon(str(path))


class RibbonGroup(QWidget):
    """A row of buttons for ``actions`` with ``title`` centred underneath."""

    def __init__(self, title: str, actions: Sequence[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"ribbon{title.replace(' ', '')}")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 2, 6, 0)
        outer.setSpacing(0)
        row = QHBoxLayout()
        row.setSpacing(2)
        self.buttons: list[QToolButton] = []
        for action in actions:
            button = QToolButton(self)
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            button.setIconSize(ICON_SIZE)
            button.setAutoRaise(True)
            button.setMinimumWidth(64)
            if action.menu() is not None:
                button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
            row.addWidget(button)
            self.buttons.append(button)
            button.setVisible(action.isVisible())  # a tool button does not follow its action's visibility
            action.changed.connect(lambda b=button, a=action: b.setVisible(a.isVisible()))
        outer.addLayout(row)
        caption = QLabel(title, self)
        caption.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        caption.setObjectName("ribbonCaption")
        caption.setStyleSheet("color: palette(mid); font-size: 8pt;")
        outer.addWidget(caption)


def add_ribbon_group(toolbar: QToolBar, title: str, actions: Sequence[QAction]) -> RibbonGroup:
    """Append a group (with a vertical rule before it, unless it is the first) to ``toolbar``."""
    if toolbar.actions():
        rule = QFrame()
        rule.setFrameShape(QFrame.Shape.VLine)
        rule.setFrameShadow(QFrame.Shadow.Sunken)
        toolbar.addWidget(rule)
    group = RibbonGroup(title, actions)
    toolbar.addWidget(group)
    return group
