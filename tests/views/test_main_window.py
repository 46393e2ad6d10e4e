"""The console shell against a real store: import and export of configuration files, live log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from crmsync_desktop.domain import ConnectionProfile, EntityConfig, ProfileConfig, ScheduleConfig
from crmsync_desktop.logs import LoggingSetup, setup_logging
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.config_file import export_config
from crmsync_desktop.sync.profiles import ProfileService
from crmsync_desktop.views.main_window import MainWindow

CONFIG = ProfileConfig(
    profile=ConnectionProfile(
        name="Contoso",
        server_url="https://contoso.crm4.dynamics.com",
        tenant_id="contoso.onmicrosoft.com",
        client_id="11111111-2222-3333-4444-555555555555",
        client_url="https://eu.rescocrm.com",
        client_user="admin@contoso.com",
    ),
    entities=(EntityConfig("account"), EntityConfig("contact", sync_deletion=True)),
    schedule=ScheduleConfig(interval_minutes=30),
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_store(tmp_path / "store.sqlite3", tmp_path / "backups")
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def logging_setup(tmp_path: Path) -> Iterator[LoggingSetup]:
    setup = setup_logging(tmp_path / "logs" / "crmsync.log")
    try:
        yield setup
    finally:
        setup.close()


@pytest.fixture
def window(qtbot, qloop, db: Database, logging_setup: LoggingSetup, tmp_path: Path) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    w = MainWindow(ProfileService(db), logging_setup.ring, data_dir=tmp_path, keyring_status="in-memory")
    qtbot.addWidget(w)
    w.show()
    yield w
    w.log_model.detach()


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Await (never block) until ``predicate()`` holds: the loop keeps running meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def test_empty_store_shows_hint_and_disables_export(window: MainWindow, qloop) -> None:  # type: ignore[no-untyped-def]
    window.refresh()
    qloop.run_until_complete(_until(lambda: window.status_label.text() != ""))
    assert window.profiles_model.rowCount() == 0
    assert window.empty_hint.isVisible()
    assert not window.export_action.isEnabled()


def test_import_then_export_round_trips(window: MainWindow, qloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.json"
    source.write_bytes(export_config(CONFIG))
    window.import_from(str(source))
    qloop.run_until_complete(_until(lambda: window.profiles_model.rowCount() == 1))
    assert window.profiles_model.profile_at(0).name == "Contoso"
    assert window.export_action.isEnabled()
    assert not window.empty_hint.isVisible()

    target = tmp_path / "out.json"
    window.export_to("Contoso", str(target))
    qloop.run_until_complete(_until(target.exists))
    exported = json.loads(target.read_bytes())
    original = json.loads(source.read_bytes())
    exported.pop("exported_at"), original.pop("exported_at")
    assert exported == original


def test_bad_file_shows_the_precise_error_and_changes_nothing(  # type: ignore[no-untyped-def]
    window: MainWindow, qloop, db: Database, tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(export_config(CONFIG))
    window.import_from(str(good))
    qloop.run_until_complete(_until(lambda: window.profiles_model.rowCount() == 1))

    document = json.loads(good.read_bytes())
    document["entities"][0]["colour"] = "blue"  # an unknown field
    document["schedule"]["interval_minutes"] = 5  # would change the profile if applied
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    window.import_from(str(bad))
    qloop.run_until_complete(_until(lambda: window.findChild(QMessageBox, "errorBox") is not None))
    box = window.findChild(QMessageBox, "errorBox")
    assert "entities[0]" in box.text() and "colour" in box.text()
    box.close()

    cfg = qloop.run_until_complete(ProfileService(db).load_config("Contoso"))
    assert cfg.schedule.interval_minutes == 30


def test_log_lines_appear_live(window: MainWindow, qloop) -> None:  # type: ignore[no-untyped-def]
    before = window.log_model.rowCount()
    logging.getLogger("crmsync_desktop.test").warning("visible in the console")
    qloop.run_until_complete(_until(lambda: window.log_model.rowCount() == before + 1))
    last = window.log_model.index(window.log_model.rowCount() - 1, 3)
    assert window.log_model.data(last) == "visible in the console"
