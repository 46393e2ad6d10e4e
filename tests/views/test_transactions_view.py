"""The Offline Transactions tab over a real store: tabs, counts, the three verbs, lazy paging, detail pane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from crmsync_desktop.domain import ConflictPolicy, TransactionStatus
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.sync.events import EventBus
from crmsync_desktop.sync.upload.conflicts import Outcome, describe
from crmsync_desktop.sync.upload.events import QueueChanged
from crmsync_desktop.ui.bridge import EngineBridge
from crmsync_desktop.ui.queue_protocol import AllStatusesQueue
from crmsync_desktop.views.transactions_view import TAB_STATUSES, TransactionsView
from tests.ui.test_transactions_model import PROFILE, StoreQueue, open_test_store, seed, until

E, P, PR, A = TransactionStatus.ERROR, TransactionStatus.PENDING, TransactionStatus.PROCESSED, TransactionStatus.ARCHIVED


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    yield from open_test_store(tmp_path)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def make_view(qtbot, qloop, db: Database, bus: EventBus) -> Iterator:  # type: ignore[no-untyped-def,type-arg]
    bridges: list[EngineBridge] = []

    def make(page_size: int = 500) -> TransactionsView:
        bridge = EngineBridge(bus)
        bridges.append(bridge)
        view = TransactionsView(AllStatusesQueue(StoreQueue(db)), bridge, profile=PROFILE, page_size=page_size)
        qtbot.addWidget(view)
        view.resize(1100, 600)
        view.show()
        return view

    yield make
    for bridge in bridges:
        bridge.detach()


def loaded(view: TransactionsView) -> bool:
    return not view.model.loading and bool(view.model.counts)


def select_rows(view: TransactionsView, rows: list[int]) -> None:
    sm = view.table.selectionModel()
    sm.clearSelection()
    for row in rows:
        sm.select(view.model.index(row, 0), QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


def test_opens_on_error_with_counts_on_every_tab(make_view, qloop, db: Database) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(seed(db, 12, errors=[0, 4, 8], archived=[1], processed=[2, 3]))
    view = make_view()
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() == 3))
    assert view.current_status is E
    assert [view.tabs.tabText(i) for i in range(5)] == [
        "All (12)", "Pending (6)", "Processed (2)", "Error (3)", "Archived (1)"
    ]
    assert {view.model.transaction(r).status for r in range(3)} == {E}
    assert view.status_label.text() == "Showing 3 of 3"
    view.show_status(None)
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() == 12))


def test_set_to_pending_moves_the_row_and_updates_counts(make_view, qloop, db: Database) -> None:  # type: ignore[no-untyped-def]
    ids = qloop.run_until_complete(seed(db, 6, errors=[0, 1, 2]))
    view = make_view()
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() == 3))
    assert not view.set_pending_action.isEnabled()
    select_rows(view, [0])
    chosen = view.model.transaction(0).id
    assert view.set_pending_action.isEnabled() and view.archive_action.isEnabled()
    view.set_pending_action.trigger()
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() == 2
                                   and view.model.counts[E] == 2))
    assert chosen not in {view.model.transaction(r).id for r in range(2)}
    assert view.tabs.tabText(TAB_STATUSES.index(P)) == "Pending (4)"
    assert "1 transaction set to Pending" in view.status_label.text()
    view.show_status(P)
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() == 4))
    assert chosen in {view.model.transaction(r).id for r in range(4)}
    assert set(ids[3:]) < {view.model.transaction(r).id for r in range(4)}


def test_archive_multi_selection_and_set_all_to_pending(make_view, qloop, db: Database) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(seed(db, 8, errors=[0, 1, 2, 3, 4]))
    view = make_view()
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() == 5))
    select_rows(view, [0, 2])
    assert "2 transactions selected" in view.detail_title.text()
    view.archive_action.trigger()
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.counts[A] == 2 and view.model.rowCount() == 3))
    assert view.tabs.tabText(TAB_STATUSES.index(A)) == "Archived (2)"
    assert view.retry_all_action.isEnabled()
    view.retry_all_action.trigger()
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.counts[E] == 0 and view.model.rowCount() == 0))
    assert view.model.counts[P] == 6
    assert not view.retry_all_action.isEnabled()


def test_lazy_fetching_loads_more_on_scroll(make_view, qloop, db: Database) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(seed(db, 300))
    view = make_view(page_size=60)
    view.show_status(P)
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() >= 60))
    first = view.model.rowCount()
    assert first < 300
    bar = view.table.verticalScrollBar()
    for _ in range(20):
        if view.model.rowCount() == 300:
            break
        bar.setValue(bar.maximum())
        qloop.run_until_complete(until(lambda: not view.model.loading))
    assert view.model.rowCount() == 300 and view.model.exhausted
    ids = [view.model.transaction(r).id for r in range(300)]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 300


def test_detail_pane_shows_payload_and_full_error(make_view, qloop, db: Database) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(seed(db, 3, errors=[1]))
    view = make_view()
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() == 1))
    select_rows(view, [0])
    assert "Account 1" in view.detail_title.text()
    assert "00000001-0000-4000-8000-000000000000" in view.detail_title.text()
    fields = {view.payload_table.item(r, 0).text(): view.payload_table.item(r, 1).text()
              for r in range(view.payload_table.rowCount())}
    assert fields["name"] == "Account 1" and fields["revenue"] == "1001"
    assert view.payload_table.item(0, 0).font().bold()  # changed field first, in bold
    assert view.error_text.toPlainText() == "400 Bad Request: record 1 was rejected\nplugin trace line 2"
    assert view.model.data(view.model.index(0, view.model.COL_ERROR)) == "400 Bad Request: record 1 was rejected"


def test_queue_changed_event_updates_counts_and_offers_refresh(make_view, qloop, db: Database, bus: EventBus) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(seed(db, 4, errors=[0]))
    view = make_view()
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() == 1))
    bus.publish(QueueChanged("Other", {E: 99}))
    assert view.model.counts[E] == 1
    bus.publish(QueueChanged(PROFILE, {P: 3, E: 2, PR: 0, A: 0}))
    assert view.tabs.tabText(TAB_STATUSES.index(E)) == "Error (2)"
    assert view.changed_hint.isVisibleTo(view)
    view.refresh_action.trigger()
    assert not view.changed_hint.isVisibleTo(view)


def test_search_box_filters_the_tab(make_view, qloop, db: Database) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(seed(db, 30))
    view = make_view()
    view.show_status(P)
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() == 30))
    view.search_edit.setText("contact")
    qloop.run_until_complete(until(lambda: view.model.search_text == "contact" and not view.model.loading))
    assert view.model.rowCount() == 10
    assert "10 matches in 30 scanned" in view.status_label.text()


def test_manual_conflicts_stand_out_and_say_what_each_verb_does(make_view, qloop, db: Database) -> None:  # type: ignore[no-untyped-def]
    ids = qloop.run_until_complete(seed(db, 3, errors=[0]))
    text = describe(ConflictPolicy.MANUAL, Outcome.MANUAL, ["name"], {"name": "Client name"}, {"name": "Server name"})
    qloop.run_until_complete(repos.mark_error(db, ids[2], text))
    view = make_view()
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.rowCount() == 2))
    rows = {view.model.transaction(r).id: r for r in range(view.model.rowCount())}
    conflict, other = rows[ids[2]], rows[ids[0]]
    model = view.model
    assert model.data(model.index(conflict, model.COL_STATUS)) == "Error (conflict)"
    assert model.data(model.index(other, model.COL_STATUS)) == "Error"
    assert "Set to Pending sends the client's values" in model.data(model.index(conflict, model.COL_STATUS),
                                                                     Qt.ItemDataRole.ToolTipRole)
    assert model.data(model.index(conflict, model.COL_ERROR), Qt.ItemDataRole.ToolTipRole) == text  # full text
    assert model.data(model.index(conflict, model.COL_ERROR)).startswith("conflict: the server changed the record")
    select_rows(view, [conflict])
    assert view.error_text.toPlainText() == text
    assert "name: client 'Client name', server 'Server name'" in view.error_text.toPlainText()
    assert view.error_label.text() == "Error (conflict)"
    assert view.conflict_hint.isVisibleTo(view)
    assert "Set to Archived keeps the server's" in view.conflict_hint.text()
    select_rows(view, [other])
    assert view.error_label.text() == "Error" and not view.conflict_hint.isVisibleTo(view)
    # set to Pending by the admin: the note says the client's values go next
    select_rows(view, [conflict])
    view.set_pending_action.trigger()
    view.show_status(P)
    qloop.run_until_complete(until(lambda: loaded(view) and view.model.row_of(ids[2]) is not None))
    select_rows(view, [view.model.row_of(ids[2])])
    assert view.model.transaction(view.model.row_of(ids[2])).status is P
    assert "settled by you" in view.conflict_hint.text() and view.conflict_hint.isVisibleTo(view)
