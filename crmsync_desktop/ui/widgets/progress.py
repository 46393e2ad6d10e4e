"""The progress strip of a long operation (Connect, Update Server, Sync All, Verify, Dry run).

It shows what runs, the engine's last ``Progress`` event (entity, phase, done/total, records per
second, time left) in a bar, and a Cancel button; the owner decides what Cancel does.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from crmsync_desktop.sync.events import Progress

__all__ = ["ProgressPanel", "describe_progress", "format_duration"]

_PHASES = {
    "schema": "creating tables and columns",
    "download": "downloading",
    "deletions": "looking for deletions",
    "verify": "comparing",
    "retry": "retrying",
}


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe_progress(event: Progress) -> str:
    """``account · downloading 1,200 / 5,000 · 350 records/s · about 0:12 left``."""
    parts = [event.entity] if event.entity else []
    count = f"{event.done:,}" if event.total is None else f"{event.done:,} / {event.total:,}"
    parts.append(f"{_PHASES.get(event.phase, event.phase)} {count}")
    if event.records_per_second:
        parts.append(f"{event.records_per_second:,.0f} records/s")
    if event.eta_seconds is not None:
        parts.append(f"about {format_duration(event.eta_seconds)} left")
    return " · ".join(parts)


class ProgressPanel(QWidget):
    """Hidden while idle. ``cancel_requested`` fires when the user clicks Cancel."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("progressPanel")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(self)
        self.label.setObjectName("progressLabel")
        self.bar = QProgressBar(self)
        self.bar.setMinimumWidth(160)
        self.bar.setMaximumWidth(240)
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancelOperation")
        self.cancel_button.setToolTip("Stop the operation safely: what was written so far is kept and recorded")
        self.cancel_button.clicked.connect(self._cancel)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.operation = ""
        self.hide()

    def start(self, operation: str) -> None:
        self.operation = operation
        self.label.setText(f"{operation}: starting…")
        self.bar.setRange(0, 0)  # busy until the first progress event says how far
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.show()

    def update_progress(self, event: Progress) -> None:
        if not self.isVisible():
            return
        self.label.setText(f"{self.operation}: {describe_progress(event)}")
        if event.total:
            self.bar.setRange(0, event.total)
            self.bar.setValue(min(event.done, event.total))
        else:
            self.bar.setRange(0, 0)

    def finish(self) -> None:
        self.operation = ""
        self.hide()

    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.label.setText(f"{self.operation}: stopping safely…")
        self.cancel_requested.emit()
