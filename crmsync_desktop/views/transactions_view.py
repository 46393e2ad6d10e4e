"""Offline Transactions: the client changes on their way to the server, tab by tab (Resco §1.7, §9.7).

Status tabs All / Pending / Processed / Error / Archived with live counts (the view opens on
Error: that is what needs the admin), a lazily fetched grid, a detail pane with the payload and
the full error, and the three Woodford verbs: Set to Pending, Set to Archived, Set all to Pending.
A conflict kept for the admin (Manual policy) reads "Error (conflict)" and its detail says what
each verb does with it.
Every action goes through ``run_op``; nothing waits on the database on the GUI thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QItemSelection, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSplitter,
    QTabBar,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from crmsync_desktop.domain import TransactionStatus
from crmsync_desktop.sync.upload.events import QueueChanged
from crmsync_desktop.ui.bridge import EngineBridge
from crmsync_desktop.ui.models.transactions_model import (
    CONFLICT_COLOUR,
    TransactionsTableModel,
    conflict_note,
    is_conflict,
    payload_rows,
    record_name,
)
from crmsync_desktop.ui.ops import run_op, show_error
from crmsync_desktop.ui.queue_protocol import TransactionQueue

if TYPE_CHECKING:
    from crmsync_desktop.store.values import OfflineTransaction

__all__ = ["TAB_STATUSES", "TransactionsView"]

TAB_STATUSES: tuple[TransactionStatus | None, ...] = (
    None,
    TransactionStatus.PENDING,
    TransactionStatus.PROCESSED,
    TransactionStatus.ERROR,
    TransactionStatus.ARCHIVED,
)
_TAB_NAMES = ("All", "Pending", "Processed", "Error", "Archived")


class TransactionsView(QWidget):
    """The Offline Transactions tab of one profile.

    Args:
        queue: the profile's queue (``UploadService`` through ``AllStatusesQueue``, or any
            ``TransactionQueue``).
        bridge: engine events; ``QueueChanged`` of ``profile`` refreshes the counts live.
        profile: whose ``QueueChanged`` events to follow (None: every event).
        page_size: rows per fetched page.

    Signals:
        queue_changed(): after an action changed the queue (hosts may refresh a status bar).
    """

    queue_changed = Signal()

    def __init__(
        self,
        queue: TransactionQueue,
        bridge: EngineBridge | None = None,
        *,
        profile: str | None = None,
        page_size: int = 500,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("transactionsView")
        self._queue = queue
        self._profile = profile
        self._busy = 0
        self.status_message = ""

        self.model = TransactionsTableModel(queue, page_size=page_size, parent=self)

        # -- toolbar ---------------------------------------------------------------------------
        self.toolbar = QToolBar("Offline Transactions")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.set_pending_action = QAction("Set to Pending", self)
        self.set_pending_action.setToolTip("Deliver the selected Error or Archived transactions again")
        self.set_pending_action.triggered.connect(self.set_selected_pending)
        self.archive_action = QAction("Set to Archived", self)
        self.archive_action.setToolTip(
            "The selected Pending or Error transactions will not be delivered (Set to Pending undoes it)"
        )
        self.archive_action.triggered.connect(self.archive_selected)
        self.retry_all_action = QAction("Set all to Pending", self)
        self.retry_all_action.setToolTip("Deliver every transaction in Error again")
        self.retry_all_action.triggered.connect(self.retry_all_errors)
        self.refresh_action = QAction("Refresh", self)
        self.refresh_action.setShortcut(QKeySequence.StandardKey.Refresh)
        self.refresh_action.triggered.connect(self.refresh)
        for action in (self.set_pending_action, self.archive_action, self.retry_all_action):
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.refresh_action)

        self.search_edit = QLineEdit()
        self.search_edit.setObjectName("transactionsSearch")
        self.search_edit.setPlaceholderText("Search entity, record id or name, #id")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.setMinimumWidth(300)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(300)
        self._search_timer.timeout.connect(lambda: self.model.set_search(self.search_edit.text()))
        self.search_edit.textChanged.connect(lambda _t: self._search_timer.start())

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.toolbar, 1)
        top.addWidget(self.search_edit)

        # -- status tabs -----------------------------------------------------------------------
        self.tabs = QTabBar()
        self.tabs.setObjectName("transactionTabs")
        self.tabs.setExpanding(False)
        self.tabs.setDrawBase(True)
        for name in _TAB_NAMES:
            self.tabs.addTab(name)

        # -- grid --------------------------------------------------------------------------------
        self.table = QTableView()
        self.table.setObjectName("transactionsTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setSortingEnabled(True)
        header = self.table.horizontalHeader()
        header.setSortIndicator(TransactionsTableModel.COL_ID, Qt.SortOrder.DescendingOrder)
        header.sortIndicatorChanged.connect(self._sort_changed)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(TransactionsTableModel.COL_ERROR, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 58), (1, 136), (2, 88), (3, 200), (4, 76), (5, 100), (6, 64), (7, 260), (8, 136)):
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)

        # -- detail pane -------------------------------------------------------------------------
        self.detail_title = QLabel("Select a transaction to see its payload and error.")
        self.detail_title.setObjectName("detailTitle")
        self.detail_title.setWordWrap(True)
        self.payload_table = QTableWidget(0, 2)
        self.payload_table.setObjectName("payloadTable")
        self.payload_table.setHorizontalHeaderLabels(["Field", "Value"])
        self.payload_table.verticalHeader().setVisible(False)
        self.payload_table.horizontalHeader().setStretchLastSection(True)
        self.payload_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.payload_table.setColumnWidth(0, 150)
        self.error_label = QLabel("Error")
        self.conflict_hint = QLabel()
        self.conflict_hint.setObjectName("conflictHint")
        self.conflict_hint.setWordWrap(True)
        self.conflict_hint.setStyleSheet(f"color: {CONFLICT_COLOUR.name()}; font-weight: bold;")
        self.conflict_hint.hide()
        self.error_text = QPlainTextEdit()
        self.error_text.setObjectName("errorText")
        self.error_text.setReadOnly(True)
        self.error_text.setPlaceholderText("No error recorded.")
        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(6, 0, 0, 0)
        detail_layout.addWidget(self.detail_title)
        detail_layout.addWidget(QLabel("Payload (changed fields in bold)"))
        detail_layout.addWidget(self.payload_table, 3)
        detail_layout.addWidget(self.error_label)
        detail_layout.addWidget(self.conflict_hint)
        detail_layout.addWidget(self.error_text, 2)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([760, 320])

        self.status_label = QLabel("")
        self.status_label.setObjectName("transactionsStatus")
        self.changed_hint = QLabel("The queue changed — Refresh to see it.")
        self.changed_hint.setObjectName("changedHint")
        self.changed_hint.setStyleSheet("color: #8a5a00;")
        self.changed_hint.hide()
        bottom = QHBoxLayout()
        bottom.addWidget(self.status_label, 1)
        bottom.addWidget(self.changed_hint)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(bottom)

        self.model.counts_changed.connect(self._show_counts)
        self.model.loading_changed.connect(lambda _l: self._update_status())
        self.model.rowsInserted.connect(lambda *_: self._update_status())
        self.model.modelReset.connect(self._model_reset)
        self.model.scan_progress.connect(lambda *_: self._update_status())
        self.model.load_failed.connect(lambda exc: show_error(self, exc))
        if bridge is not None:
            bridge.other_event.connect(self._engine_event)

        self.tabs.setCurrentIndex(TAB_STATUSES.index(TransactionStatus.ERROR))
        self.tabs.currentChanged.connect(self._tab_changed)
        self._update_actions()
        self._columns_for(TransactionStatus.ERROR)
        self.model.set_status(TransactionStatus.ERROR)

    # -- public ----------------------------------------------------------------------------------

    @property
    def current_status(self) -> TransactionStatus | None:
        return TAB_STATUSES[self.tabs.currentIndex()]

    def show_status(self, status: TransactionStatus | None) -> None:
        """Switch to the tab of ``status`` (None: All)."""
        self.tabs.setCurrentIndex(TAB_STATUSES.index(status))

    def refresh(self) -> None:
        """Reload the current tab from the first page, and the counts."""
        self.changed_hint.hide()
        self.model.reload()

    def selected_transactions(self) -> list[OfflineTransaction]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return self.model.transactions(rows)

    def set_selected_pending(self) -> None:
        ids = [t.id for t in self.selected_transactions()
               if t.status in (TransactionStatus.ERROR, TransactionStatus.ARCHIVED)]
        if ids:
            self._act(self._queue.set_pending(ids), "set to Pending")

    def archive_selected(self) -> None:
        ids = [t.id for t in self.selected_transactions()
               if t.status in (TransactionStatus.PENDING, TransactionStatus.ERROR)]
        if ids:
            self._act(self._queue.archive(ids), "set to Archived")

    def retry_all_errors(self) -> None:
        self._act(self._queue.retry_errors(), "in Error set to Pending")

    # -- internals -------------------------------------------------------------------------------

    def _act(self, coro: Any, what: str) -> None:
        self._busy += 1
        self._update_actions()

        def done(changed: int) -> None:
            self._busy -= 1
            self.status_message = f"{changed:,} transaction{'s' if changed != 1 else ''} {what}."
            self.queue_changed.emit()
            self.refresh()

        def failed(exc: BaseException) -> None:
            self._busy -= 1
            self._update_actions()
            show_error(self, exc)

        run_op(self, coro, on_success=done, on_error=failed)

    def _tab_changed(self, index: int) -> None:
        self.changed_hint.hide()
        self._columns_for(TAB_STATUSES[index])
        self.model.set_status(TAB_STATUSES[index])

    def _columns_for(self, status: TransactionStatus | None) -> None:
        """"Processed at" only where something can have been processed."""
        self.table.setColumnHidden(TransactionsTableModel.COL_PROCESSED,
                                   status not in (None, TransactionStatus.PROCESSED))

    def _sort_changed(self, column: int, order: Qt.SortOrder) -> None:
        if column not in TransactionsTableModel.SORTABLE:
            header = self.table.horizontalHeader()
            header.blockSignals(True)
            header.setSortIndicator(
                TransactionsTableModel.COL_ID,
                Qt.SortOrder.DescendingOrder if self.model.newest_first else Qt.SortOrder.AscendingOrder,
            )
            header.blockSignals(False)

    def _show_counts(self, counts: dict[TransactionStatus, int]) -> None:
        total = sum(counts.values())
        for index, status in enumerate(TAB_STATUSES):
            n = total if status is None else counts.get(status, 0)
            self.tabs.setTabText(index, f"{_TAB_NAMES[index]} ({n:,})")
        self.tabs.setTabTextColor(
            TAB_STATUSES.index(TransactionStatus.ERROR),
            Qt.GlobalColor.darkRed if counts.get(TransactionStatus.ERROR) else self.palette().text().color(),
        )
        self._update_actions()
        self._update_status()

    def _engine_event(self, event: object) -> None:
        if not isinstance(event, QueueChanged):
            return
        if self._profile is not None and event.profile != self._profile:
            return
        if event.counts:
            before = dict(self.model.counts)
            self.model.set_counts(event.counts)
            if before and before != self.model.counts:
                self.changed_hint.show()
        else:
            self.model.refresh_counts()

    def _model_reset(self) -> None:
        self._show_detail(None)
        self._update_actions()
        self._update_status()

    def _update_status(self) -> None:
        shown = self.model.rowCount()
        status = self.current_status
        total = (sum(self.model.counts.values()) if status is None else self.model.counts.get(status))
        if self.model.search_text:
            text = f"{shown:,} match{'es' if shown != 1 else ''} in {self.model.scanned:,} scanned"
            if not self.model.exhausted:
                text += " — scroll down to search further"
        elif total is not None:
            text = f"Showing {shown:,} of {total:,}"
        else:
            text = f"Showing {shown:,}"
        if self.model.loading:
            text += " — loading…"
        if self.status_message:
            text = f"{self.status_message}  {text}"
        self.status_label.setText(text)

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        chosen = self.selected_transactions()
        self._show_detail(chosen[0] if len(chosen) == 1 else None, count=len(chosen))
        self._update_actions()

    def _update_actions(self) -> None:
        chosen = self.selected_transactions() if self.table.selectionModel() else []
        statuses = {t.status for t in chosen}
        idle = self._busy == 0
        self.set_pending_action.setEnabled(
            idle and bool(statuses & {TransactionStatus.ERROR, TransactionStatus.ARCHIVED})
        )
        self.archive_action.setEnabled(idle and bool(statuses & {TransactionStatus.PENDING, TransactionStatus.ERROR}))
        errors = self.model.counts.get(TransactionStatus.ERROR)
        self.retry_all_action.setEnabled(idle and errors != 0)

    def _show_detail(self, tx: OfflineTransaction | None, count: int = 0) -> None:
        self.payload_table.setRowCount(0)
        if tx is None:
            self.detail_title.setText(
                f"{count:,} transactions selected." if count > 1
                else "Select a transaction to see its payload and error."
            )
            self.error_text.setPlainText("")
            self.error_label.setText("Error")
            self.conflict_hint.hide()
            return
        name = record_name(tx)
        title = f"<b>#{tx.id}</b> {tx.operation.value} of <b>{tx.entity}</b>"
        if name:
            title += f" “{_escape(name)}”"
        title += f"<br>Record id: {_escape(tx.record_id or '—')}<br>Status: {tx.status.value}, " \
                 f"{tx.attempts} attempt{'s' if tx.attempts != 1 else ''}"
        if tx.next_attempt_at is not None and tx.status is TransactionStatus.PENDING:
            title += f", next try {tx.next_attempt_at.astimezone():%H:%M:%S}"
        self.detail_title.setText(title)
        rows = payload_rows(tx)
        self.payload_table.setRowCount(len(rows))
        for row, (field, value, changed) in enumerate(rows):
            for col, text in enumerate((field, value)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if changed:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.payload_table.setItem(row, col, item)
        self.error_text.setPlainText(tx.last_error or "")
        note = conflict_note(tx)
        self.error_label.setText("Error (conflict)" if is_conflict(tx) else "Error")
        self.conflict_hint.setText(note or "")
        self.conflict_hint.setVisible(note is not None)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

