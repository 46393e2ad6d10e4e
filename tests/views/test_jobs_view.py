"""Jobs & Logs over a real engine (two in-memory organizations) and a real store."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import QTime

from crmsync_desktop.domain import ConnectionProfile, RunStatus, ScheduleConfig
from crmsync_desktop.logs import RingBufferHandler
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.store.values import ScheduleState
from crmsync_desktop.sync.connectors.types import LookupValue, Product
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.events import EngineState, EventBus, Progress, StateChanged
from crmsync_desktop.sync.scheduler import SchedulePolicy, Scheduler
from crmsync_desktop.ui.bridge import EngineBridge
from crmsync_desktop.ui.models.runs_model import RunsTableModel
from crmsync_desktop.views.jobs_view import JobsView, _local_when, format_eta
from tests.fakes.memory_org import MemoryOrg, sales_org
from tests.sync.engine.conftest import PairFactory
from tests.ui.test_transactions_model import run_detached, until

PROFILE = "Contoso"


@dataclass
class EngineRig:
    db: Database
    server: MemoryOrg
    client: MemoryOrg
    engine: SyncEngine
    bus: EventBus
    bridge: EngineBridge


def seed_accounts(server: MemoryOrg, n: int) -> list[str]:
    owner = LookupValue("systemuser", server.user_id)
    ids = []
    for i in range(n):
        rid = f"{i:08d}-0000-4000-8000-0000000000aa"
        server.put("account", {"accountid": rid, "name": f"Account {i}", "numberofemployees": i, "statecode": 1 if i % 4 == 0 else 0,
                               "address1_city": ("Prague", "Brno", "Vienna")[i % 3], "ownerid": owner})
        ids.append(rid)
    return ids


def open_engine_rig(tmp_path: Path) -> Iterator[EngineRig]:
    """A store with the profile, a sales server, an empty Resco client, the engine and its bridge."""
    db = open_store(tmp_path / "store.sqlite3", tmp_path / "backups")
    run_detached(repos.save_profile(db, ConnectionProfile(
        name=PROFILE, server_url="https://contoso.crm.dynamics.com", client_url="https://contoso.rescocrm.com",
        client_user="a")))
    server = sales_org(Product.DATAVERSE, name="server")
    client = MemoryOrg(Product.RESCO, name="client")
    bus = EventBus()
    bridge = EngineBridge(bus)
    engine = SyncEngine(db, PairFactory(server, client), bus)
    try:
        yield EngineRig(db, server, client, engine, bus, bridge)
    finally:
        bridge.detach()
        db.close()


@pytest.fixture
def engine_rig(tmp_path: Path, qloop) -> Iterator[EngineRig]:  # type: ignore[no-untyped-def]
    yield from open_engine_rig(tmp_path)


async def connect_and_enable(rig: EngineRig, *names: str) -> None:
    result, _ = await rig.engine.connect(PROFILE)
    assert result.status is RunStatus.SUCCEEDED, result.error
    configs = {c.logical_name: c for c in await repos.list_entity_configs(rig.db, PROFILE)}
    await rig.engine.save_entity_configs(PROFILE, [replace(configs[n], enabled=True) for n in names])


@pytest.fixture
def ring() -> Iterator[RingBufferHandler]:
    handler = RingBufferHandler(capacity=200)
    logger = logging.getLogger("crmsync_desktop.test_jobs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def make_view(qtbot, rig: EngineRig, ring: RingBufferHandler, scheduler: Scheduler | None = None,  # type: ignore[no-untyped-def]
              **kw: object) -> JobsView:
    view = JobsView(rig.engine, rig.bridge, lambda: PROFILE, ring, scheduler, **kw)  # type: ignore[arg-type]
    qtbot.addWidget(view)
    view.resize(1100, 800)
    view.show()
    return view


def test_runs_appear_after_a_sync_with_their_log(qtbot, qloop, qtmodeltester, engine_rig: EngineRig,  # type: ignore[no-untyped-def]
                                                 ring: RingBufferHandler) -> None:
    seed_accounts(engine_rig.server, 25)
    qloop.run_until_complete(connect_and_enable(engine_rig, "account"))
    view = make_view(qtbot, engine_rig, ring)
    view.refresh()
    qloop.run_until_complete(until(lambda: view.runs_model.rowCount() == 1))
    assert view.runs_model.data(view.runs_model.index(0, RunsTableModel.COL_TRIGGER)) == "Connect"

    view.sync_now_button.click()
    assert not view.sync_now_button.isEnabled()  # one job at a time
    qloop.run_until_complete(until(lambda: view.runs_model.rowCount() == 2 and view.sync_now_button.isEnabled()
                                   and view.runs_model.run(0).status is not RunStatus.RUNNING))
    newest = view.runs_model.run(0)
    assert newest.status is RunStatus.SUCCEEDED and newest.trigger.value == "manual"
    assert view.runs_model.data(view.runs_model.index(0, 6)) == "28"  # 25 accounts + business unit, user, team
    assert "Last job: Incremental sync" in view.progress_title.text()
    qloop.run_until_complete(until(lambda: view.run_log_model.run_id == newest.id and view.run_log_model.rowCount() > 0))
    messages = [view.run_log_model.line(r).message for r in range(view.run_log_model.rowCount())]
    assert any(m for m in messages)
    assert f"Log of run #{newest.id}" in view.run_log_title.text()
    assert len(view.chart.points) == 2 and view.chart.points[-1].records >= 25

    view.runs_table.selectRow(1)  # the Connect run
    qloop.run_until_complete(until(lambda: view.run_log_model.run_id == view.runs_model.run(1).id))
    assert any("metadata" in view.run_log_model.line(r).message.lower() for r in range(view.run_log_model.rowCount()))
    qtmodeltester.check(view.runs_model, force_py=True)
    qtmodeltester.check(view.run_log_model, force_py=True)
    view.detach()


def test_live_progress_and_throttled_indicator(qtbot, qloop, engine_rig: EngineRig, ring: RingBufferHandler) -> None:  # type: ignore[no-untyped-def]
    view = make_view(qtbot, engine_rig, ring)
    bus = engine_rig.bus
    bus.publish(Progress(PROFILE, 7, "account", "download", 1200, 5000, records_per_second=412.4, eta_seconds=9.2))
    assert view.progress_bar.isVisible()
    assert (view.progress_bar.maximum(), view.progress_bar.value()) == (5000, 1200)
    assert "account · download: 1,200 / 5,000" in view.progress_title.text()
    assert view.rate_label.text() == "412 records/s" and view.eta_label.text() == "ETA 0:09"
    bus.publish(Progress(PROFILE, 7, "contact", "download", 300, None, records_per_second=None))
    assert view.progress_bar.maximum() == 0 and "300 so far" in view.progress_title.text()  # busy, total unknown
    bus.publish(Progress("Other profile", 9, "lead", "download", 1, 2))
    assert "contact" in view.progress_title.text()

    until_at = datetime.now(UTC) + timedelta(seconds=75)
    bus.publish(StateChanged(PROFILE, EngineState.THROTTLED, "429 Too Many Requests", until_at))
    assert view.throttle_label.isVisible()
    assert f"until {until_at.astimezone():%H:%M:%S}" in view.throttle_label.text()
    assert "retrying in 1 min" in view.throttle_label.text()
    assert "Throttled until" in view.state_label.text()
    bus.publish(StateChanged(PROFILE, EngineState.SYNCING))
    assert not view.throttle_label.isVisible() and "Syncing" in view.state_label.text()
    assert format_eta(3725) == "1:02:05"
    view.detach()


def test_application_log_tab_follows_the_ring(qtbot, qloop, qtmodeltester, engine_rig: EngineRig,  # type: ignore[no-untyped-def]
                                               ring: RingBufferHandler) -> None:
    view = make_view(qtbot, engine_rig, ring)
    logging.getLogger("crmsync_desktop.test_jobs").warning("Token refreshed for Contoso")
    qloop.run_until_complete(until(lambda: view.app_log_model.rowCount() == 1))
    assert view.app_log_model.data(view.app_log_model.index(0, 3)) == "Token refreshed for Contoso"
    assert view.tabs.tabText(1) == "Application log"
    view.detach()


def test_schedule_editor_pause_resume_and_sync_now(qtbot, qloop, engine_rig: EngineRig, ring: RingBufferHandler) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(connect_and_enable(engine_rig, "account"))
    scheduler = Scheduler(engine_rig.db, engine_rig.engine.sync, policy=SchedulePolicy(tick_seconds=3600))

    async def config(profile: str) -> ScheduleConfig:
        return (await repos.get_schedule_state(engine_rig.db, profile)).config

    view = make_view(qtbot, engine_rig, ring, scheduler, schedule_config=config)
    view.refresh()
    assert view.schedule_box.isVisible() and view.pause_button.isVisible()
    qloop.run_until_complete(until(lambda: view.schedule_enabled.isChecked()))
    view.interval_spin.setValue(15)
    view.apply_schedule_button.click()
    qloop.run_until_complete(until(lambda: "Next run at" in view.next_run_label.text()))
    assert qloop.run_until_complete(config(PROFILE)).interval_minutes == 15
    qloop.run_until_complete(scheduler.drain())  # never synced: the schedule starts a run right away
    qloop.run_until_complete(until(lambda: view.runs_model.rowCount() == 2
                                   and view.runs_model.run(0).status is not RunStatus.RUNNING))
    assert view.runs_model.run(0).trigger.value == "schedule"

    view.pause_button.click()
    qloop.run_until_complete(until(lambda: view.pause_button.text() == "Resume schedule"))
    assert "Paused" in view.next_run_label.text()
    view.pause_button.click()
    qloop.run_until_complete(until(lambda: view.pause_button.text() == "Pause schedule"))

    view.sync_now_button.click()
    qloop.run_until_complete(until(lambda: view.runs_model.rowCount() == 3 and view.sync_now_button.isEnabled()
                                   and view.runs_model.run(0).status is not RunStatus.RUNNING))
    assert view.runs_model.run(0).trigger.value == "manual"
    qloop.run_until_complete(scheduler.aclose())
    view.detach()


def test_schedule_editor_switches_between_every_and_daily(qtbot, qloop, engine_rig: EngineRig,  # type: ignore[no-untyped-def]
                                                          ring: RingBufferHandler) -> None:
    qloop.run_until_complete(connect_and_enable(engine_rig, "account"))
    success = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    first, second = ((success + timedelta(hours=h)).astimezone() for h in (3, 6))  # never due during the test
    qloop.run_until_complete(repos.put_schedule_state(
        engine_rig.db, PROFILE, ScheduleState(interval_minutes=20, daily_at=f"{first:%H:%M}", last_success_at=success)))
    scheduler = Scheduler(engine_rig.db, engine_rig.engine.sync, policy=SchedulePolicy(tick_seconds=3600))
    qloop.run_until_complete(scheduler.refresh())  # not due: nothing runs

    async def config(profile: str) -> ScheduleConfig:
        return (await repos.get_schedule_state(engine_rig.db, profile)).config

    view = make_view(qtbot, engine_rig, ring, scheduler, schedule_config=config)
    view.refresh()
    qloop.run_until_complete(until(lambda: view.daily_mode.isChecked()))  # the stored daily schedule
    assert view.schedule_enabled.isChecked() and not view.interval_mode.isChecked()
    assert (view.daily_time.time(), view.interval_spin.value()) == (QTime(first.hour, first.minute), 20)
    assert view.daily_time.isEnabled() and not view.interval_spin.isEnabled()
    assert "Next run at" in view.next_run_label.text() and f"{first:%H:%M}" in view.next_run_label.text()

    view.interval_mode.click()  # Every 20 min: the spin box is the one to edit now
    assert view.interval_spin.isEnabled() and not view.daily_time.isEnabled()
    assert view.schedule_editor_config() == ScheduleConfig(interval_minutes=20)
    view.apply_schedule_button.click()
    due = f"{(success + timedelta(minutes=20)).astimezone():%H:%M}"
    qloop.run_until_complete(until(lambda: f"Next run at {due}" in view.next_run_label.text()))
    assert qloop.run_until_complete(config(PROFILE)) == ScheduleConfig(interval_minutes=20)

    view.daily_mode.click()
    view.daily_time.setTime(QTime(second.hour, second.minute))
    assert view.daily_time.isEnabled() and not view.interval_spin.isEnabled()
    view.apply_schedule_button.click()
    qloop.run_until_complete(until(lambda: f"{second:%H:%M}" in view.next_run_label.text()))
    daily = ScheduleConfig(interval_minutes=20, daily_at=f"{second:%H:%M}")
    assert qloop.run_until_complete(config(PROFILE)) == daily

    view.schedule_enabled.setChecked(False)  # off: nothing to edit, the times are kept
    assert not any(w.isEnabled() for w in (view.interval_mode, view.daily_mode, view.interval_spin, view.daily_time))
    view.apply_schedule_button.click()
    qloop.run_until_complete(until(lambda: "Not scheduled" in view.next_run_label.text()))
    assert qloop.run_until_complete(config(PROFILE)) == replace(daily, enabled=False)
    assert qloop.run_until_complete(engine_rig.engine.list_runs(PROFILE))[0].trigger.value == "connect"  # no scheduled run
    qloop.run_until_complete(scheduler.aclose())
    view.detach()


def test_next_run_names_the_day_when_it_is_not_today() -> None:
    noon = datetime.now().astimezone().replace(hour=12, minute=0, second=0, microsecond=0)
    assert _local_when(noon.replace(hour=15, minute=5), noon) == "15:05"
    assert _local_when(noon + timedelta(days=1), noon).startswith("tomorrow ")
    later = (noon + timedelta(days=3)).astimezone()
    assert _local_when(later, noon) == f"{later:%Y-%m-%d %H:%M}"
