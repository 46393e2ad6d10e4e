"""The Synchronization tab (entity grid) and the field picker against an engine after Connect."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemDelegate, QComboBox, QDialog

from crmsync_desktop.auth.credentials import SecretKind
from crmsync_desktop.domain import ConflictPolicy, DeletionStrategy, RunStatus
from crmsync_desktop.errors import ProfileNotFoundError
from crmsync_desktop.store import repos
from crmsync_desktop.ui.models.entities_model import Column
from crmsync_desktop.views.entities_view import EntitiesView
from crmsync_desktop.views.fields_dialog import FieldsDialog
from tests.views.gui_rig import PROFILE, PROFILE_SETTINGS, GuiRig, make_rig, settle, until

BAD_FILTER = ('<fetch><entity name="account"><filter><condition attribute="nosuchfield" operator="eq" value="1"/>'
              "</filter></entity></fetch>")


@pytest.fixture
def rig(qloop, tmp_path: Path) -> Iterator[GuiRig]:  # type: ignore[no-untyped-def]
    r = make_rig(tmp_path)
    qloop.run_until_complete(r.engine.save_connection(PROFILE_SETTINGS, {SecretKind.CLIENT_PASSWORD: "pw"}))
    result, _ = qloop.run_until_complete(r.engine.connect(PROFILE))
    assert result.status is RunStatus.SUCCEEDED
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def view(qtbot, qloop, rig: GuiRig) -> EntitiesView:  # type: ignore[no-untyped-def]
    v = EntitiesView(rig.engine)
    qtbot.addWidget(v)
    v.resize(1200, 600)
    v.show()
    qloop.run_until_complete(settle(v.load(PROFILE)))
    return v


def _visible_names(view: EntitiesView) -> list[str]:
    return [view.model.row_at(r).name for r in view.visible_rows()]


def test_grid_lists_the_entities_after_connect(view: EntitiesView) -> None:
    names = _visible_names(view)
    assert {"account", "contact", "lead", "systemuser"} <= set(names)
    assert view.stack.currentWidget() is view.table
    # sorted by display name like Woodford's grid
    labels = [view.model.row_at(r).status.display_name.casefold() for r in view.visible_rows()]
    assert labels == sorted(labels)
    assert any(view.model.row_at(r).is_intersect for r in view.visible_rows())  # N:N marked
    assert "3 of" in view.count_label.text()  # users, teams, business units start enabled


def test_search_and_enabled_only_filter_rows(qtbot, view: EntitiesView) -> None:  # type: ignore[no-untyped-def]
    qtbot.keyClicks(view.search, "acc")
    assert _visible_names(view) == ["account"]
    view.search.setText("Contact")  # display names match too
    assert "contact" in _visible_names(view)
    view.search.clear()
    view.enabled_only.setChecked(True)
    assert set(_visible_names(view)) == {"businessunit", "systemuser", "team"}


def test_enable_and_save_persists_and_reports_the_full_sync(  # type: ignore[no-untyped-def]
    qtbot, qloop, rig: GuiRig, view: EntitiesView
) -> None:
    view.search.setText("account")
    view.select_all_button.click()
    view.search.setText("contact")
    view.select_all_button.click()
    view.search.clear()
    assert view.is_dirty
    account = view.model.index(view.model.row_of("account"), Column.SYNC_DELETION)
    view.model.setData(account, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    with qtbot.waitSignal(view.saved, timeout=0, raising=False) as saved:
        qloop.run_until_complete(settle(view.save()))
        qloop.run_until_complete(until(lambda: not view.is_dirty and view.message.isVisible()))
    assert sorted(saved.args[0]) == ["account", "contact"]
    assert "reads these entities in full: account, contact" in view.message.text_label.text()
    configs = {c.logical_name: c for c in qloop.run_until_complete(repos.list_entity_configs(rig.db, PROFILE))}
    assert configs["account"].enabled and configs["contact"].enabled and configs["account"].sync_deletion
    row = view.model.row_of("account")
    assert view.model.data(view.model.index(row, Column.DELETION)) == "Auto → change tracking"
    assert view.model.row_at(row).status.resolved_deletion is DeletionStrategy.CHANGE_TRACKING


def test_filter_problems_are_shown_inline_and_nothing_is_saved(  # type: ignore[no-untyped-def]
    qtbot, qloop, rig: GuiRig, view: EntitiesView
) -> None:
    view.model.update_config("account", enabled=True, sync_filter=BAD_FILTER)
    qloop.run_until_complete(settle(view.save()))
    assert view.message.isVisible() and view.message.level == "error"
    assert "nosuchfield" in view.message.text_label.text() and "save again" in view.message.text_label.text()
    assert view.is_dirty  # the edits stay for fixing
    configs = {c.logical_name: c for c in qloop.run_until_complete(repos.list_entity_configs(rig.db, PROFILE))}
    assert not configs["account"].enabled


def test_fields_dialog_locks_the_primary_key(qtbot, qloop, view: EntitiesView) -> None:  # type: ignore[no-untyped-def]
    assert view.select_entity("account")
    dialog = view.open_fields_dialog()
    assert isinstance(dialog, FieldsDialog) and dialog.isVisible()
    model = dialog.model
    pk = next(i for i in range(model.rowCount()) if model.field_at(i).logical_name == "accountid")
    assert model.is_locked(pk)
    assert "primary key" in model.data(model.index(pk, 4))
    dialog.select_none_button.click()
    assert "accountid" in model.selected() and "name" in model.selected()
    dialog.search.setText("employ")
    assert [model.field_at(r).logical_name for r in dialog.visible_rows()] == ["numberofemployees"]
    dialog.select_all_button.click()
    dialog.ok_button.click()
    fields = view.model.row_at(view.model.row_of("account")).config.fields
    assert "numberofemployees" in fields and "accountid" in fields and "telephone1" not in fields
    assert view.is_dirty


class _FakeEditor(QDialog):
    accepted_xml = Signal(str)

    def __init__(self, engine, profile, entity, which, xml, parent) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self.args = (profile, entity, which, xml)


def test_filter_editor_integration(qtbot, view: EntitiesView) -> None:  # type: ignore[no-untyped-def]
    opened: list[_FakeEditor] = []

    def factory(*args):  # type: ignore[no-untyped-def]
        editor = _FakeEditor(*args)
        opened.append(editor)
        return editor

    assert view.open_filter_editor("sync") is None  # nothing wired: nothing opens
    view.filter_editor = factory
    view.select_entity("contact")
    view.open_filter_editor("upload")
    assert opened[0].args == (PROFILE, "contact", "upload", "")
    xml = '<fetch><entity name="contact"><filter><condition attribute="statecode" operator="eq" value="0"/></filter></entity></fetch>'
    opened[0].accepted_xml.emit(xml)
    assert view.model.row_at(view.model.row_of("contact")).config.upload_filter == xml
    assert opened[0].isVisible()
    opened[0].close()


def test_engine_error_while_loading_is_shown(qtbot, qloop, rig: GuiRig, view: EntitiesView) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(settle(view.load("Nobody")))
    assert view.message.isVisible() and view.message.level == "error"
    assert view.message.title_label.text() == ProfileNotFoundError.default_title
    assert view.message.text_label.text()


def _conflict_cell(view: EntitiesView, name: str):  # type: ignore[no-untyped-def]
    """The proxy (view) index of ``name``'s Conflicts cell."""
    return view.proxy.mapFromSource(view.model.index(view.model.row_of(name), Column.CONFLICTS))


def _editor(view: EntitiesView) -> QComboBox:
    combos = [c for c in view.table.findChildren(QComboBox, "conflictCombo") if c.isVisible()]
    assert len(combos) == 1
    return combos[0]


def test_conflicts_column_shows_the_stored_policy(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    configs = {c.logical_name: c for c in qloop.run_until_complete(repos.list_entity_configs(rig.db, PROFILE))}
    qloop.run_until_complete(repos.save_entity_configs(rig.db, PROFILE, [
        replace(configs["contact"], conflict_policy=ConflictPolicy.MANUAL),
        replace(configs["lead"], conflict_policy=ConflictPolicy.CLIENT_WINS_FULL),
    ]))
    view = EntitiesView(rig.engine)
    qtbot.addWidget(view)
    view.resize(1400, 600)
    view.show()
    qloop.run_until_complete(settle(view.load(PROFILE)))
    assert view.proxy.headerData(Column.CONFLICTS, Qt.Orientation.Horizontal) == "Conflicts"
    assert view.proxy.data(_conflict_cell(view, "contact")) == "Manual"
    assert view.proxy.data(_conflict_cell(view, "lead")) == "Client wins (full)"
    assert view.proxy.data(_conflict_cell(view, "account")) == "Server wins"
    assert not view.table.isColumnHidden(Column.CONFLICTS) and view.table.columnWidth(Column.CONFLICTS) > 0
    assert not view.is_dirty


def test_conflict_policy_edited_with_the_combo_and_saved_without_a_full_sync(  # type: ignore[no-untyped-def]
    qtbot, qloop, rig: GuiRig, view: EntitiesView
) -> None:
    qloop.run_until_complete(rig.engine.sync(PROFILE, full=True))
    before = qloop.run_until_complete(repos.get_sync_state(rig.db, PROFILE, "systemuser"))
    assert before is not None and before.token  # where the last sync stopped
    qloop.run_until_complete(settle(view.load(PROFILE)))

    cell = _conflict_cell(view, "systemuser")
    view.table.setCurrentIndex(cell)
    view.table.edit(cell)
    combo = _editor(view)
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "Server wins", "Client wins", "Client wins (full)", "Newer wins", "Manual"]
    assert combo.currentText() == "Server wins"
    tips = [combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(combo.count())]
    assert all(tip and "\n" not in tip for tip in tips)
    assert "Set to Pending" in tips[4]
    newer = combo.findData(ConflictPolicy.NEWER_WINS.value)
    with qtbot.waitSignal(view.dirty_changed) as dirty:
        combo.setCurrentIndex(newer)
        combo.activated.emit(newer)  # what picking an item with the mouse does
    assert dirty.args == [True]
    assert combo.toolTip() == tips[newer]
    view.table.closeEditor(combo, QAbstractItemDelegate.EndEditHint.NoHint)
    row = view.model.row_at(view.model.row_of("systemuser"))
    assert row.dirty and row.config.conflict_policy is ConflictPolicy.NEWER_WINS
    assert view.proxy.data(cell) == "Newer wins"
    assert "1 unsaved" in view.count_label.text()

    with qtbot.waitSignal(view.saved, timeout=0, raising=False) as saved:
        qloop.run_until_complete(settle(view.save()))
        qloop.run_until_complete(until(lambda: not view.is_dirty and view.message.isVisible()))
    assert saved.args == [[]]  # a conflict policy never makes the next sync read everything
    assert "No entity needs a full sync" in view.message.text_label.text()
    stored = {c.logical_name: c for c in qloop.run_until_complete(repos.list_entity_configs(rig.db, PROFILE))}
    assert stored["systemuser"].conflict_policy is ConflictPolicy.NEWER_WINS
    assert stored["account"].conflict_policy is ConflictPolicy.SERVER_WINS
    after = qloop.run_until_complete(repos.get_sync_state(rig.db, PROFILE, "systemuser"))
    assert after is not None and after.token == before.token
    assert view.proxy.data(_conflict_cell(view, "systemuser")) == "Newer wins"  # reloaded from the store


def test_conflict_policy_can_be_edited_with_the_keyboard(qtbot, qloop, view: EntitiesView) -> None:  # type: ignore[no-untyped-def]
    view.table.setFocus()
    view.table.setCurrentIndex(_conflict_cell(view, "account"))
    qtbot.keyClick(view.table, Qt.Key.Key_F2)  # the edit key opens the combo
    combo = _editor(view)
    assert combo.currentData() == ConflictPolicy.SERVER_WINS.value
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    qtbot.keyClick(combo, Qt.Key.Key_Return)  # commits and closes the editor (queued)
    qloop.run_until_complete(until(
        lambda: not [c for c in view.table.findChildren(QComboBox, "conflictCombo") if c.isVisible()]))
    config = view.model.row_at(view.model.row_of("account")).config
    assert config.conflict_policy is ConflictPolicy.CLIENT_WINS_FULL
    assert view.is_dirty


def test_conflicts_cannot_be_edited_on_intersect_entities(qtbot, view: EntitiesView) -> None:  # type: ignore[no-untyped-def]
    name = next(view.model.row_at(r).name for r in view.visible_rows() if view.model.row_at(r).is_intersect)
    cell = _conflict_cell(view, name)
    view.table.setFocus()
    view.table.setCurrentIndex(cell)
    qtbot.keyClick(view.table, Qt.Key.Key_F2)
    assert not [c for c in view.table.findChildren(QComboBox, "conflictCombo") if c.isVisible()]
    assert "never conflict" in view.proxy.data(cell, Qt.ItemDataRole.ToolTipRole)
    assert not view.is_dirty
