"""The console shell against a real store and an engine over two in-memory organizations."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QLabel, QMessageBox, QWidget

from crmsync_desktop.auth.credentials import SecretKind
from crmsync_desktop.domain import ConnectionProfile, EntityConfig, ProfileConfig, RunStatus, ScheduleConfig
from crmsync_desktop.logs import LoggingSetup, setup_logging
from crmsync_desktop.store import repos
from crmsync_desktop.sync.config_file import export_config
from crmsync_desktop.sync.events import StateChanged
from crmsync_desktop.sync.profiles import ProfileService
from crmsync_desktop.sync.scheduler import ScheduleKind, ScheduleStatus
from crmsync_desktop.ui.models.entities_model import Column
from crmsync_desktop.views.main_window import MainWindow
from crmsync_desktop.views.verify_view import DryRunDialog, VerifyDialog
from tests.views.gui_rig import PROFILE, PROFILE_SETTINGS, GuiRig, make_rig, seed_accounts, settle, until

CONFIG = ProfileConfig(
    profile=ConnectionProfile(
        name="Fabrikam",
        server_url="https://fabrikam.crm4.dynamics.com",
        tenant_id="fabrikam.onmicrosoft.com",
        client_id="11111111-2222-3333-4444-555555555555",
        client_url="https://eu.rescocrm.com/fabrikam",
        client_user="admin@fabrikam.com",
    ),
    entities=(EntityConfig("account"), EntityConfig("contact", sync_deletion=True)),
    schedule=ScheduleConfig(interval_minutes=30),
)


@pytest.fixture
def rig(qloop, tmp_path: Path) -> Iterator[GuiRig]:  # type: ignore[no-untyped-def]
    r = make_rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def logging_setup(tmp_path: Path) -> Iterator[LoggingSetup]:
    setup = setup_logging(tmp_path / "logs" / "crmsync.log")
    try:
        yield setup
    finally:
        setup.close()


class Quit:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


@pytest.fixture
def quit_calls() -> Quit:
    return Quit()


@pytest.fixture
def window(qtbot, qapp, qloop, rig: GuiRig, logging_setup: LoggingSetup, tmp_path: Path, quit_calls: Quit) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    qapp.setQuitOnLastWindowClosed(False)  # as in the app: closing the window must not stop the loop
    w = MainWindow(rig.engine, rig.bridge, ProfileService(rig.db), logging_setup.ring, data_dir=tmp_path,
                   keyring_status="in-memory", on_quit=quit_calls)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.log_model.detach()
    qapp.setQuitOnLastWindowClosed(True)


def _connect(qloop, rig: GuiRig, *enable: str) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(rig.engine.save_connection(PROFILE_SETTINGS, {SecretKind.CLIENT_PASSWORD: "pw"}))
    result, _ = qloop.run_until_complete(rig.engine.connect(PROFILE))
    assert result.status is RunStatus.SUCCEEDED
    if enable:
        configs = qloop.run_until_complete(rig.engine.entity_statuses(PROFILE))
        qloop.run_until_complete(rig.engine.save_entity_configs(
            PROFILE, [replace(s.config, enabled=True) for s in configs if s.config.logical_name in enable]))


def _open(qloop, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(settle(window.refresh()))
    qloop.run_until_complete(until(lambda: window.entities.model.rowCount() > 0))


# -- shell -------------------------------------------------------------------------------------------


def test_empty_store_points_to_connection_and_import(window: MainWindow, qloop) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(settle(window.refresh()))
    assert window.profiles_model.rowCount() == 0
    assert window.entities.empty_hint.isVisible() and "Connection" in window.entities.empty_hint.text()
    assert not window.export_action.isEnabled() and not window.sync_all_action.isEnabled()
    assert window.state_label.text() == "No connection profile"
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Synchronization", "Jobs && Logs"]


def test_ribbon_groups_and_shortcuts(window: MainWindow) -> None:
    def texts(group) -> list[str]:  # type: ignore[no-untyped-def]
        return [b.text() for b in group.buttons if b.defaultAction().isVisible()]

    assert texts(window.server_group) == ["Connection", "Update Server", "Tracking", "Sync All"]
    assert texts(window.entity_group) == ["Save", "Sync Filter", "Upload Filter", "Fields"]
    assert texts(window.data_group) == ["Import", "Export"]
    assert texts(window.check_group) == ["Dry run", "Verify"]
    assert QKeySequence("Ctrl+S") in window.save_action.shortcuts()
    assert {QKeySequence("F5"), QKeySequence("Ctrl+Shift+S")} <= set(window.sync_all_action.shortcuts())
    assert QKeySequence("Ctrl+R") in window.refresh_action.shortcuts()
    seen: dict[str, str] = {}
    for action in window.findChildren(type(window.save_action)):
        for sequence in action.shortcuts():
            key = sequence.toString()
            assert key not in seen, f"{key} is bound to {seen[key]} and {action.text()}"
            seen[key] = action.text()


def test_import_then_export_round_trips(window: MainWindow, qloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.json"
    source.write_bytes(export_config(CONFIG))
    qloop.run_until_complete(settle(window.import_from(str(source))))
    qloop.run_until_complete(until(lambda: window.profiles_model.rowCount() == 1))
    assert window.current_profile_name() == "Fabrikam"
    assert window.export_action.isEnabled()
    assert window.windowTitle().startswith("Fabrikam")

    target = tmp_path / "out.json"
    qloop.run_until_complete(settle(window.export_to("Fabrikam", str(target))))
    exported = json.loads(target.read_bytes())
    original = json.loads(source.read_bytes())
    exported.pop("exported_at"), original.pop("exported_at")
    assert exported == original


def test_bad_file_shows_the_precise_error_and_changes_nothing(  # type: ignore[no-untyped-def]
    window: MainWindow, qloop, rig: GuiRig, tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(export_config(CONFIG))
    qloop.run_until_complete(settle(window.import_from(str(good))))
    document = json.loads(good.read_bytes())
    document["entities"][0]["colour"] = "blue"
    document["schedule"]["interval_minutes"] = 5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    window.import_from(str(bad))
    qloop.run_until_complete(until(lambda: window.findChild(QMessageBox, "errorBox") is not None))
    box = window.findChild(QMessageBox, "errorBox")
    assert "entities[0]" in box.text() and "colour" in box.text()
    box.close()
    cfg = qloop.run_until_complete(ProfileService(rig.db).load_config("Fabrikam"))
    assert cfg.schedule.interval_minutes == 30


def test_log_lines_appear_live(window: MainWindow, qloop) -> None:  # type: ignore[no-untyped-def]
    before = window.log_model.rowCount()
    logging.getLogger("crmsync_desktop.test").warning("visible in the console")
    qloop.run_until_complete(until(lambda: window.log_model.rowCount() == before + 1))
    last = window.log_model.index(window.log_model.rowCount() - 1, 3)
    assert window.log_model.data(last) == "visible in the console"


# -- connection and entity grid ---------------------------------------------------------------------------


def test_connection_dialog_then_grid_lists_entities(window: MainWindow, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(settle(window.refresh()))
    dialog = window.open_connection_dialog()
    assert dialog.isVisible() and not dialog.name_edit.isReadOnly()
    dialog.name_edit.setText(PROFILE)
    dialog.client_url.setText("https://contoso.rescocrm.com")
    dialog.client_user.setText("admin@contoso.com")
    dialog.client_password.setText("pw")
    dialog.server_url.setText("https://contoso.crm.dynamics.com")
    dialog.client_id.setText("11111111-2222-3333-4444-555555555555")
    dialog.client_secret.setText("secret")
    qloop.run_until_complete(settle(dialog.connect_organizations()))
    qloop.run_until_complete(until(lambda: window.entities.model.rowCount() > 5))
    assert window.current_profile_name() == PROFILE
    assert window.state_label.text().startswith("Contoso: Connected")
    assert window.sync_all_action.isEnabled() and window.verify_action.isEnabled()
    dialog.close()


def test_unsaved_changes_mark_the_title_and_are_asked_about(  # type: ignore[no-untyped-def]
    window: MainWindow, qloop, rig: GuiRig, quit_calls: Quit
) -> None:
    _connect(qloop, rig)
    qloop.run_until_complete(ProfileService(rig.db).import_config(export_config(CONFIG)))
    _open(qloop, window)
    assert window.profile_box_action.isVisible()  # two profiles: the selector shows
    window.select_profile(PROFILE)
    qloop.run_until_complete(until(lambda: window.entities.model.rowCount() > 5))
    model = window.entities.model
    model.setData(model.index(model.row_of("account"), Column.ENABLED), Qt.CheckState.Checked.value,
                  Qt.ItemDataRole.CheckStateRole)
    assert window.isWindowModified() and window.windowTitle().startswith("Contoso[*]")
    assert window.save_action.isEnabled()

    # switching profile asks; Cancel stays
    window.select_profile("Fabrikam")
    box = window.prompt
    assert box is not None and box.isVisible() and "1 entity has unsaved changes" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert window.current_profile_name() == PROFILE and window.entities.is_dirty
    assert window.profile_combo.currentText() == PROFILE

    # closing asks too; Save stores, then the window closes
    window.close()
    box = window.prompt
    assert box is not None and box.isVisible() and box.objectName() == "unsavedChanges"
    box.button(QMessageBox.StandardButton.Save).click()
    qloop.run_until_complete(until(lambda: quit_calls.calls == 1))
    configs = {c.logical_name: c for c in qloop.run_until_complete(repos.list_entity_configs(rig.db, PROFILE))}
    assert configs["account"].enabled


def test_discard_when_switching_profile(window: MainWindow, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    _connect(qloop, rig)
    qloop.run_until_complete(ProfileService(rig.db).import_config(export_config(CONFIG)))
    _open(qloop, window)
    window.select_profile(PROFILE)
    qloop.run_until_complete(until(lambda: window.entities.model.rowCount() > 5))
    window.entities.model.update_config("lead", enabled=True)
    window.select_profile("Fabrikam")
    window.prompt.button(QMessageBox.StandardButton.Discard).click()
    assert window.current_profile_name() == "Fabrikam" and not window.isWindowModified()
    configs = {c.logical_name: c for c in qloop.run_until_complete(repos.list_entity_configs(rig.db, PROFILE))}
    assert not configs["lead"].enabled


# -- long operations -------------------------------------------------------------------------------------


def test_sync_all_shows_progress_and_result(window: MainWindow, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    seed_accounts(rig, 30)
    _connect(qloop, rig, "account")
    _open(qloop, window)
    window.sync_all_action.trigger()
    assert window.progress_panel.isVisible() and "Sync All" in window.progress_panel.label.text()
    assert not window.sync_all_action.isEnabled() and window.cancel_action.isEnabled()
    qloop.run_until_complete(until(lambda: not window.operation_running))
    assert not window.progress_panel.isVisible()
    message = window.entities.message
    assert message.title_label.text() == "Sync All finished" and "33 created" in message.text_label.text()
    qloop.run_until_complete(until(lambda: window.entities.model.row_at(
        window.entities.model.row_of("account")).status.records_held == 30))
    assert "Last sync: " in window.sync_times_label.text() and "never" not in window.sync_times_label.text()


def test_verify_shows_in_sync(window: MainWindow, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    seed_accounts(rig, 5)
    _connect(qloop, rig, "account")
    qloop.run_until_complete(rig.engine.sync(PROFILE, full=True))
    _open(qloop, window)
    qloop.run_until_complete(settle(window.verify()))
    dialog = window.findChild(VerifyDialog)
    assert dialog is not None and dialog.isVisible()
    assert dialog.verdict.title_label.text() == "In sync"
    rows = [dialog.model.row_at(r).cells for r in range(dialog.model.rowCount())]
    assert ("account", "In sync", 5, 5, 0, 0, 0, 0, "") in rows
    dialog.close()


def test_dry_run_shows_counts(window: MainWindow, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    seed_accounts(rig, 7)
    _connect(qloop, rig, "account")
    _open(qloop, window)
    qloop.run_until_complete(settle(window.dry_run()))
    dialog = window.findChild(DryRunDialog)
    assert dialog is not None and dialog.isVisible()
    account = next(dialog.model.row_at(r) for r in range(dialog.model.rowCount())
                   if dialog.model.row_at(r).cells[0] == "account")
    assert account.cells[1] == 7 and "create:" in account.cells[-1]
    assert rig.client.count("account") == 0  # nothing written
    dialog.close()


def test_a_failed_run_shows_the_engine_error(window: MainWindow, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    _connect(qloop, rig, "account")
    _open(qloop, window)
    rig.server.offline = True
    qloop.run_until_complete(settle(window.sync_all()))
    message = window.entities.message
    assert message.level == "error" and message.title_label.text() == "Sync All failed"
    assert "cannot be reached" in message.text_label.text() and "Jobs & Logs" in message.text_label.text()
    assert "Offline" in window.state_label.text()
    rig.server.offline = False


def test_cancel_stops_the_operation_safely(window: MainWindow, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    seed_accounts(rig, 50)
    _connect(qloop, rig, "account")
    _open(qloop, window)
    task = window.sync_all()
    window.progress_panel.cancel_button.click()
    qloop.run_until_complete(settle(task))
    assert task.cancelled() and not window.operation_running
    assert window.entities.message.title_label.text() == "Sync All cancelled"
    assert window.sync_all_action.isEnabled()


def test_closing_during_a_sync_asks_and_stops_safely(  # type: ignore[no-untyped-def]
    window: MainWindow, qloop, rig: GuiRig, quit_calls: Quit
) -> None:
    seed_accounts(rig, 50)
    _connect(qloop, rig, "account")
    _open(qloop, window)
    task = window.sync_all()
    window.close()
    box = window.prompt
    assert box is not None and box.objectName() == "closeWhileRunning"
    assert [b.text() for b in box.buttons() if "tray" in b.text()] == []  # no tray here
    next(b for b in box.buttons() if b.text() == "Stop safely and quit").click()
    qloop.run_until_complete(settle(task))
    qloop.run_until_complete(until(lambda: quit_calls.calls == 1))


def test_status_bar_follows_engine_events(window: MainWindow, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from crmsync_desktop.domain import TransactionStatus
    from crmsync_desktop.sync.events import EngineState
    from crmsync_desktop.sync.upload.events import QueueChanged

    _connect(qloop, rig)
    _open(qloop, window)
    until_at = datetime.now(UTC) + timedelta(minutes=5)
    rig.engine.bus.publish(StateChanged(PROFILE, EngineState.THROTTLED, "429", until_at))
    assert "Throttled until" in window.state_label.text()
    rig.engine.bus.publish(QueueChanged(PROFILE, {TransactionStatus.PENDING: 3, TransactionStatus.ERROR: 1}))
    assert window.queue_label.isVisible() and window.queue_label.text() == "Offline queue: 3 pending, 1 error(s)"
    window.set_schedule_status(ScheduleStatus(PROFILE, ScheduleKind.IDLE, until_at, None))
    assert "Next: " in window.sync_times_label.text()


def test_hosted_screens_and_filter_editor(window: MainWindow, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    _connect(qloop, rig)

    class Jobs(QLabel):
        def __init__(self) -> None:
            super().__init__("jobs")
            self.refreshed = 0

        def refresh(self) -> None:
            self.refreshed += 1

    built: list[str] = []

    def transactions(profile: str) -> QWidget:
        built.append(profile)
        return QLabel(f"queue of {profile}")

    jobs = Jobs()
    window.set_jobs_view(jobs)
    window.set_transactions_view(transactions)
    assert jobs.refreshed == 1
    _open(qloop, window)
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        "Synchronization", "Offline Transactions", "Jobs && Logs"]
    assert window.tabs.widget(2) is jobs and jobs.refreshed >= 2 and built[-1] == PROFILE

    class Editor(QDialog):
        from PySide6.QtCore import Signal

        accepted_xml = Signal(str)

        def __init__(self, engine, profile, entity, which, xml, parent) -> None:  # type: ignore[no-untyped-def]
            super().__init__(parent)
            self.which = which

    window.set_filter_editor(Editor)
    assert window.sync_filter_action.isVisible() and window.upload_filter_action.isVisible()
    window.entities.select_entity("account")
    window.sync_filter_action.trigger()
    editor = window.findChild(Editor)
    assert editor is not None and editor.which == "sync"
    editor.accepted_xml.emit('<fetch><entity name="account"><filter><condition attribute="statecode" '
                             'operator="eq" value="0"/></filter></entity></fetch>')
    assert window.isWindowModified()
    editor.close()


def test_sync_filter_opens_the_filter_editor(window: MainWindow, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    from crmsync_desktop.views.filter_editor import FilterEditorDialog

    _connect(qloop, rig)
    _open(qloop, window)
    assert not window.sync_filter_action.isEnabled()  # no entity selected yet
    window.entities.select_entity("contact")
    assert window.sync_filter_action.isEnabled()
    window.upload_filter_action.trigger()
    dialog = window.findChild(FilterEditorDialog)
    assert dialog is not None and dialog.isVisible()
    qloop.run_until_complete(until(lambda: True))
    xml = ('<fetch><entity name="contact"><filter><condition attribute="statecode" operator="eq" value="0"/>'
           "</filter></entity></fetch>")
    dialog.accepted_xml.emit(xml)
    row = window.entities.model.row_at(window.entities.model.row_of("contact"))
    assert row.config.upload_filter == xml and window.isWindowModified()
    dialog.close()
    qloop.run_until_complete(until(lambda: True))
