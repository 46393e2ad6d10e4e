"""The Tracking dialog (Woodford's Plugins screen + Dataverse change tracking) against the GUI rig."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from crmsync_desktop.auth.credentials import SecretKind
from crmsync_desktop.domain import RunStatus
from crmsync_desktop.logs import LoggingSetup, setup_logging
from crmsync_desktop.store import repos
from crmsync_desktop.sync.profiles import ProfileService
from crmsync_desktop.sync.tracking_config import CONFIG_ENTITY
from crmsync_desktop.views.main_window import MainWindow
from crmsync_desktop.views.tracking_dialog import TrackingDialog, TrackingTab
from tests.fakes.memory_org import add_resco_plugin_tables
from tests.views.gui_rig import PROFILE, PROFILE_SETTINGS, GuiRig, make_rig, settle, until


def _connect(qloop, rig: GuiRig, *enable: str) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(rig.engine.save_connection(PROFILE_SETTINGS, {SecretKind.CLIENT_PASSWORD: "pw"}))
    result, _ = qloop.run_until_complete(rig.engine.connect(PROFILE))
    assert result.status is RunStatus.SUCCEEDED
    configs = {c.logical_name: c for c in qloop.run_until_complete(repos.list_entity_configs(rig.db, PROFILE))}
    qloop.run_until_complete(rig.engine.save_entity_configs(
        PROFILE, [replace(configs[n], enabled=True) for n in enable]))


@pytest.fixture
def rig(qloop, tmp_path: Path) -> Iterator[GuiRig]:  # type: ignore[no-untyped-def]
    r = make_rig(tmp_path)
    add_resco_plugin_tables(r.server)
    r.server.update_entity_meta("lead", change_tracking=False)
    r.server.update_entity_meta("contact", change_tracking=False)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def dialog(qtbot, qloop, rig: GuiRig) -> TrackingDialog:  # type: ignore[no-untyped-def]
    _connect(qloop, rig, "account", "lead", "competitor", "contact")
    d = TrackingDialog(rig.engine, PROFILE)
    qtbot.addWidget(d)
    d.show()
    qloop.run_until_complete(until(lambda: d.overview is not None))
    return d


def test_lists_tables_relationships_and_change_tracking(dialog: TrackingDialog) -> None:
    assert [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())] == ["N:N Relationships", "Delete", "Owner"]
    assert dialog.tabs.currentIndex() == TrackingTab.DELETE
    delete = dialog.visible_names(TrackingTab.DELETE)
    assert {"account", "lead", "contact", "competitor", "systemuser"} <= set(delete)
    assert "opportunity" not in delete  # not synchronized: hidden until "Only synchronized" is cleared
    assert CONFIG_ENTITY not in delete and "resco_mobiletracking" not in delete
    assert "competitor" not in dialog.visible_names(TrackingTab.OWNER)  # organization-owned: no owner
    assert dialog.visible_names(TrackingTab.RELATIONSHIPS) == ["leadcompetitors_association"]
    assert dialog.is_checked(TrackingTab.DELETE, "account", change_tracking=True)
    assert not dialog.is_checked(TrackingTab.DELETE, "lead", change_tracking=True)
    account_ct = dialog.models[TrackingTab.DELETE].item(dialog._row_of(TrackingTab.DELETE, "account"), 3)
    assert not account_ct.isEnabled()  # on already: it cannot be switched off
    assert not dialog.save_button.isEnabled() and dialog.pending_label.text() == "No changes"

    dialog.only_synced.setChecked(False)
    assert "opportunity" in dialog.visible_names(TrackingTab.DELETE)
    dialog.search.setText("lea")
    assert dialog.visible_names(TrackingTab.DELETE) == ["lead"]
    assert dialog.visible_names(TrackingTab.RELATIONSHIPS) == ["leadcompetitors_association"]


def test_change_tracking_is_one_state_on_both_tabs(dialog: TrackingDialog) -> None:
    dialog.set_checked(TrackingTab.OWNER, "lead", True, change_tracking=True)
    assert dialog.is_checked(TrackingTab.DELETE, "lead", change_tracking=True)
    assert dialog.pending_changes().change_tracking == {"lead"}
    assert dialog.pending_label.text() == "1 change to save — 1 cannot be undone"
    dialog.set_checked(TrackingTab.DELETE, "lead", False, change_tracking=True)
    assert not dialog.is_checked(TrackingTab.OWNER, "lead", change_tracking=True)
    assert dialog.pending_changes().is_empty


def test_save_without_irreversible_steps_writes_the_configuration(qloop, dialog: TrackingDialog, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    saved: list[object] = []
    dialog.saved.connect(saved.append)
    dialog.set_checked(TrackingTab.DELETE, "account", True)
    dialog.set_checked(TrackingTab.OWNER, "account", True)
    dialog.set_checked(TrackingTab.RELATIONSHIPS, "leadcompetitors_association", True)
    assert dialog.save_button.isEnabled() and dialog.pending_label.text() == "3 changes to save"

    task = dialog.save()
    assert task is not None and not isinstance(task, QMessageBox)  # nothing irreversible: no confirmation
    qloop.run_until_complete(until(lambda: bool(saved) and dialog.overview is not None and not dialog._busy()))

    assert dialog.message.title_label.text() == "Tracking saved"
    assert "resco_mobiletracking enabled for synchronization" in dialog.message.text_label.text()
    rows = rig.server.records(CONFIG_ENTITY)
    assert {(r.get("resco_entityname"), r.get("resco_relationshipname")) for r in rows} == {
        ("account", None), (None, "leadcompetitors_association")}
    assert dialog.is_checked(TrackingTab.DELETE, "account") and dialog.pending_changes().is_empty
    configs = {c.logical_name: c for c in qloop.run_until_complete(repos.list_entity_configs(rig.db, PROFILE))}
    assert configs["resco_mobiletracking"].enabled


def test_irreversible_change_tracking_is_confirmed_first(qloop, dialog: TrackingDialog, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    dialog.set_checked(TrackingTab.DELETE, "lead", True, change_tracking=True)
    dialog.set_checked(TrackingTab.DELETE, "contact", True, change_tracking=True)

    box = dialog.save()
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "cannot be undone" in box.text() and "contact, lead" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    qloop.run_until_complete(settle(None))
    assert not rig.server.schema_entity("lead").change_tracking  # nothing happened

    box = dialog.save()
    assert isinstance(box, QMessageBox)
    dialog.confirm_button.click()
    qloop.run_until_complete(until(lambda: dialog.message.title_label.text() == "Tracking saved"
                                   and not dialog._busy() and dialog.overview is not None
                                   and dialog.overview.entity("lead").change_tracking))  # type: ignore[union-attr]
    assert rig.server.schema_entity("lead").change_tracking and rig.server.schema_entity("contact").change_tracking
    assert "cannot be undone" in dialog.message.text_label.text()
    lead_ct = dialog.models[TrackingTab.DELETE].item(dialog._row_of(TrackingTab.DELETE, "lead"), 3)
    assert lead_ct.checkState().name == "Checked" and not lead_ct.isEnabled()


def test_a_server_without_the_plugins_allows_only_change_tracking(qtbot, qloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig(tmp_path)
    try:
        rig.server.update_entity_meta("lead", change_tracking=False)
        _connect(qloop, rig, "lead")
        d = TrackingDialog(rig.engine, PROFILE)
        qtbot.addWidget(d)
        d.show()
        qloop.run_until_complete(until(lambda: d.overview is not None))
        assert d.message.isVisible() and d.message.title_label.text() == "Resco plugins not installed"
        row = d._row_of(TrackingTab.DELETE, "lead")
        assert not d.models[TrackingTab.DELETE].item(row, 0).isEnabled()
        assert d.models[TrackingTab.DELETE].item(row, 3).isEnabled()
    finally:
        rig.close()


def test_the_server_group_opens_the_dialog(qtbot, qapp, qloop, rig: GuiRig, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _connect(qloop, rig, "account")
    setup: LoggingSetup = setup_logging(tmp_path / "logs" / "crmsync.log")
    qapp.setQuitOnLastWindowClosed(False)
    window = MainWindow(rig.engine, rig.bridge, ProfileService(rig.db), setup.ring, data_dir=tmp_path,
                        keyring_status="in-memory")
    qtbot.addWidget(window)
    window.show()
    try:
        qloop.run_until_complete(settle(window.refresh()))
        qloop.run_until_complete(until(lambda: window.entities.model.rowCount() > 0))
        assert window.tracking_action.isEnabled()
        window.tracking_action.trigger()
        dialog = window.tracking_dialog
        assert isinstance(dialog, TrackingDialog) and dialog.isVisible()
        qloop.run_until_complete(until(lambda: dialog.overview is not None))
        dialog.set_checked(TrackingTab.DELETE, "account", True)
        dialog.save()
        qloop.run_until_complete(until(lambda: dialog.message.title_label.text() == "Tracking saved"
                                       and not dialog._busy()))
        assert not window.operation_running
        dialog.close()
        qloop.run_until_complete(settle(None))
    finally:
        window.log_model.detach()
        qapp.setQuitOnLastWindowClosed(True)
        setup.close()


def test_an_unreachable_server_is_shown_not_raised(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    _connect(qloop, rig, "account")
    rig.server.offline = True
    d = TrackingDialog(rig.engine, PROFILE)
    qtbot.addWidget(d)
    d.show()
    qloop.run_until_complete(until(lambda: d.message.isVisible()))
    assert "offline" in d.message.text_label.text() and d.overview is None
    assert not d.save_button.isEnabled()
    rig.server.offline = False
    qloop.run_until_complete(settle(d.load()))
    assert d.overview is not None and d.reload_button.isEnabled()
