"""Conflicts: both sides changed a record since it was last synchronized; each policy; upload filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmsync_desktop.domain import ConflictPolicy, EntityConfig, TransactionStatus
from crmsync_desktop.store import repos
from crmsync_desktop.sync.connectors.types import LookupValue
from crmsync_desktop.sync.upload import ConflictLogged, Outcome, resolve
from tests.sync.upload.harness import PROFILE, Env, make_env

pytestmark = pytest.mark.asyncio

ACC = "10000000-0000-4000-8000-000000000001"
ACC2 = "10000000-0000-4000-8000-000000000002"
CON = "20000000-0000-4000-8000-000000000001"


async def concurrent_edit(tmp_path: Path, policy: ConflictPolicy) -> tuple[Env, object]:
    """A synced account; the client changes name, the server changes name and phone meanwhile."""
    env = await make_env(tmp_path, [EntityConfig("account", conflict_policy=policy)])
    rid = await env.synced("account", {"accountid": ACC, "name": "Acme", "telephone1": "100", "address1_city": "Oslo"})
    svc = env.service()
    await svc.capture_once()
    env.clock.advance(10)
    env.client.put("account", {"accountid": rid, "name": "Acme (client)"})
    await svc.capture_once()
    env.clock.advance(10)
    env.server_org.put("account", {"accountid": rid, "name": "Acme (server)", "telephone1": "200"})
    await svc.drain_once()
    return env, svc


def server(env: Env) -> dict[str, object]:
    return env.server_org.get("account", ACC) or {}


def client(env: Env) -> dict[str, object]:
    return env.client.get("account", ACC) or {}


async def test_server_wins_keeps_the_server_version_and_writes_it_to_the_client(tmp_path: Path) -> None:
    env, svc = await concurrent_edit(tmp_path, ConflictPolicy.SERVER_WINS)
    try:
        assert (server(env)["name"], server(env)["telephone1"]) == ("Acme (server)", "200")
        assert (client(env)["name"], client(env)["telephone1"]) == ("Acme (server)", "200")
        [t] = await env.transactions()
        assert t.status is TransactionStatus.PROCESSED
        assert t.last_error and t.last_error.startswith("conflict:") and "Server wins" in t.last_error
        [event] = [e for e in env.events if isinstance(e, ConflictLogged)]
        assert (event.outcome, event.client, event.server) == (
            "server_wins", {"name": "Acme (client)"}, {"name": "Acme (server)"})
        lines = [line for run in await repos.list_runs(env.db, PROFILE)
                 for line in await repos.list_log_lines(env.db, run.id) if "conflict:" in line.message]
        assert lines and "name: client 'Acme (client)', server 'Acme (server)'" in lines[0].message
        # the client's write-back is the engine's own echo: nothing new is queued
        assert await svc.capture_once() == 0  # type: ignore[attr-defined]
        assert await env.same_on_both_sides("account")
    finally:
        env.close()


async def test_client_wins_sends_only_the_changed_fields(tmp_path: Path) -> None:
    env, _ = await concurrent_edit(tmp_path, ConflictPolicy.CLIENT_WINS)
    try:
        assert (server(env)["name"], server(env)["telephone1"]) == ("Acme (client)", "200")
        [t] = await env.transactions()
        assert t.status is TransactionStatus.PROCESSED and "client wins" in (t.last_error or "")
        # the merged version differs from what the client has: the next download brings it over
        plan = await env.plan("account")
        state = (await repos.get_record_states(env.db, PROFILE, "account", [ACC]))[ACC]
        from crmsync_desktop.sync.records import content_hash, project
        assert state.content_hash != content_hash(project(server(env), plan.fields), plan.fields.fields)
        assert state.server_row_version == env.server_org.etag_of("account", ACC)
    finally:
        env.close()


async def test_client_wins_full_sends_the_whole_client_record(tmp_path: Path) -> None:
    env, _ = await concurrent_edit(tmp_path, ConflictPolicy.CLIENT_WINS_FULL)
    try:
        assert (server(env)["name"], server(env)["telephone1"]) == ("Acme (client)", "100")
        assert await env.same_on_both_sides("account")
    finally:
        env.close()


async def test_manual_waits_in_error_with_both_versions_until_the_admin_decides(tmp_path: Path) -> None:
    env, svc = await concurrent_edit(tmp_path, ConflictPolicy.MANUAL)
    try:
        [t] = await env.transactions()
        assert t.status is TransactionStatus.ERROR
        assert t.last_error and t.last_error.startswith("conflict:")
        assert "name: client 'Acme (client)', server 'Acme (server)'" in t.last_error
        assert server(env)["name"] == "Acme (server)"
        await svc.set_pending([t.id])  # type: ignore[attr-defined]
        await svc.drain_once()  # type: ignore[attr-defined]
        assert (server(env)["name"], server(env)["telephone1"]) == ("Acme (client)", "200")
        [t] = await env.transactions()
        assert t.status is TransactionStatus.PROCESSED
    finally:
        env.close()


async def test_manual_archived_keeps_the_server_version(tmp_path: Path) -> None:
    env, svc = await concurrent_edit(tmp_path, ConflictPolicy.MANUAL)
    try:
        [t] = await env.transactions()
        await svc.archive([t.id])  # type: ignore[attr-defined]
        await svc.drain_once()  # type: ignore[attr-defined]
        assert server(env)["name"] == "Acme (server)"
    finally:
        env.close()


@pytest.mark.parametrize(("client_later", "expected"), [(True, "Acme (client)"), (False, "Acme (server)")])
async def test_newer_wins_compares_the_modification_times(tmp_path: Path, client_later: bool, expected: str) -> None:
    env = await make_env(tmp_path, [EntityConfig("account", conflict_policy=ConflictPolicy.NEWER_WINS)])
    try:
        rid = await env.synced("account", {"accountid": ACC, "name": "Acme"})
        svc = env.service()
        await svc.capture_once()
        first, second = ("server", "client") if client_later else ("client", "server")
        for side in (first, second):
            env.clock.advance(10)
            org = env.client if side == "client" else env.server_org
            org.put("account", {"accountid": rid, "name": f"Acme ({side})"})
        await svc.capture_once()
        await svc.drain_once()
        assert server(env)["name"] == expected
    finally:
        env.close()


@pytest.mark.parametrize(("policy", "recreated"), [(ConflictPolicy.SERVER_WINS, False), (ConflictPolicy.CLIENT_WINS, True)])
async def test_a_record_deleted_on_the_server_while_edited_on_the_client(
    tmp_path: Path, policy: ConflictPolicy, recreated: bool
) -> None:
    env = await make_env(tmp_path, [EntityConfig("account", conflict_policy=policy)])
    try:
        rid = await env.synced("account", {"accountid": ACC, "name": "Acme", "telephone1": "100"})
        svc = env.service()
        await svc.capture_once()
        env.client.put("account", {"accountid": rid, "name": "Acme (client)"})
        await svc.capture_once()
        env.server_org.delete("account", rid)
        await svc.drain_once()
        if recreated:
            assert (server(env)["name"], server(env)["telephone1"]) == ("Acme (client)", "100")
        else:
            assert env.server_org.get("account", rid) is None and env.client.get("account", rid) is None
        [t] = await env.transactions()
        assert t.status is TransactionStatus.PROCESSED
    finally:
        env.close()


async def test_server_wins_supersedes_the_records_later_changes(tmp_path: Path) -> None:
    env = await make_env(tmp_path, [EntityConfig("account")])
    try:
        rid = await env.synced("account", {"accountid": ACC, "name": "Acme"})
        svc = env.service()
        await svc.capture_once()
        env.client.put("account", {"accountid": rid, "name": "v1"})
        await svc.capture_once()
        env.client.put("account", {"accountid": rid, "telephone1": "9"})
        await svc.capture_once()
        env.server_org.put("account", {"accountid": rid, "name": "server"})
        await svc.drain_once()
        assert [t.status for t in await env.transactions()] == [TransactionStatus.PROCESSED] * 2
        assert env.client.get("account", rid)["name"] == "server"  # type: ignore[index]
        assert (server(env)["name"], server(env).get("telephone1")) == ("server", None)
    finally:
        env.close()


async def test_resolve_is_a_pure_policy() -> None:
    changed, mine = ["name"], {"name": "a"}
    assert resolve(ConflictPolicy.SERVER_WINS, changed=changed, client=mine, server={"name": "a"}) is Outcome.ALREADY_APPLIED
    assert resolve(ConflictPolicy.SERVER_WINS, changed=changed, client=mine, server={"name": "b"}) is Outcome.SERVER_WINS
    assert resolve(ConflictPolicy.CLIENT_WINS, changed=changed, client=mine, server=None) is Outcome.CLIENT_WINS_FULL
    assert resolve(ConflictPolicy.MANUAL, changed=changed, client=mine, server={}, admin_resolved=True) is Outcome.CLIENT_WINS
    assert resolve(ConflictPolicy.NEWER_WINS, changed=changed, client=mine, server={},
                   client_modified="2025-01-02T00:00:00Z", server_modified=None) is Outcome.SERVER_WINS


# -- upload filter ----------------------------------------------------------------------------------

LOCAL = '<fetch><entity name="account"><filter><condition attribute="address1_city" operator="eq" value="Oslo"/></filter></entity></fetch>'
ON_SERVER_SIDE = (
    '<fetch><entity name="contact"><link-entity name="account" from="accountid" to="parentcustomerid" '
    'link-type="inner"><filter><condition attribute="address1_city" operator="eq" value="Oslo"/></filter>'
    "</link-entity></entity></fetch>"
)


async def test_the_upload_filter_keeps_out_changes_of_other_records(tmp_path: Path) -> None:
    configs = [EntityConfig("account", upload_filter=LOCAL), EntityConfig("contact", upload_filter=ON_SERVER_SIDE)]
    env = await make_env(tmp_path, configs)
    try:
        oslo = await env.synced("account", {"accountid": ACC, "name": "Oslo AS", "address1_city": "Oslo"})
        await env.synced("account", {"accountid": ACC2, "name": "Bergen AS", "address1_city": "Bergen"})
        svc = env.service()
        await svc.capture_once()
        env.client.put("account", {"accountid": oslo, "name": "Oslo ASA"})
        env.client.put("account", {"accountid": ACC2, "name": "Bergen ASA"})
        env.client.put("contact", {"contactid": CON, "lastname": "Nordmann",
                                   "parentcustomerid": LookupValue("account", ACC2)})
        con2 = "20000000-0000-4000-8000-000000000002"
        env.client.put("contact", {"contactid": con2, "lastname": "Hansen",
                                   "parentcustomerid": LookupValue("account", oslo)})
        env.client.reset_requests()
        assert await svc.capture_once() == 2
        assert env.client.requests["read_ids"] == 1  # the link-entity filter was checked on the client
        assert sorted(t.record_id for t in await env.transactions()) == [oslo, con2]
        runs = await repos.list_runs(env.db, PROFILE)
        counts = runs[0].counts
        assert counts["account"]["not_uploaded"] == 1 and counts["contact"]["not_uploaded"] == 1
        lines = [line.message for line in await repos.list_log_lines(env.db, runs[0].id)]
        assert any("not uploaded" in m for m in lines)
        await svc.drain_once()
        assert env.server_org.get("account", ACC2)["name"] == "Bergen AS"  # type: ignore[index]
        assert env.server_org.get("account", oslo)["name"] == "Oslo ASA"  # type: ignore[index]
    finally:
        env.close()
