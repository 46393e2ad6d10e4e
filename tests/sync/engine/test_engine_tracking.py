"""Update Server changes existing client columns/tables; the Tracking facade (overview, apply, run log)."""

from __future__ import annotations

from dataclasses import replace

from crmsync_desktop.domain import DeletionStrategy, RunStatus
from crmsync_desktop.errors import NetworkError
from crmsync_desktop.store import repos
from crmsync_desktop.sync.connectors.types import LookupValue
from crmsync_desktop.sync.engine import resolve_deletion
from crmsync_desktop.sync.tracking_config import CONFIG_ENTITY, TrackingChanges
from tests.fakes.memory_org import add_resco_plugin_tables
from tests.sync.engine.conftest import PROFILE, Rig


def _connect(rig: Rig) -> None:
    result, _ = rig.run(rig.engine.connect(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error


def _log(rig: Rig, run_id: int) -> list[str]:
    return [line.message for line in rig.run(repos.list_log_lines(rig.db, run_id))]


# -- Update Server ---------------------------------------------------------------------------------

def test_update_server_widens_a_column_and_renames_labels_on_the_client(rig: Rig) -> None:
    _connect(rig)
    phone = rig.server.schema_entity("account").field("telephone1")
    assert phone is not None and phone.max_length == 50
    rig.server.add_field("account", replace(phone, max_length=120, label="Main phone number"))
    rig.server.update_entity_meta("account", label="Customer", collection_label="Customers")

    result, report = rig.run(rig.engine.update_server(PROFILE))

    assert result.status is RunStatus.SUCCEEDED, (result.error, report.problems())
    client = rig.client.schema_entity("account")
    field = client.field("telephone1")
    assert field is not None and field.max_length == 120 and field.label == "Main phone number"
    assert client.label == "Customer"
    lines = _log(rig, result.run_id)
    assert any("Update column account.telephone1 (label, max_length)" in line for line in lines)
    assert any("Update table account" in line for line in lines)
    assert rig.client.requests["update_field"] >= 1 and rig.client.requests["update_entity"] == 1

    again, report2 = rig.run(rig.engine.update_server(PROFILE))  # nothing left: idempotent
    assert again.status is RunStatus.SUCCEEDED and not report2.applied


def test_update_server_never_narrows_a_client_column(rig: Rig) -> None:
    _connect(rig)
    phone = rig.server.schema_entity("account").field("telephone1")
    assert phone is not None
    rig.server.add_field("account", replace(phone, max_length=20))
    result, report = rig.run(rig.engine.update_server(PROFILE))
    assert result.status is RunStatus.SUCCEEDED
    assert rig.client.schema_entity("account").field("telephone1").max_length == 50  # type: ignore[union-attr]
    assert not report.applied


# -- Tracking --------------------------------------------------------------------------------------

def test_tracking_overview_lists_tables_relationships_and_change_tracking(rig: Rig) -> None:
    add_resco_plugin_tables(rig.server)
    rig.server.update_entity_meta("lead", change_tracking=False)
    _connect(rig)

    overview = rig.run(rig.engine.tracking_overview(PROFILE))

    assert overview.plugins_installed and not overview.mobile_tracking_synchronized
    names = [e.logical_name for e in overview.entities]
    assert "account" in names and "lead" in names
    assert CONFIG_ENTITY not in names and "resco_mobiletracking" not in names and "leadcompetitors" not in names
    lead = overview.entity("lead")
    assert lead is not None and not lead.change_tracking and not lead.track_delete and lead.user_owned
    assert overview.entity("competitor").user_owned is False  # type: ignore[union-attr]
    (rel,) = overview.relationships
    assert (rel.schema_name, rel.entity1, rel.entity2, rel.track_removals) == (
        "leadcompetitors_association", "lead", "competitor", False)


def test_apply_tracking_switches_on_change_tracking_first_then_writes_config_records(rig: Rig) -> None:
    add_resco_plugin_tables(rig.server)
    rig.server.update_entity_meta("lead", change_tracking=False)
    _connect(rig)
    overview = rig.run(rig.engine.tracking_overview(PROFILE))
    changes = overview.changes(change_tracking={"lead", "account"}, delete={"account": True, "lead": True},
                               owner={"account": True}, relationships={"leadcompetitors_association": True})
    assert changes.change_tracking == {"lead"}  # account tracks changes already
    assert changes.irreversible == ("Switch on Dataverse change tracking for lead",)

    result, outcome = rig.run(rig.engine.apply_tracking(PROFILE, changes))

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert outcome is not None and outcome.ok
    assert outcome.irreversible == ("Dataverse change tracking switched on for lead (this cannot be undone)",)
    assert outcome.mobile_tracking_enabled
    assert rig.server.schema_entity("lead").change_tracking
    rows = {(r.get("resco_entityname"), r.get("resco_relationshipname")): r for r in rig.server.records(CONFIG_ENTITY)}
    assert rows[("account", None)]["resco_trackdelete"] is True and rows[("account", None)]["resco_trackowner"] is True
    assert rows[("lead", None)]["resco_trackdelete"] is True and rows[("lead", None)]["resco_trackowner"] is False
    assert rows[(None, "leadcompetitors_association")]["resco_trackdisassociate"] is True
    # The written configuration is what the next overview reads.
    again = rig.run(rig.engine.tracking_overview(PROFILE))
    assert again.entity("account").track_owner and again.entity("lead").change_tracking  # type: ignore[union-attr]
    assert again.relationship("leadcompetitors_association").track_removals  # type: ignore[union-attr]
    assert again.mobile_tracking_synchronized
    configs = {c.logical_name: c for c in rig.run(repos.list_entity_configs(rig.db, PROFILE))}
    assert configs["resco_mobiletracking"].enabled
    # The replicated metadata knows; the engine now uses the tombstones for lead.
    schema = rig.run(rig.engine.server_schema(PROFILE))
    assert schema.entity("lead").change_tracking  # type: ignore[union-attr]
    cfg = replace(configs["lead"], sync_deletion=True)
    assert resolve_deletion(cfg, change_tracking=True, tracking_available=True) is DeletionStrategy.CHANGE_TRACKING
    lines = _log(rig, result.run_id)
    assert lines.index("Dataverse change tracking switched on for lead (this cannot be undone)") < \
        lines.index("Resco tracking of deletions switched on for account")
    assert any("Mobile Tracking (resco_mobiletracking) was enabled for synchronization" in line for line in lines)
    runs = rig.run(rig.engine.list_runs(PROFILE))
    assert runs[0].id == result.run_id and runs[0].status is RunStatus.SUCCEEDED


def test_switching_tracking_off_updates_the_existing_record(rig: Rig) -> None:
    add_resco_plugin_tables(rig.server)
    _connect(rig)
    overview = rig.run(rig.engine.tracking_overview(PROFILE))
    rig.run(rig.engine.apply_tracking(PROFILE, overview.changes(delete={"account": True})))
    overview = rig.run(rig.engine.tracking_overview(PROFILE))
    assert overview.entity("account").track_delete  # type: ignore[union-attr]

    result, outcome = rig.run(rig.engine.apply_tracking(PROFILE, overview.changes(delete={"account": False})))

    assert result.status is RunStatus.SUCCEEDED and outcome is not None
    assert not outcome.mobile_tracking_enabled  # nothing newly tracked
    (row,) = rig.server.records(CONFIG_ENTITY)
    assert row["resco_trackdelete"] is False
    assert not rig.run(rig.engine.tracking_overview(PROFILE)).entity("account").track_delete  # type: ignore[union-attr]


def test_change_tracking_restarts_the_entitys_sync_with_a_full_read(rig: Rig) -> None:
    rig.server.update_entity_meta("account", change_tracking=False)
    _connect(rig)
    configs = {c.logical_name: c for c in rig.run(repos.list_entity_configs(rig.db, PROFILE))}
    rig.run(rig.engine.save_entity_configs(PROFILE, [replace(configs["account"], enabled=True, sync_deletion=True)]))
    rid = rig.server.put("account", {"name": "Fabrikam", "statecode": 0,
                                     "ownerid": LookupValue("systemuser", rig.server.user_id)})
    assert rig.run(rig.engine.sync(PROFILE)).status is RunStatus.SUCCEEDED
    assert rig.run(repos.get_sync_state(rig.db, PROFILE, "account")).token  # type: ignore[union-attr]

    result, outcome = rig.run(rig.engine.apply_tracking(PROFILE, TrackingChanges(change_tracking=frozenset({"account"}))))
    assert result.status is RunStatus.SUCCEEDED and outcome is not None and outcome.irreversible
    assert not rig.run(repos.get_sync_state(rig.db, PROFILE, "account")).token  # type: ignore[union-attr]
    assert any("reads account in full once" in line for line in _log(rig, result.run_id))

    assert rig.run(rig.engine.sync(PROFILE)).status is RunStatus.SUCCEEDED  # starts change tracking
    rig.server.delete("account", rid)
    assert rig.run(rig.engine.sync(PROFILE)).status is RunStatus.SUCCEEDED
    assert rig.client.get("account", rid) is None  # the tombstone removed it


def test_tracking_without_the_resco_plugins_fails_that_step_only(rig: Rig) -> None:
    rig.server.update_entity_meta("lead", change_tracking=False)
    _connect(rig)
    overview = rig.run(rig.engine.tracking_overview(PROFILE))
    assert not overview.plugins_installed

    result, outcome = rig.run(rig.engine.apply_tracking(
        PROFILE, overview.changes(change_tracking={"lead"}, delete={"account": True})))

    assert result.status is RunStatus.FAILED
    assert outcome is not None and outcome.irreversible and outcome.failed
    assert "install Resco's Dynamics plugins" in outcome.failed[0]
    assert rig.server.schema_entity("lead").change_tracking


def test_a_table_that_cannot_be_tracked_is_reported_and_the_rest_applied(rig: Rig) -> None:
    add_resco_plugin_tables(rig.server)
    for name in ("lead", "contact"):
        rig.server.update_entity_meta(name, change_tracking=False)
    rig.server.cannot_track.add("contact")
    _connect(rig)

    result, outcome = rig.run(rig.engine.apply_tracking(
        PROFILE, TrackingChanges(change_tracking=frozenset({"contact", "lead"}))))

    assert result.status is RunStatus.FAILED and outcome is not None
    assert [line.split(" could")[0] for line in outcome.failed] == ["Change tracking for contact"]
    assert outcome.irreversible == ("Dataverse change tracking switched on for lead (this cannot be undone)",)


def test_losing_the_connection_fails_the_run(rig: Rig) -> None:
    add_resco_plugin_tables(rig.server)
    rig.server.update_entity_meta("lead", change_tracking=False)
    _connect(rig)
    rig.server.fail_next(1, NetworkError("gone"), method="enable_change_tracking")
    result, outcome = rig.run(rig.engine.apply_tracking(PROFILE, TrackingChanges(change_tracking=frozenset({"lead"}))))
    assert result.status is RunStatus.FAILED and outcome is None
    assert not rig.server.schema_entity("lead").change_tracking
