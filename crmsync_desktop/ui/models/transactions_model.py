"""Lazily fetched table model of one Offline Transactions status tab.

Rows arrive in keyset pages (``page_size``, 500 by default) from a ``TransactionQueue``: the first
page on ``reload()``, the next one whenever the view scrolls near the end (``canFetchMore`` /
``fetchMore``). Fetching is asynchronous (a task on the qasync loop), so the GUI never waits for
the database, and results of an outdated request (the tab or the sort changed meanwhile) are
dropped by generation number. Opening a tab over a million transactions costs one indexed page.

Search narrows the loaded pages on entity, record id, record name or ``#id``; since the queue has
no text index, a search scans forward page by page (larger pages, bounded per fetch) until it has
enough matches to fill the view, and says how far it scanned.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from crmsync_desktop.domain import TransactionStatus
from crmsync_desktop.sync.upload.conflicts import CONFLICT_PREFIX
from crmsync_desktop.ui.ops import run_op
from crmsync_desktop.ui.queue_protocol import TransactionQueue

if TYPE_CHECKING:
    from crmsync_desktop.store.values import OfflineTransaction

__all__ = [
    "CONFLICT_COLOUR",
    "NAME_KEYS",
    "TransactionsTableModel",
    "conflict_note",
    "format_value",
    "is_conflict",
    "payload_rows",
    "record_label",
    "record_name",
]

log = logging.getLogger(__name__)
_Index = QModelIndex | QPersistentModelIndex

NAME_KEYS = ("name", "fullname", "subject", "title", "topic", "domainname")
"""Payload fields that name a record, in order of preference (primary names of common entities)."""

_LOOKUP = "@lookup"
_STATUS_COLOURS = {
    TransactionStatus.ERROR: QColor("#b3261e"),
    TransactionStatus.PROCESSED: QColor("#1b6e2a"),
    TransactionStatus.ARCHIVED: QColor("#6b6b6b"),
}
CONFLICT_COLOUR = QColor("#8a5a00")
"""Conflicts waiting for the admin stand apart from other errors (amber, not red)."""


def is_conflict(tx: OfflineTransaction) -> bool:
    """A transaction whose error is a conflict note (both sides changed the record; see ``conflicts``)."""
    return bool(tx.last_error) and str(tx.last_error).startswith(CONFLICT_PREFIX)


def conflict_note(tx: OfflineTransaction) -> str | None:
    """What a conflict transaction waits for, in one sentence (None when it is not one, or is settled)."""
    if not is_conflict(tx):
        return None
    if tx.status is TransactionStatus.ERROR:
        return ("Conflict: the record changed on both the client and the server since the last sync. "
                "Set to Pending sends the client's values; Set to Archived keeps the server's.")
    if tx.status is TransactionStatus.PENDING:
        return ("Conflict settled by you (Set to Pending): the next delivery sends the client's values "
                "over the server's.")
    return None


def _values(tx: OfflineTransaction) -> Mapping[str, Any]:
    values = tx.payload.get("values") if isinstance(tx.payload, Mapping) else None
    return values if isinstance(values, Mapping) else {}


def record_name(tx: OfflineTransaction) -> str:
    """The record's primary name when the payload carries it (creates and updates do), else ""."""
    values = _values(tx)
    for key in NAME_KEYS:
        value = values.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    first, last = values.get("firstname"), values.get("lastname")
    return " ".join(str(v) for v in (first, last) if v) if (first or last) else ""


def record_label(tx: OfflineTransaction) -> str:
    """``Contoso Ltd (8c1e2f0a…)``: the name and the start of the id; the id alone without a name."""
    name, rid = record_name(tx), tx.record_id or ""
    if name and rid:
        return f"{name} ({rid[:8]}…)"
    return name or rid or "—"


def format_value(value: Any) -> str:
    """A payload value as the admin reads it (lookups as ``entity id``)."""
    if value is None:
        return "(empty)"
    if isinstance(value, Mapping) and _LOOKUP in value:
        entity, rid = value[_LOOKUP]
        return f"{rid} ({entity})"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def payload_rows(tx: OfflineTransaction) -> list[tuple[str, str, bool]]:
    """(field, value, changed) for the detail pane: changed fields first, then the rest of the payload."""
    payload = tx.payload if isinstance(tx.payload, Mapping) else {}
    values = _values(tx)
    changed = payload.get("changed")
    changed_set = set(changed) if isinstance(changed, Sequence) and not isinstance(changed, str) else None
    rows: list[tuple[str, str, bool]] = []
    if values:
        ordered = sorted(values, key=lambda k: (changed_set is not None and k not in changed_set, k))
        for key in ordered:
            is_changed = changed_set is None or key in changed_set
            rows.append((key, format_value(values[key]), is_changed))
    for key, value in payload.items():
        if key in ("values", "changed", "hash"):
            continue
        rows.append((key, format_value(value), True))
    return rows


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


class TransactionsTableModel(QAbstractTableModel):
    """The transactions of one status tab (``status=None``: all), fetched page by page.

    Signals:
        loading_changed(bool): a page request started / ended.
        counts_changed(dict): transactions per status, after ``refresh_counts`` or a page with counts.
        load_failed(object): the exception of a failed request (the view shows it).
        scan_progress(int, int): during a search, (matches so far, transactions scanned).
    """

    HEADERS = ("#", "Created", "Entity", "Record", "Operation", "Status", "Attempts", "Last error", "Processed at")
    COL_ID, COL_CREATED, COL_ENTITY, COL_RECORD, COL_OPERATION, COL_STATUS, COL_ATTEMPTS, COL_ERROR, COL_PROCESSED = (
        range(9)
    )
    SORTABLE = (COL_ID, COL_CREATED)  # id order is creation (delivery) order; other orders need the whole set
    SEARCH_PAGE_SIZE = 2000
    SEARCH_PAGES_PER_FETCH = 25

    loading_changed = Signal(bool)
    counts_changed = Signal(object)
    load_failed = Signal(object)
    scan_progress = Signal(int, int)

    def __init__(self, queue: TransactionQueue, *, page_size: int = 500, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue = queue
        self.page_size = page_size
        self._status: TransactionStatus | None = TransactionStatus.ERROR
        self._newest_first = True
        self._search = ""
        self._rows: list[OfflineTransaction] = []
        self._next_after_id: int | None = None
        self._exhausted = True  # nothing to fetch until the first reload()
        self._loading = False
        self._generation = 0
        self._scanned = 0
        self.counts: dict[TransactionStatus, int] = {}

    # -- what is shown ---------------------------------------------------------------------------

    @property
    def status(self) -> TransactionStatus | None:
        return self._status

    @property
    def newest_first(self) -> bool:
        return self._newest_first

    @property
    def search_text(self) -> str:
        return self._search

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def exhausted(self) -> bool:
        """Every row of the tab is loaded."""
        return self._exhausted

    @property
    def scanned(self) -> int:
        """Transactions read so far (equals ``rowCount`` unless a search is active)."""
        return self._scanned

    def set_status(self, status: TransactionStatus | None) -> None:
        self._status = status
        self.reload()

    def set_newest_first(self, newest_first: bool) -> None:
        if newest_first != self._newest_first:
            self._newest_first = newest_first
            self.reload()

    def set_search(self, text: str) -> None:
        text = text.strip()
        if text != self._search:
            self._search = text
            self.reload()

    def transaction(self, row: int) -> OfflineTransaction:
        return self._rows[row]

    def transactions(self, rows: Sequence[int]) -> list[OfflineTransaction]:
        return [self._rows[r] for r in rows if 0 <= r < len(self._rows)]

    def row_of(self, transaction_id: int) -> int | None:
        for row, tx in enumerate(self._rows):
            if tx.id == transaction_id:
                return row
        return None

    # -- loading ---------------------------------------------------------------------------------

    def reload(self) -> None:
        """Forget the loaded rows and fetch the first page of the current tab (and the counts)."""
        self._generation += 1
        self.beginResetModel()
        self._rows = []
        self._next_after_id = None
        self._exhausted = False
        self._scanned = 0
        self.endResetModel()
        self._set_loading(False)
        self._fetch()
        self.refresh_counts()

    def refresh_counts(self) -> None:
        generation = self._generation
        run_op(None, self._queue.counts(), on_success=lambda c: self._got_counts(c, generation),
               on_error=self.load_failed.emit)

    def set_counts(self, counts: Mapping[TransactionStatus, int]) -> None:
        """Counts pushed by the engine (``QueueChanged``)."""
        self._got_counts(counts, self._generation)

    def _got_counts(self, counts: Mapping[TransactionStatus, int], generation: int) -> None:
        if generation == self._generation or not self.counts:
            self.counts = {s: int(counts.get(s, 0)) for s in TransactionStatus}
            self.counts_changed.emit(dict(self.counts))

    def canFetchMore(self, parent: _Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._exhausted and not self._loading

    def fetchMore(self, parent: _Index = QModelIndex()) -> None:  # noqa: B008
        if not parent.isValid():
            self._fetch()

    def _set_loading(self, loading: bool) -> None:
        if loading != self._loading:
            self._loading = loading
            self.loading_changed.emit(loading)

    def _fetch(self) -> None:
        if self._loading or self._exhausted:
            return
        self._set_loading(True)
        generation = self._generation
        run_op(
            None,
            self._load(self._next_after_id),
            on_success=lambda result: self._loaded(result, generation),
            on_error=lambda exc: self._failed(exc, generation),
        )

    async def _load(self, after_id: int | None) -> tuple[list[OfflineTransaction], int | None, int]:
        if not self._search:
            page = await self._queue.list(self._status, after_id, self.page_size, self._newest_first)
            return list(page.items), page.next_after_id, len(page.items)
        matches: list[OfflineTransaction] = []
        scanned = 0
        for _ in range(self.SEARCH_PAGES_PER_FETCH):
            page = await self._queue.list(self._status, after_id, self.SEARCH_PAGE_SIZE, self._newest_first)
            scanned += len(page.items)
            matches.extend(tx for tx in page.items if self._matches(tx))
            after_id = page.next_after_id
            if after_id is None or len(matches) >= self.page_size:
                break
        return matches, after_id, scanned

    def _matches(self, tx: OfflineTransaction) -> bool:
        needle = self._search.lower()
        if needle.startswith("#") and needle[1:].isdigit():
            return tx.id == int(needle[1:])
        return (
            needle in tx.entity.lower()
            or needle in (tx.record_id or "").lower()
            or needle in record_name(tx).lower()
            or (needle.isdigit() and tx.id == int(needle))
        )

    def _loaded(self, result: tuple[list[OfflineTransaction], int | None, int], generation: int) -> None:
        if generation != self._generation:
            return  # the tab, sort or search changed while this page was on its way
        items, next_after_id, scanned = result
        self._next_after_id = next_after_id
        self._exhausted = next_after_id is None
        self._scanned += scanned
        if items:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(items) - 1)
            self._rows.extend(items)
            self.endInsertRows()
        if self._search:
            self.scan_progress.emit(len(self._rows), self._scanned)
        self._set_loading(False)

    def _failed(self, exc: BaseException, generation: int) -> None:
        if generation != self._generation:
            return
        self._exhausted = True  # stop asking; Refresh tries again
        self._set_loading(False)
        self.load_failed.emit(exc)

    # -- Qt model ----------------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        tx = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(tx, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.COL_RECORD:
                return f"{record_name(tx) or '(no name in the payload)'}\n{tx.record_id or ''}".strip()
            if col == self.COL_ERROR and tx.last_error:
                return tx.last_error
            if col == self.COL_STATUS:
                return conflict_note(tx)
            return None
        if role == Qt.ItemDataRole.ForegroundRole and col == self.COL_STATUS:
            if tx.status is TransactionStatus.ERROR and is_conflict(tx):
                return QBrush(CONFLICT_COLOUR)
            colour = _STATUS_COLOURS.get(tx.status)
            return QBrush(colour) if colour is not None else None
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.COL_ID, self.COL_ATTEMPTS):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return tx.id
        return None

    def _display(self, tx: OfflineTransaction, col: int) -> str:
        if col == self.COL_ID:
            return str(tx.id)
        if col == self.COL_CREATED:
            return _when(tx.created_at)
        if col == self.COL_ENTITY:
            return tx.entity
        if col == self.COL_RECORD:
            return record_label(tx)
        if col == self.COL_OPERATION:
            return str(tx.operation.value).capitalize()
        if col == self.COL_STATUS:
            if tx.status is TransactionStatus.ERROR and is_conflict(tx):
                return f"{tx.status.value} (conflict)"
            return str(tx.status.value)
        if col == self.COL_ATTEMPTS:
            return str(tx.attempts)
        if col == self.COL_ERROR:
            return (tx.last_error or "").splitlines()[0] if tx.last_error else ""
        if col == self.COL_PROCESSED:
            return _when(tx.processed_at)
        return ""

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole and section not in self.SORTABLE:
            return "Sort by # or Created: other orders would need the whole queue in memory."
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Only # and Created sort (both are the id order, which the queue pages by)."""
        if column in self.SORTABLE:
            self.set_newest_first(order == Qt.SortOrder.DescendingOrder)
