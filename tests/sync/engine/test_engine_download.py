"""The engine end to end over two in-memory organizations: Connect, Sync All, incremental, filters, deletions."""

from __future__ import annotations

import uuid
from dataclasses import replace

from crmsync_desktop.domain import DeletionStrategy, EntityConfig, RunStatus
from crmsync_desktop.store import repos
from crmsync_desktop.sync.connectors.types import LookupValue
from crmsync_desktop.sync.events import RunFinished
from tests.sync.engine.conftest import PROFILE, Rig

OWNER = LookupValue("systemuser", "00000000-0000-0000-0000-0000000000aa")


def _id(n: int, prefix: str = "a") -> str:
    return str(uuid.UUID(int=(ord(prefix) << 64) + n))


def seed_accounts(rig: Rig, n: int, **extra: object) -> list[str]:
    owner = LookupValue("systemuser", rig.server.user_id)
    ids = []
    for i in range(n):
        rid = _id(i)
        rig.server.put("account", {"accountid": rid, "name": f"Account {i}", "numberofemployees": i,
                                   "statecode": 0, "ownerid": owner, **extra})
        ids.append(rid)
    return ids


def connect_and_enable(rig: Rig, *configs: EntityConfig) -> None:
    result, report = rig.run(rig.engine.connect(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    current = {c.logical_name: c for c in rig.run(repos.list_entity_configs(rig.db, PROFILE))}
    updated = [replace(current[c.logical_name], **{k: getattr(c, k) for k in (
        "enabled", "sync_filter", "sync_deletion", "deletion_strategy")}) for c in configs]
    rig.run(rig.engine.save_entity_configs(PROFILE, updated))


def test_connect_creates_the_client_schema_and_is_safe_to_rerun(rig: Rig) -> None:
    result, report = rig.run(rig.engine.connect(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    client_entities = {e.logical_name for e in rig.run(rig.client.list_entities())}
    assert {"account", "contact", "systemuser", "businessunit", "team", "lead"} <= client_entities
    account = rig.run(rig.client.get_entity("account"))
    assert account.field("primarycontactid") is not None
    configs = {c.logical_name: c for c in rig.run(repos.list_entity_configs(rig.db, PROFILE))}
    assert configs["systemuser"].enabled and not configs["account"].enabled
    profile = rig.run(repos.get_profile(rig.db, PROFILE))
    assert profile.state.value == "connected"

    again, report2 = rig.run(rig.engine.connect(PROFILE))
    assert again.status is RunStatus.SUCCEEDED
    assert not report2.applied  # nothing left to create


def test_sync_all_copies_records_and_verify_agrees(rig: Rig) -> None:
    seed_accounts(rig, 120)
    for i in range(60):  # contacts point at accounts; accounts point back (a cycle)
        rig.server.put("contact", {"contactid": _id(i, "c"), "lastname": f"Smith {i}",
                                   "parentcustomerid": LookupValue("account", _id(i))})
        rig.server.put("account", {"accountid": _id(i), "primarycontactid": LookupValue("contact", _id(i, "c"))})
    connect_and_enable(rig, EntityConfig("account"), EntityConfig("contact"))
    result = rig.run(rig.engine.sync(PROFILE, full=True))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert rig.client.count("account") == 120 and rig.client.count("contact") == 60
    assert result.counts["account"]["created"] == 120
    # The cycle is closed: every account got its primary contact in the second pass.
    assert rig.client.get("account", _id(5))["primarycontactid"] == LookupValue("contact", _id(5, "c"))
    assert rig.client.get("contact", _id(5, "c"))["parentcustomerid"] == LookupValue("account", _id(5))
    _, report = rig.run(rig.engine.verify(PROFILE))
    assert report is not None and report.in_sync, [e for e in report.entities if not e.in_sync]
    assert any(isinstance(e, RunFinished) and e.kind == "sync_all" for e in rig.events)


def test_incremental_sync_costs_follow_the_changes(rig: Rig) -> None:
    ids = seed_accounts(rig, 2000)
    connect_and_enable(rig, EntityConfig("account"))
    rig.run(rig.engine.sync(PROFILE, full=True))
    rig.server.reset_requests()
    rig.client.reset_requests()
    for rid in ids[:7]:
        rig.server.put("account", {"accountid": rid, "name": "renamed"})
    result = rig.run(rig.engine.sync(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.counts["account"]["updated"] == 7
    assert rig.client.get("account", ids[3])["name"] == "renamed"
    # One change page per enabled entity (account plus users, teams, business units) and one bulk
    # write, whatever the table size.
    assert rig.server.requests["read_changes"] == 4
    assert rig.client.requests["upsert_many"] == 1


def test_sync_filter_and_leaving_it(rig: Rig) -> None:
    ids = seed_accounts(rig, 10)
    for rid in ids[5:]:
        rig.server.put("account", {"accountid": rid, "statecode": 1})
    active_only = ('<fetch><entity name="account"><filter><condition attribute="statecode" operator="eq" '
                   'value="0"/></filter></entity></fetch>')
    connect_and_enable(rig, EntityConfig("account", sync_filter=active_only, sync_deletion=True))
    rig.run(rig.engine.sync(PROFILE, full=True))
    assert rig.client.count("account") == 5
    rig.server.put("account", {"accountid": ids[0], "statecode": 1})  # leaves the filter
    rig.server.put("account", {"accountid": ids[9], "statecode": 0})  # enters it
    result = rig.run(rig.engine.sync(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert rig.client.get("account", ids[0]) is None
    assert rig.client.get("account", ids[9]) is not None
    _, report = rig.run(rig.engine.verify(PROFILE))
    assert report.in_sync


def test_filter_with_a_link_entity_is_rechecked_on_the_server(rig: Rig) -> None:
    ids = seed_accounts(rig, 6)
    for i, rid in enumerate(ids):
        rig.server.put("contact", {"contactid": _id(i, "c"), "lastname": "x", "jobtitle": "CEO" if i < 2 else "Clerk",
                                   "parentcustomerid": LookupValue("account", rid)})
    with_ceo = ('<fetch><entity name="account"><link-entity name="contact" from="parentcustomerid" to="accountid" '
                'link-type="inner"><filter><condition attribute="jobtitle" operator="eq" value="CEO"/></filter>'
                '</link-entity></entity></fetch>')
    connect_and_enable(rig, EntityConfig("account", sync_filter=with_ceo))
    rig.run(rig.engine.sync(PROFILE, full=True))
    assert sorted(r["id"] for r in rig.client.records("account")) == sorted(ids[:2])


def test_deletions_off_keeps_records_and_tombstones_remove_them_when_on(rig: Rig) -> None:
    ids = seed_accounts(rig, 4)
    connect_and_enable(rig, EntityConfig("account"))
    rig.run(rig.engine.sync(PROFILE, full=True))
    rig.server.delete("account", ids[0])
    rig.run(rig.engine.sync(PROFILE))
    assert rig.client.get("account", ids[0]) is not None  # Sync Deletion off: nothing removed

    connect_and_enable(rig, EntityConfig("account", sync_deletion=True))  # auto: change tracking tombstones
    rig.run(rig.engine.sync(PROFILE))  # enabling the option re-reads the entity (full)
    rig.server.delete("account", ids[1])
    result = rig.run(rig.engine.sync(PROFILE))
    assert rig.client.get("account", ids[1]) is None
    assert result.counts["account"]["deleted"] >= 1


def test_sweep_removes_deleted_and_reassigned_records(rig: Rig) -> None:
    ids = seed_accounts(rig, 8)
    mine = ('<fetch><entity name="account"><filter><condition attribute="ownerid" operator="eq-userid"/>'
            '</filter></entity></fetch>')
    connect_and_enable(rig, EntityConfig("account", sync_filter=mine, sync_deletion=True,
                                         deletion_strategy=DeletionStrategy.SWEEP))
    rig.run(rig.engine.sync(PROFILE, full=True))
    assert rig.client.count("account") == 8
    rig.server.tombstones = False  # a table without change tracking: only the sweep sees deletions
    rig.server.delete("account", ids[0])
    rig.client.put("account", {"id": _id(99), "name": "created on the client"})  # never touched
    result = rig.run(rig.engine.sync(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert rig.client.get("account", ids[0]) is None
    assert rig.client.get("account", _id(99)) is not None
    _, report = rig.run(rig.engine.verify(PROFILE))
    account = next(e for e in report.entities if e.entity == "account")
    assert report.in_sync and account.client_only == 1


def test_expired_token_triggers_a_full_resync(rig: Rig) -> None:
    ids = seed_accounts(rig, 5)
    connect_and_enable(rig, EntityConfig("account"))
    rig.run(rig.engine.sync(PROFILE, full=True))
    rig.server.put("account", {"accountid": ids[2], "name": "after expiry"})
    rig.server.expire_tokens()
    result = rig.run(rig.engine.sync(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert rig.client.get("account", ids[2])["name"] == "after expiry"
    lines = rig.run(repos.list_log_lines(rig.db, result.run_id))
    assert any("full resync" in line.message for line in lines)


def test_a_failed_record_is_retried_by_id_and_never_skipped(rig: Rig) -> None:
    ids = seed_accounts(rig, 5)
    connect_and_enable(rig, EntityConfig("account"))
    rig.client.reject_when(lambda entity, record: "bad name" if record.get("name") == "Account 3" else None)
    first = rig.run(rig.engine.sync(PROFILE, full=True))
    assert first.status is RunStatus.FAILED and first.counts["account"]["failed"] >= 1
    assert rig.client.get("account", ids[3]) is None
    assert rig.run(repos.count_download_retries(rig.db, PROFILE)) == {"account": 1}
    rig.client.clear_rejects()
    second = rig.run(rig.engine.sync(PROFILE))  # the cursor moved on; the retry set brings it
    assert second.status is RunStatus.SUCCEEDED, second.error
    assert rig.client.get("account", ids[3]) is not None
    assert rig.run(repos.count_download_retries(rig.db, PROFILE)) == {}


def test_dry_run_reports_and_writes_nothing(rig: Rig) -> None:
    ids = seed_accounts(rig, 6)
    connect_and_enable(rig, EntityConfig("account", sync_deletion=True))
    rig.run(rig.engine.sync(PROFILE, full=True))
    rig.server.put("account", {"accountid": ids[0], "name": "changed"})
    rig.server.put("account", {"accountid": _id(50), "name": "new", "statecode": 0})
    rig.server.delete("account", ids[1])
    before = {r["id"]: dict(r) for r in rig.client.records("account")}
    result, examples = rig.run(rig.engine.dry_run(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.counts["account"]["created"] == 1
    assert result.counts["account"]["updated"] == 1
    assert result.counts["account"]["deleted"] == 1
    assert examples[("account", "create")] == [_id(50)]
    assert {r["id"]: dict(r) for r in rig.client.records("account")} == before
    real = rig.run(rig.engine.sync(PROFILE))  # the cursor did not move: the real sync sees the same
    assert (real.counts["account"]["created"], real.counts["account"]["updated"]) == (1, 1)


def test_preview_filter_counts_and_samples(rig: Rig) -> None:
    ids = seed_accounts(rig, 12)
    for rid in ids[:4]:
        rig.server.put("account", {"accountid": rid, "statecode": 1})
    connect_and_enable(rig, EntityConfig("account"))
    inactive = ('<fetch><entity name="account"><filter><condition attribute="statecode" operator="eq" '
                'value="1"/></filter></entity></fetch>')
    preview = rig.run(rig.engine.preview_filter(PROFILE, "account", inactive, sample_size=3))
    assert preview.count == 4 and not preview.count_is_lower_bound
    assert len(preview.sample) == 3 and all(name.startswith("Account") for _, name in preview.sample)
    import pytest

    from crmsync_desktop.errors import FilterError

    with pytest.raises(FilterError, match="nosuchfield"):
        rig.run(rig.engine.preview_filter(PROFILE, "account", inactive.replace("statecode", "nosuchfield")))


def test_saving_connection_settings_never_resets_the_connection_state(rig: Rig) -> None:
    stale = rig.run(rig.engine.get_profile(PROFILE))  # a form opened before Connect
    rig.run(rig.engine.connect(PROFILE))
    rig.run(rig.engine.save_connection(replace(stale, client_user="someone-else"), {}))
    profile = rig.run(rig.engine.get_profile(PROFILE))
    assert profile.state.value == "connected" and profile.client_user == "someone-else"
