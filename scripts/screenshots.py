"""Render the console's screens with realistic sample data and save PNGs to docs/screenshots/.

Usage (a real X server so fonts and styles are the desktop ones; stack-recipes §3):
    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb python scripts/screenshots.py [name ...]
Without names every registered shot is rendered. Each shot is a coroutine function registered in
``SHOTS``; it builds its widgets over in-memory organizations and a temporary store, waits until
the data is shown, and saves ``widget.grab()``. Add a screen by adding a function to ``SHOTS``.
The ``demo-*.png`` files are not made here: they are grabs of the real app in ``--demo`` mode (see
docs/user-guide.md, "Try it on the demo").
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "screenshots"

Shot = Callable[[Path], Awaitable[None]]
SHOTS: dict[str, Shot] = {}


def shot(name: str) -> Callable[[Shot], Shot]:
    def register(fn: Shot) -> Shot:
        SHOTS[name] = fn
        return fn

    return register


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("the screen did not get its data in time")
        await asyncio.sleep(0.02)


async def settle(widget: object, seconds: float = 0.3) -> None:
    from PySide6.QtWidgets import QApplication

    await asyncio.sleep(seconds)
    QApplication.processEvents()


def save(widget: object, path: Path) -> None:
    from PySide6.QtWidgets import QWidget

    assert isinstance(widget, QWidget)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"saved {path.relative_to(ROOT)}")


# -- sample organizations (the test fakes: in-memory Dataverse server and Resco client) -------------

PROFILE = "Contoso"
CITIES = ("Prague", "Brno", "Vienna", "Bratislava", "Munich", "Linz")
COMPANIES = ("Contoso", "Fabrikam", "Northwind Traders", "Adventure Works", "Tailspin Toys", "Wide World Importers",
             "Litware", "Proseware", "Alpine Ski House", "Coho Winery", "Trey Research", "Woodgrove Bank")


async def _engine_rig(folder: Path, accounts: int = 180):  # type: ignore[no-untyped-def]
    from crmsync_desktop.domain import ConnectionProfile
    from crmsync_desktop.store import repos
    from crmsync_desktop.store.migrate import open_store
    from crmsync_desktop.sync.connectors.types import LookupValue, Product
    from crmsync_desktop.sync.engine import SyncEngine
    from crmsync_desktop.sync.events import EventBus
    from tests.fakes.memory_org import MemoryOrg, sales_org
    from tests.sync.engine.conftest import PairFactory

    db = await asyncio.to_thread(open_store, folder / "store.sqlite3", folder / "backups")
    await repos.save_profile(db, ConnectionProfile(
        name=PROFILE, server_url="https://contoso.crm4.dynamics.com", client_url="https://contoso.rescocrm.com",
        client_user="admin@contoso.com"))
    server = sales_org(Product.DATAVERSE, name="server")
    owner = LookupValue("systemuser", server.user_id)
    for i in range(accounts):
        server.put("account", {
            "accountid": f"{i:08x}-4b1e-4c2a-9d7e-{(i * 7919) % 10**12:012d}",
            "name": f"{COMPANIES[i % len(COMPANIES)]} {CITIES[i % len(CITIES)]}" + (f" {i // 72 + 1}" if i >= 72 else ""),
            "address1_city": CITIES[i % len(CITIES)], "numberofemployees": 10 + i * 3, "industrycode": 1 + i % 3,
            "statecode": 1 if i % 5 == 0 else 0, "statuscode": 2 if i % 5 == 0 else 1, "ownerid": owner,
        })
    client = MemoryOrg(Product.RESCO, name="client")
    bus = EventBus()
    engine = SyncEngine(db, PairFactory(server, client), bus)
    _result, _ = await engine.connect(PROFILE)
    configs = {c.logical_name: c for c in await repos.list_entity_configs(db, PROFILE)}
    await engine.save_entity_configs(PROFILE, [replace(configs["account"], enabled=True)])
    return db, engine, bus, server


# -- shots ------------------------------------------------------------------------------------------

SAMPLE_FILTER = """<fetch version="1.0">
  <entity name="account">
    <filter type="and">
      <condition attribute="statecode" operator="eq" value="0" />
      <filter type="or">
        <condition attribute="address1_city" operator="in">
          <value>Prague</value>
          <value>Brno</value>
        </condition>
        <condition attribute="numberofemployees" operator="ge" value="250" />
      </filter>
      <condition attribute="modifiedon" operator="last-x-days" value="90" />
    </filter>
    <link-entity name="systemuser" from="systemuserid" to="ownerid" link-type="inner">
      <filter type="and">
        <condition attribute="domainname" operator="not-null" />
      </filter>
    </link-entity>
  </entity>
</fetch>"""


@shot("filter_editor")
async def filter_editor(folder: Path) -> None:
    from crmsync_desktop.views.filter_editor import FilterEditorDialog

    db, engine, _bus, _server = await _engine_rig(folder)
    try:
        dialog = FilterEditorDialog(engine, PROFILE, "account", "sync", SAMPLE_FILTER.replace(
            '\n      <condition attribute="modifiedon" operator="last-x-days" value="90" />', ""))
        dialog.resize(1180, 640)
        dialog.open()
        await until(lambda: dialog.model.catalog.loaded)
        dialog.tree.expandAll()
        dialog.preview()
        await until(lambda: "match" in dialog.preview_count.text())
        group = dialog.model.root.items[1]
        dialog.select_node(group.children[1])
        await settle(dialog)
        save(dialog, OUT / "filter-editor-tree.png")

        dialog.tabs.setCurrentIndex(1)
        dialog.xml_edit.setPlainText(SAMPLE_FILTER.replace('"last-x-days" value="90"', '"last-x-dayz" value="90"'))
        dialog.apply_xml_text()
        await settle(dialog)
        save(dialog, OUT / "filter-editor-xml-error.png")
        dialog.xml_edit.setPlainText(SAMPLE_FILTER)
        dialog.apply_xml_text()
        await settle(dialog)
        save(dialog, OUT / "filter-editor-xml.png")
        dialog.close()
    finally:
        db.close()


ERRORS = (
    ("400 Bad Request: 0x80040217 account With Id = {rid} Does Not Exist (the parent account was deleted on the "
    "server)\nat Microsoft.Crm.Extensibility.OrganizationSdkServiceInternal.Update(Entity entity)\n"
    "Delivery stopped after 3 attempts; set to Pending to try again."),
    None,  # a Manual conflict: the text delivery writes (conflicts.describe), made in the shot
    ("403 Forbidden: Principal user (Id=3f0c…, type=8) is missing prvWriteAccount privilege "
    "(Id=4e1c9a0b-…) on OTC=1 for entity 'account'."),
    ("400 Bad Request: A validation error occurred. The length of the 'name' attribute of the 'account' entity "
    "exceeded the maximum allowed length of '160'."),
)


@shot("transactions")
async def transactions(folder: Path) -> None:
    from sqlalchemy import update

    from crmsync_desktop.domain import (
        ConflictPolicy,
        ConnectionProfile,
        TransactionOperation,
        TransactionStatus,
    )
    from crmsync_desktop.store import repos
    from crmsync_desktop.store.migrate import open_store
    from crmsync_desktop.store.models import OfflineTransactionModel
    from crmsync_desktop.store.values import NewTransaction
    from crmsync_desktop.sync.upload.conflicts import Outcome, describe
    from crmsync_desktop.ui.models.transactions_model import is_conflict
    from crmsync_desktop.ui.queue_protocol import AllStatusesQueue
    from crmsync_desktop.views.transactions_view import TransactionsView
    from tests.ui.test_transactions_model import StoreQueue

    db = await asyncio.to_thread(open_store, folder / "store.sqlite3", folder / "backups")
    try:
        await repos.save_profile(db, ConnectionProfile(name=PROFILE))
        items = []
        for i in range(2400):
            entity = ("account", "contact", "opportunity")[i % 3]
            rid = f"{i:08x}-9c41-4f0a-8e2b-{(i * 104729) % 10**12:012d}"
            if entity == "account":
                values = {"name": f"{COMPANIES[(i * i + i // 20) % len(COMPANIES)]} {CITIES[(i * 5 + i // 40) % len(CITIES)]}",
                          "telephone1": f"+43 1 555 {i % 10000:04d}", "address1_city": CITIES[i % len(CITIES)]}
            elif entity == "contact":
                values = {"firstname": ("Jana", "Tomáš", "Eva", "Lukas", "Marie", "Petr", "Anna")[(i * 3) % 7],
                          "lastname": ("Dvořák", "Novak", "Huber", "Svoboda", "Bauer", "Gruber")[(i * 5) % 6],
                          "emailaddress1": f"user{i}@contoso.com", "jobtitle": "Purchasing manager"}
            else:
                values = {"name": f"Renewal {2025 + i % 2} – {COMPANIES[(i * 11) % len(COMPANIES)]}",
                          "estimatedvalue": 12000 + (i % 40) * 250, "closeprobability": 40 + i % 50}
            op = TransactionOperation.CREATE if i % 7 == 0 else TransactionOperation.UPDATE
            payload = {"values": values, "hash": "x"}
            if op is TransactionOperation.UPDATE:
                payload["changed"] = sorted(values)[:2]
            items.append(NewTransaction(entity, op, payload, rid))
        ids = await repos.enqueue_transactions(db, PROFILE, items)
        table = OfflineTransactionModel.__table__
        start = datetime.now(UTC) - timedelta(days=3)
        await db.run(lambda session: [session.execute(
            update(table).where(table.c.id == tid).values(created_at=start + timedelta(seconds=n * 97)))
            for n, tid in enumerate(ids)] and None)
        await repos.mark_processed(db, [t for n, t in enumerate(ids) if n % 10 < 8])
        for n, tid in enumerate(ids):
            if n % 10 == 9 and n % 20 == 19:
                rid = items[n].record_id
                error = ERRORS[(n // 20) % len(ERRORS)]
                if error is None and items[n].operation is TransactionOperation.CREATE:
                    error = ERRORS[0]  # a create cannot conflict
                if error is None:
                    values = items[n].payload["values"]
                    field = items[n].payload["changed"][0]
                    mine = values[field]
                    theirs = mine + 5 if isinstance(mine, int) else f"{mine} – updated"
                    error = describe(ConflictPolicy.MANUAL, Outcome.MANUAL, [field], values,
                                     {**values, field: theirs})
                    await repos.mark_error(db, tid, error)
                    continue
                for _ in range(3):
                    await repos.mark_error(db, tid, error.format(rid=rid))
        await repos.set_transaction_status(db, PROFILE, [t for n, t in enumerate(ids) if n % 40 == 8],
                                           TransactionStatus.ARCHIVED)
        view = TransactionsView(AllStatusesQueue(StoreQueue(db, PROFILE)), None, profile=PROFILE)
        view.resize(1320, 640)
        view.show()
        await until(lambda: view.model.rowCount() > 0 and not view.model.loading and bool(view.model.counts))
        view.table.selectRow(next(r for r in range(view.model.rowCount()) if is_conflict(view.model.transaction(r))))
        await settle(view)
        save(view, OUT / "transactions-error.png")
        view.close()
    finally:
        db.close()


@shot("jobs")
async def jobs(folder: Path) -> None:
    from crmsync_desktop.logs import RingBufferHandler
    from crmsync_desktop.sync.connectors.types import LookupValue
    from crmsync_desktop.sync.events import EngineState, Progress, RunStarted, StateChanged
    from crmsync_desktop.ui.bridge import EngineBridge
    from crmsync_desktop.views.jobs_view import JobsView

    db, engine, bus, server = await _engine_rig(folder, accounts=400)
    ring = RingBufferHandler(capacity=500)
    logging.getLogger("crmsync_desktop").addHandler(ring)
    logging.getLogger("crmsync_desktop").setLevel(logging.INFO)
    try:
        owner = LookupValue("systemuser", server.user_id)
        await engine.sync(PROFILE, full=True)
        for round_ in range(9):  # a day of incremental runs with varying amounts of change
            for i in range((round_ * 37) % 90 + 5):
                server.put("account", {"accountid": f"{(round_ * 1000 + i):08x}-aaaa-4bbb-8ccc-000000000000",
                                       "name": f"New lead account {round_}-{i}", "ownerid": owner, "statecode": 0})
            await engine.sync(PROFILE)
        bridge = EngineBridge(bus)
        view = JobsView(engine, bridge, lambda: PROFILE, ring)
        view.resize(1200, 860)
        view.show()
        view.refresh()
        await until(lambda: view.runs_model.rowCount() >= 10 and view.run_log_model.run_id is not None)
        bus.publish(RunStarted(PROFILE, 999, "sync_all"))
        bus.publish(Progress(PROFILE, 999, "contact", "download", 18_400, 52_000,
                             records_per_second=436.0, eta_seconds=77.0))
        bus.publish(StateChanged(PROFILE, EngineState.THROTTLED, "429: number of requests exceeded the limit of "
                                 "6000 over time window of 300 seconds",
                                 datetime.now(UTC) + timedelta(seconds=42)))
        await until(lambda: view.runs_model.rowCount() >= 10)
        view.runs_table.selectRow(view.runs_model.rowCount() - 2)  # the Sync All run, which has a log
        await until(lambda: view.run_log_model.rowCount() > 0)
        await settle(view, 0.5)
        save(view, OUT / "jobs-history-progress.png")
        view.tabs.setCurrentIndex(1)
        await settle(view)
        save(view, OUT / "jobs-application-log.png")
        view.detach()
        bridge.detach()
        view.close()
    finally:
        logging.getLogger("crmsync_desktop").removeHandler(ring)
        db.close()


# -- console A: main window (entity grid), connection dialog, fields dialog, verify / dry run ------------


def _memory_keyring() -> None:
    """Screenshots never touch the desktop's keyring."""
    import keyring

    from tests.fakes.keyring_backend import InMemoryKeyring

    keyring.set_keyring(InMemoryKeyring())


OWNER_FILTER = ('<fetch><entity name="account"><filter type="and"><condition attribute="ownerid" operator="eq-userid"/>'
                '<condition attribute="statecode" operator="eq" value="0"/></filter></entity></fetch>')
ACTIVE_FILTER = ('<fetch><entity name="contact"><filter><condition attribute="statecode" operator="eq" value="0"/>'
                 "</filter></entity></fetch>")


async def _console(folder: Path, *, synced: bool = True):  # type: ignore[no-untyped-def]
    """A connected Contoso profile with a few entities configured and synced, and a main window over it."""
    from crmsync_desktop.auth.credentials import SecretKind
    from crmsync_desktop.domain import ConflictPolicy, DeletionStrategy
    from crmsync_desktop.logs import RingBufferHandler
    from crmsync_desktop.store import repos
    from crmsync_desktop.sync.connectors.types import LookupValue
    from crmsync_desktop.sync.profiles import ProfileService
    from crmsync_desktop.ui.bridge import EngineBridge
    from crmsync_desktop.views.main_window import MainWindow

    _memory_keyring()
    db, engine, bus, server = await _engine_rig(folder)
    profile = await engine.get_profile(PROFILE)
    await engine.save_connection(replace(profile, client_id="11111111-2222-3333-4444-555555555555"),
                                 {SecretKind.CLIENT_PASSWORD: "pw", SecretKind.SERVER_CLIENT_SECRET: "secret"})
    for i in range(60):
        server.put("contact", {"contactid": f"{i:08x}-1c0e-4c2a-9d7e-000000000000", "lastname": f"Novak {i}",
                               "firstname": "Jana", "statecode": 0,
                               "ownerid": LookupValue("systemuser", server.user_id)})
    configs = {c.logical_name: c for c in await repos.list_entity_configs(db, PROFILE)}
    await engine.save_entity_configs(PROFILE, [
        replace(configs["account"], enabled=True, sync_filter=OWNER_FILTER, sync_deletion=True,
                conflict_policy=ConflictPolicy.MANUAL),
        replace(configs["contact"], enabled=True, sync_filter=ACTIVE_FILTER, sync_deletion=True,
                deletion_strategy=DeletionStrategy.SWEEP, fields=("contactid", "firstname", "lastname", "ownerid"),
                conflict_policy=ConflictPolicy.NEWER_WINS),
        replace(configs["lead"], enabled=True, conflict_policy=ConflictPolicy.CLIENT_WINS),
    ])
    if synced:
        await engine.sync(PROFILE, full=True)
    ring = RingBufferHandler(capacity=500)
    bridge = EngineBridge(bus)
    window = MainWindow(engine, bridge, ProfileService(db), ring, data_dir=folder / "crmsync-home",
                        keyring_status="SecretService")
    return db, engine, bus, server, bridge, window


@shot("main_window")
async def main_window(folder: Path) -> None:
    from PySide6.QtCore import Qt

    from crmsync_desktop.sync.events import Progress, RunStarted
    from crmsync_desktop.ui.models.entities_model import Column
    from crmsync_desktop.ui.widgets.message import MessageLevel

    db, _engine, bus, _server, bridge, window = await _console(folder)
    try:
        window.resize(1480, 760)
        window.show()
        window.refresh()
        await until(lambda: window.entities.model.rowCount() > 5)
        model = window.entities.model
        model.setData(model.index(model.row_of("opportunity"), Column.ENABLED), Qt.CheckState.Checked.value,
                      Qt.ItemDataRole.CheckStateRole)
        window.entities.select_entity("account")
        window.entities.message.show_message(
            MessageLevel.SUCCESS, "Sync All finished", "243 read, 243 created, 0 failed in 4 entities.")
        await settle(window, 0.5)
        save(window, OUT / "main-window-entities.png")

        # the Conflicts combo open on Contact (a popup: grabbed from the screen, not the widget)
        from PySide6.QtWidgets import QComboBox, QToolTip

        entities = window.entities
        cell = entities.proxy.mapFromSource(model.index(model.row_of("contact"), Column.CONFLICTS))
        entities.table.setCurrentIndex(cell)
        entities.table.edit(cell)
        combo = entities.table.findChild(QComboBox, "conflictCombo")
        assert combo is not None
        combo.showPopup()
        await settle(window, 0.5)
        view = combo.view()
        manual = combo.findData("manual")
        view.setCurrentIndex(view.model().index(manual, 0))
        rect = view.visualRect(view.model().index(manual, 0))
        QToolTip.showText(view.viewport().mapToGlobal(rect.bottomLeft()),
                          str(combo.itemData(manual, Qt.ItemDataRole.ToolTipRole)), view)
        await settle(window, 0.5)
        top_left = entities.table.mapToGlobal(entities.table.rect().topLeft())
        shot_ = window.screen().grabWindow(0, top_left.x(), top_left.y(), 1445, 290)
        if not shot_.save(str(OUT / "entities-conflicts.png")):
            raise OSError("could not write entities-conflicts.png")
        print("saved docs/screenshots/entities-conflicts.png")
        QToolTip.hideText()
        combo.hidePopup()
        entities.table.closeEditor(combo, entities.table.itemDelegateForColumn(Column.CONFLICTS).EndEditHint.NoHint)

        window.entities.discard_changes()
        window.entities.message.clear()
        bus.publish(RunStarted(PROFILE, 77, "sync_all"))
        bus.publish(Progress(PROFILE, 77, "contact", "download", 18_400, 52_000, records_per_second=436.0,
                             eta_seconds=77.0))
        window.entities.search.setText("a")
        window.entities.enabled_only.setChecked(True)
        await settle(window, 0.3)
        save(window, OUT / "main-window-progress.png")
        window.close()
    finally:
        bridge.detach()
        db.close()


@shot("connection_dialog")
async def connection_dialog(folder: Path) -> None:
    from crmsync_desktop.views.connection_dialog import ConnectionDialog

    db, engine, _bus, _server, bridge, window = await _console(folder, synced=False)
    try:
        dialog = ConnectionDialog(engine, bridge, None, existing_names=[PROFILE])
        dialog.resize(660, 820)
        dialog.open()
        dialog.name_edit.setText("Fabrikam")
        dialog.client_url.setText("https://rescocrm.com")
        dialog.client_user.setText("admin@fabrikam.com")
        dialog.server_url.setText("http://fabrikam.crm4.dynamics.com")
        dialog.save()
        await settle(dialog)
        save(dialog, OUT / "connection-dialog-errors.png")
        dialog.close()

        from crmsync_desktop.domain import ConnectionState
        from crmsync_desktop.sync.connectors.types import Product
        from tests.fakes.memory_org import MemoryOrg

        engine._connectors.client = MemoryOrg(Product.RESCO, name="contoso")  # a new, empty client organization
        engine._connectors.server.name = "Contoso (Dynamics 365)"
        profile = replace(await engine.get_profile(PROFILE), state=ConnectionState.DISCONNECTED)
        await engine.save_connection(profile, {})
        dialog = ConnectionDialog(engine, bridge, profile)
        dialog.resize(660, 900)
        dialog.open()
        await until(lambda: bool(dialog.stored))
        task = dialog.test_connection()
        assert task is not None
        await until(task.done)
        await settle(dialog)
        save(dialog, OUT / "connection-dialog-test.png")
        task = dialog.connect_organizations()
        assert task is not None
        await until(task.done)
        await settle(dialog)
        save(dialog, OUT / "connection-dialog-connect.png")
        dialog.close()
        window.close()
    finally:
        bridge.detach()
        db.close()


@shot("fields_dialog")
async def fields_dialog(folder: Path) -> None:
    from crmsync_desktop.sync.metadata import locked_fields
    from crmsync_desktop.views.fields_dialog import FieldsDialog

    db, engine, _bus, _server, bridge, window = await _console(folder, synced=False)
    try:
        schema = await engine.server_schema(PROFILE)
        meta = schema.entity("account")
        assert meta is not None
        dialog = FieldsDialog(meta, (), locked_fields(meta, [OWNER_FILTER]))
        dialog.model.set_checked([r for r in range(dialog.model.rowCount()) if r % 3 == 1], False)
        dialog.resize(980, 600)
        dialog.open()
        await settle(dialog)
        save(dialog, OUT / "fields-dialog.png")
        dialog.close()
        window.close()
    finally:
        bridge.detach()
        db.close()


@shot("tracking_dialog")
async def tracking_dialog(folder: Path) -> None:
    """Server ribbon → Tracking: the Delete tab with one table tracked, one pending and one irreversible change."""
    from crmsync_desktop.sync.tracking_config import TrackingChanges
    from crmsync_desktop.views.tracking_dialog import TrackingDialog, TrackingTab
    from tests.fakes.memory_org import add_resco_plugin_tables

    db, engine, _bus, server, bridge, window = await _console(folder, synced=False)
    try:
        add_resco_plugin_tables(server)
        for name in ("lead", "opportunity"):
            server.update_entity_meta(name, change_tracking=False)
        await engine.connect(PROFILE)  # the plugin tables join the replicated metadata
        await engine.apply_tracking(PROFILE, TrackingChanges(delete={"account": True}, owner={"account": True}))
        dialog = TrackingDialog(engine, PROFILE, window)
        dialog.resize(900, 560)
        dialog.open()
        await until(lambda: dialog.overview is not None)
        dialog.set_checked(TrackingTab.DELETE, "contact", True)
        dialog.set_checked(TrackingTab.DELETE, "lead", True, change_tracking=True)
        dialog.tables[TrackingTab.DELETE].selectRow(0)
        await settle(dialog)
        save(dialog, OUT / "tracking-dialog.png")
        box = dialog.save()
        await settle(box)
        save(box, OUT / "tracking-confirm.png")
        box.close()  # type: ignore[union-attr]
        dialog.close()
        window.close()
    finally:
        bridge.detach()
        db.close()


@shot("verify_dry_run")
async def verify_dry_run(folder: Path) -> None:
    from crmsync_desktop.sync.connectors.types import LookupValue
    from crmsync_desktop.views.verify_view import DryRunDialog, VerifyDialog

    db, engine, _bus, server, bridge, window = await _console(folder)
    try:
        owner = LookupValue("systemuser", server.user_id)
        for i in range(25):  # new and changed on the server since the last sync
            server.put("account", {"accountid": f"{i + 900:08x}-5555-4c2a-9d7e-000000000000",
                                   "name": f"New account {i}", "ownerid": owner, "statecode": 0})
        for i in range(4):
            server.put("contact", {"contactid": f"{i:08x}-1c0e-4c2a-9d7e-000000000000", "lastname": f"Dvořák {i}"})
        result, report = await engine.verify(PROFILE)
        dialog = VerifyDialog(PROFILE, result, report)
        dialog.resize(1100, 460)
        dialog.show()
        dialog.table.selectRow(0)
        await settle(dialog)
        save(dialog, OUT / "verify-differences.png")
        dialog.close()
        result, examples = await engine.dry_run(PROFILE)
        dialog = DryRunDialog(PROFILE, result, examples)
        dialog.resize(1100, 460)
        dialog.show()
        await settle(dialog)
        save(dialog, OUT / "dry-run.png")
        dialog.close()
        await engine.sync(PROFILE)
        result, report = await engine.verify(PROFILE)
        dialog = VerifyDialog(PROFILE, result, report)
        dialog.resize(1100, 460)
        dialog.show()
        await settle(dialog)
        save(dialog, OUT / "verify-in-sync.png")
        dialog.close()
        window.close()
    finally:
        bridge.detach()
        db.close()


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):  # before Qt starts: --help works without a display
        print(__doc__)
        print("Shots:", ", ".join(SHOTS))
        return 0
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)  # closing one screen must not stop the loop before the next
    names = argv or list(SHOTS)
    unknown = [n for n in names if n not in SHOTS]
    if unknown:
        print(f"unknown shots: {', '.join(unknown)}; known: {', '.join(SHOTS)}", file=sys.stderr)
        return 2

    async def run_all() -> None:
        for name in names:
            with tempfile.TemporaryDirectory(prefix=f"crmsync-shot-{name}-") as tmp:
                await SHOTS[name](Path(tmp))

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(run_all())
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
