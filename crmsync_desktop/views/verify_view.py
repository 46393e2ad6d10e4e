"""Result windows of Verify (are both organizations in sync?) and Dry run (what would a sync do?).

Both are non-modal dialogs with a one-line verdict and a table per entity; the run itself is
recorded in Jobs & Logs like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmsync_desktop.domain import RunStatus
from crmsync_desktop.sync.engine import RunResult
from crmsync_desktop.sync.verify import VerifyReport
from crmsync_desktop.ui.models.report_models import (
    DRY_RUN_HEADERS,
    VERIFY_HEADERS,
    ReportRow,
    ReportTableModel,
    rows_for_dry_run,
    rows_for_verify,
)
from crmsync_desktop.ui.widgets.message import InlineMessage, MessageLevel

__all__ = ["DryRunDialog", "ReportDialog", "VerifyDialog"]


class ReportDialog(QDialog):
    """A verdict strip above a sortable table."""

    def __init__(self, title: str, headers: Sequence[str], rows: Sequence[ReportRow], parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(980, 460)
        self.verdict = InlineMessage(self)
        self.verdict.close_button.hide()
        self.model = ReportTableModel(headers, rows, self)
        proxy = QSortFilterProxyModel(self)
        proxy.setSourceModel(self.model)
        proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = QTableView(self)
        self.table.setObjectName("reportTable")
        self.table.setModel(proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(len(headers) - 1, QHeaderView.ResizeMode.Stretch)
        self.details = QPlainTextEdit(self)
        self.details.setObjectName("reportDetails")
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(110)
        self.details.setPlaceholderText("Select an entity to see its example records here.")
        self.table.selectionModel().currentRowChanged.connect(
            lambda current, _: self._show_details(proxy.mapToSource(current).row()))
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setObjectName("reportNote")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.verdict)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addWidget(self.note)
        layout.addWidget(buttons)


    def _show_details(self, row: int) -> None:
        if not 0 <= row < self.model.rowCount():
            self.details.clear()
            return
        r = self.model.row_at(row)
        self.details.setPlainText(f"{r.cells[0]}\n{r.tooltip}" if r.tooltip else f"{r.cells[0]}: no examples.")


class VerifyDialog(ReportDialog):
    def __init__(self, profile: str, result: RunResult, report: VerifyReport | None, parent: QWidget | None = None):
        rows = rows_for_verify(report) if report is not None else []
        super().__init__(f"Verify — {profile}", VERIFY_HEADERS, rows, parent)
        self.setObjectName("verifyDialog")
        if report is None:
            self.verdict.show_message(MessageLevel.ERROR, "Verify could not finish",
                                      f"{result.error or result.summary}\nThe run log in Jobs & Logs has the details.")
        elif report.in_sync:
            self.verdict.show_message(
                MessageLevel.SUCCESS, "In sync",
                f"All {len(report.entities)} enabled entities hold the same records with the same values on both sides.",
            )
        else:
            out = [e for e in report.entities if not e.in_sync]
            self.verdict.show_message(
                MessageLevel.WARNING,
                f"{report.differences:,} difference(s) in {len(out)} of {len(report.entities)} entities",
                "Run Sync All to bring the client up to date. If differences remain afterwards, check the "
                "sync filters and the run log in Jobs & Logs.",
            )
        self.note.setText(
            "Missing on client: records the server's filtered set has and the client lacks. Extra on client: "
            "records the client still holds that the server no longer has (or that left the filter). "
            "Different: values differ. Client only: records created in the client organization (not a difference)."
        )


class DryRunDialog(ReportDialog):
    def __init__(
        self,
        profile: str,
        result: RunResult,
        examples: Mapping[tuple[str, str], Sequence[str]],
        parent: QWidget | None = None,
    ):
        super().__init__(f"Dry run — {profile}", DRY_RUN_HEADERS, rows_for_dry_run(result.counts, examples), parent)
        self.setObjectName("dryRunDialog")
        if result.status is not RunStatus.SUCCEEDED:
            self.verdict.show_message(MessageLevel.ERROR, "The dry run could not finish",
                                      f"{result.error or result.summary}\nThe run log in Jobs & Logs has the details.")
        elif not any(c.get(k) for c in result.counts.values() for k in ("created", "updated", "deleted")):
            self.verdict.show_message(MessageLevel.SUCCESS, "Nothing to do",
                                      "A sync now would not change anything in the client organization.")
        else:
            self.verdict.show_message(MessageLevel.INFO, "What a sync would do now",
                                      f"{result.summary}. Nothing was written: this was a dry run.")
        self.note.setText("Examples are record ids; the counts are what Sync would write to the client organization. "
                          "Deletions found through tracking records are not read in a dry run.")
