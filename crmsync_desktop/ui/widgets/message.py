"""An inline message strip (info, success, warning, error) shown above a form or a grid.

Dialogs and the entity grid use it instead of a modal box for problems the user can fix right
there (a filter error, a result to read): a title in bold, the details below, a close button.
"""

from __future__ import annotations

import enum

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

__all__ = ["InlineMessage", "MessageLevel"]


class MessageLevel(enum.StrEnum):
    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


_COLOURS = {  # background, border, text: readable on light and dark themes (explicit text colour)
    MessageLevel.INFO: ("#e8f0fb", "#7aa7e0", "#0d2f5c"),
    MessageLevel.SUCCESS: ("#e7f4e8", "#6fb073", "#173d19"),
    MessageLevel.WARNING: ("#fff4e0", "#e0a43a", "#4d3100"),
    MessageLevel.ERROR: ("#fdecea", "#e06c62", "#5f1410"),
}


class InlineMessage(QFrame):
    """Hidden until :meth:`show_message`; the close button hides it again."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inlineMessage")
        self.level = MessageLevel.INFO
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        texts = QVBoxLayout()
        texts.setSpacing(2)
        self.title_label = QLabel(self)
        self.title_label.setObjectName("inlineMessageTitle")
        self.title_label.setWordWrap(True)
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        self.text_label = QLabel(self)
        self.text_label.setObjectName("inlineMessageText")
        self.text_label.setWordWrap(True)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        texts.addWidget(self.title_label)
        texts.addWidget(self.text_label)
        layout.addLayout(texts, 1)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Hide this message")
        self.close_button.clicked.connect(self.hide)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, level: MessageLevel, title: str, text: str = "") -> None:
        self.level = level
        background, border, colour = _COLOURS[level]
        self.setStyleSheet(
            f"QFrame#inlineMessage {{ background: {background}; border: 1px solid {border}; border-radius: 4px; }}"
            f" QLabel {{ color: {colour}; background: transparent; }}"
            f" QToolButton {{ color: {colour}; }}"
        )
        self.title_label.setText(title)
        self.text_label.setText(text)
        self.text_label.setVisible(bool(text))
        self.show()

    def clear(self) -> None:
        self.title_label.clear()
        self.text_label.clear()
        self.hide()
