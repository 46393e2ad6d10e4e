"""A small chart of the last runs: records written per run (bars) and duration (line), with QPainter only.

Bars are the records each run wrote (created + updated + deleted + uploaded …), failed records
stacked in red on top; the line is the run's duration on its own axis at the right. The x axis is
run order (oldest left), labelled with start times. Hovering a bar shows that run in a tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

__all__ = ["ChartPoint", "RunsChart", "nice_ceiling"]

BAR = QColor("#4c7fd0")
FAILED = QColor("#d0453b")
LINE = QColor("#e08a1e")
GRID = QColor(0, 0, 0, 28)


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One run on the chart."""

    run_id: int
    started_at: datetime
    records: int
    failed: int
    duration_s: float | None
    status: str = ""


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is >= ``value`` (an axis maximum that reads well)."""
    if value <= 0:
        return 1.0
    exp = 1.0
    while exp * 10 <= value:
        exp *= 10
    while exp > value:
        exp /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= value:
            return step * exp
    return 10 * exp


def _short(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    if n >= 1000:
        return f"{n / 1000:g}k"
    return f"{n:g}"


def _seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:g} h"
    if s >= 60:
        return f"{s / 60:g} min"
    return f"{s:g} s"


class RunsChart(QWidget):
    """Records per run and duration of the last ``max_runs`` runs."""

    def __init__(self, parent: QWidget | None = None, *, max_runs: int = 30) -> None:
        super().__init__(parent)
        self.setObjectName("runsChart")
        self.max_runs = max_runs
        self._points: list[ChartPoint] = []
        self._bars: list[tuple[QRectF, ChartPoint]] = []
        self.setMouseTracking(True)
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:
        return QSize(600, 190)

    @property
    def points(self) -> list[ChartPoint]:
        return list(self._points)

    def set_points(self, points: Sequence[ChartPoint]) -> None:
        """The runs to draw, in any order (drawn oldest first, at most ``max_runs``)."""
        self._points = sorted(points, key=lambda p: p.run_id)[-self.max_runs:]
        self.update()

    # -- painting ---------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text = palette.text().color()
        painter.fillRect(self.rect(), palette.base())
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        painter.setFont(font)
        metrics = painter.fontMetrics()
        pad_l, pad_r = metrics.horizontalAdvance("888.8k") + 10, metrics.horizontalAdvance("88.8 min") + 12
        pad_t, pad_b = metrics.height() + 10, metrics.height() + 8
        plot = QRectF(pad_l, pad_t, max(10, self.width() - pad_l - pad_r), max(10, self.height() - pad_t - pad_b))
        self._bars = []

        # legend
        x = plot.left()
        for colour, label, line in ((BAR, "Records written", False), (FAILED, "Failed", False),
                                    (LINE, "Duration", True)):
            if line:
                painter.setPen(QPen(colour, 2))
                painter.drawLine(QPointF(x, 4 + metrics.height() / 2), QPointF(x + 14, 4 + metrics.height() / 2))
            else:
                painter.fillRect(QRectF(x, 4 + metrics.height() / 2 - 5, 14, 10), colour)
            painter.setPen(text)
            painter.drawText(QPointF(x + 18, 4 + metrics.ascent()), label)
            x += 18 + metrics.horizontalAdvance(label) + 16

        if not self._points:
            painter.setPen(palette.placeholderText().color())
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter, "No runs yet")
            painter.end()
            return

        top_records = nice_ceiling(max(p.records + p.failed for p in self._points))
        durations = [p.duration_s for p in self._points if p.duration_s is not None]
        top_seconds = nice_ceiling(max(durations)) if durations else 1.0

        # grid and axes labels
        for i in range(5):
            y = plot.bottom() - plot.height() * i / 4
            painter.setPen(QPen(GRID, 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(text)
            left = _short(top_records * i / 4)
            painter.drawText(QRectF(0, y - metrics.height() / 2, pad_l - 6, metrics.height()),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, left)
            painter.setPen(LINE.darker(130))
            painter.drawText(QRectF(plot.right() + 6, y - metrics.height() / 2, pad_r - 6, metrics.height()),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, _seconds(top_seconds * i / 4))

        n = len(self._points)
        slot = plot.width() / n
        bar_w = max(2.0, min(28.0, slot * 0.6))
        path = QPainterPath()
        started_path = False
        label_every = max(1, int(metrics.horizontalAdvance("88.88 88:88 ") * 1.1 / slot) + 1)
        labels = self.x_labels()
        for i, p in enumerate(self._points):
            cx = plot.left() + slot * (i + 0.5)
            h_ok = plot.height() * p.records / top_records
            h_failed = plot.height() * p.failed / top_records
            rect = QRectF(cx - bar_w / 2, plot.bottom() - h_ok, bar_w, h_ok)
            painter.fillRect(rect, BAR)
            if p.failed:
                painter.fillRect(QRectF(cx - bar_w / 2, rect.top() - h_failed, bar_w, h_failed), FAILED)
            self._bars.append((QRectF(cx - slot / 2, plot.top(), slot, plot.height()), p))
            if p.duration_s is not None:
                point = QPointF(cx, plot.bottom() - plot.height() * p.duration_s / top_seconds)
                if started_path:
                    path.lineTo(point)
                else:
                    path.moveTo(point)
                    started_path = True
            if i % label_every == 0 or i == n - 1:
                painter.setPen(text)
                label = labels[i]
                painter.drawText(QRectF(cx - slot * label_every / 2, plot.bottom() + 3, slot * label_every,
                                        metrics.height()), Qt.AlignmentFlag.AlignHCenter, label)
        painter.setPen(QPen(LINE, 2))
        painter.drawPath(path)
        painter.setBrush(LINE)
        for i, p in enumerate(self._points):
            if p.duration_s is not None:
                cx = plot.left() + slot * (i + 0.5)
                painter.drawEllipse(QPointF(cx, plot.bottom() - plot.height() * p.duration_s / top_seconds), 2.5, 2.5)
        painter.setPen(QPen(text, 1))
        painter.drawLine(plot.bottomLeft(), plot.bottomRight())
        painter.end()

    def x_labels(self) -> list[str]:
        """Start times (HH:MM, with the day when runs span days); run numbers when times repeat."""
        if not self._points:
            return []
        days = {p.started_at.astimezone().date() for p in self._points}
        fmt = "%d.%m %H:%M" if len(days) > 1 else "%H:%M"
        labels = [p.started_at.astimezone().strftime(fmt) for p in self._points]
        if len(set(labels)) < len(labels):
            return [f"#{p.run_id}" for p in self._points]
        return labels

    def point_at(self, x: float, y: float) -> ChartPoint | None:
        for rect, p in self._bars:
            if rect.contains(QPointF(x, y)):
                return p
        return None

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        p = self.point_at(event.position().x(), event.position().y())
        if p is None:
            QToolTip.hideText()
            return
        duration = f"{p.duration_s:.1f} s" if p.duration_s is not None else "running"
        QToolTip.showText(
            event.globalPosition().toPoint(),
            f"Run #{p.run_id} ({p.status}) at {p.started_at.astimezone():%Y-%m-%d %H:%M}\n"
            f"{p.records:,} records written, {p.failed:,} failed\nDuration: {duration}",
            self,
        )
