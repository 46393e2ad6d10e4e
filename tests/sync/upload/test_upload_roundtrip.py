"""Client changes are captured into the queue and delivered to the server: create, update, delete,
assign, associate/disassociate; echoes of the engine's own writes are never queued."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmsync_desktop.domain import EntityConfig, TransactionOperation, TransactionStatus
from crmsync_desktop.store import repos
from crmsync_desktop.sync.connectors.types import LookupValue
from crmsync_desktop.sync.records import content_hash, project
from crmsync_desktop.sync.upload import QueueChanged, client_token_key
from tests.fakes.memory_org import DEFAULT_TEAM_ID, DEFAULT_USER_ID
from tests.sync.upload.harness import PROFILE, Env, make_env

pytestmark = pytest.mark.asyncio

ACC = "10000000-0000-4000-8000-000000000001"
ACC2 = "10000000-0000-4000-8000-000000000002"
CON = "20000000-0000-4000-8000-000000000001"
LEAD = "30000000-0000-4000-8000-000000000001"
COMP = "40000000-0000-4000-8000-000000000001"


async def test_first_capture_learns_the_client_and_queues_nothing(env: Env) -> None:
    env.client.put("account", {"accountid": ACC, "name": "There before capture started"})
    svc = env.service()
    assert await svc.capture_once() == 0
    assert await env.transactions() == []
    state = await repos.get_sync_state(env.db, PROFILE, client_token_key("account"))
    assert state is not None and state.token  # the client token, apart from the download's own
    assert await repos.get_sync_state(env.db, PROFILE, "account") is None
    assert set(await repos.get_upload_baselines(env.db, PROFILE, "account", [ACC])) == {ACC}


async def test_create_then_update_reach_the_server_with_only_the_changed_fields(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Acme", "telephone1": "555", "address1_city": "Oslo"})
    assert await svc.capture_once() == 1
    [create] = await env.transactions(TransactionStatus.PENDING)
    assert (create.operation, create.record_id) == (TransactionOperation.CREATE, ACC)

    result = await svc.drain_once()
    assert result.delivered == 1
    assert env.server_org.get("account", ACC)["name"] == "Acme"  # type: ignore[index]
    [done] = await env.transactions()
    assert done.status is TransactionStatus.PROCESSED and done.last_error is None

    # record_state now holds what the server has: its echo is not downloaded again, its etag is known
    plan = await env.plan("account")
    state = (await repos.get_record_states(env.db, PROFILE, "account", [ACC]))[ACC]
    server_hash = content_hash(project(env.server_org.get("account", ACC) or {}, plan.fields), plan.fields.fields)
    assert state.content_hash == server_hash
    assert state.server_row_version == env.server_org.etag_of("account", ACC)

    env.client.put("account", {"accountid": ACC, "telephone1": "556"})
    assert await svc.capture_once() == 1
    [update] = await env.transactions(TransactionStatus.PENDING)
    assert update.operation is TransactionOperation.UPDATE and list(update.payload["changed"]) == ["telephone1"]
    env.server.calls.clear()
    await svc.drain_once()
    [(kind, entity, [sent])] = env.server.calls
    assert (kind, entity, sent) == ("upsert", "account", {"accountid": ACC, "telephone1": "556"})
    assert await env.same_on_both_sides("account")
    assert any(isinstance(e, QueueChanged) and e.counts[TransactionStatus.PROCESSED] == 2 for e in env.events)


async def test_a_deletion_found_by_the_sweep_is_delivered(env: Env) -> None:
    rid = await env.synced("account", {"accountid": ACC, "name": "Acme"})
    svc = env.service()
    await svc.capture_once()
    env.client.delete("account", rid)
    assert await svc.capture_once() == 0  # Resco Cloud reports no deletions in its change feed
    assert await svc.sweep_once() == 1
    [delete] = await env.transactions(TransactionStatus.PENDING)
    assert delete.operation is TransactionOperation.DELETE
    await svc.drain_once()
    assert env.server_org.get("account", rid) is None
    assert await repos.get_record_states(env.db, PROFILE, "account", [rid]) == {}
    assert await svc.sweep_once() == 0  # not queued twice


async def test_tombstones_from_the_client_become_deletions(tmp_path: Path) -> None:
    env = await make_env(tmp_path, [EntityConfig("account")], client_tombstones=True)
    try:
        rid = await env.synced("account", {"accountid": ACC, "name": "Acme"})
        svc = env.service()
        await svc.capture_once()
        env.client.delete("account", rid)
        assert await svc.capture_once() == 1
        await svc.drain_once()
        assert env.server_org.get("account", rid) is None
    finally:
        env.close()


async def test_a_record_the_engine_removed_from_the_client_is_not_deleted_on_the_server(env: Env) -> None:
    rid = await env.synced("account", {"accountid": ACC, "name": "Leaves the sync filter"})
    svc = env.service()
    await svc.capture_once()
    env.client.delete("account", rid)  # the download removed it (out of the sync filter) ...
    await repos.delete_record_states(env.db, PROFILE, "account", [rid])  # ... and forgot it
    assert await svc.sweep_once() == 0
    assert env.server_org.get("account", rid) is not None


async def test_owner_change_becomes_an_assign(env: Env) -> None:
    rid = await env.synced("account", {"accountid": ACC, "name": "Acme"})
    svc = env.service()
    await svc.capture_once()
    env.client.put("account", {"accountid": rid, "ownerid": LookupValue("team", DEFAULT_TEAM_ID)})
    await svc.capture_once()
    [assign] = await env.transactions(TransactionStatus.PENDING)
    assert assign.operation is TransactionOperation.ASSIGN
    await svc.drain_once()
    assert env.server_org.get("account", rid)["ownerid"] == LookupValue("team", DEFAULT_TEAM_ID)  # type: ignore[index]
    assert [c[0] for c in env.server.calls] == ["assign"]
    assert await env.same_on_both_sides("account")


async def test_an_update_and_an_owner_change_together(env: Env) -> None:
    rid = await env.synced("account", {"accountid": ACC, "name": "Acme",
                                       "ownerid": LookupValue("systemuser", DEFAULT_USER_ID)})
    svc = env.service()
    await svc.capture_once()
    env.client.put("account", {"accountid": rid, "name": "Acme 2", "ownerid": LookupValue("team", DEFAULT_TEAM_ID)})
    await svc.capture_once()
    ops = [t.operation for t in await env.transactions(TransactionStatus.PENDING)]
    assert ops == [TransactionOperation.UPDATE, TransactionOperation.ASSIGN]
    await svc.drain_once()
    assert [t.status for t in await env.transactions()] == [TransactionStatus.PROCESSED] * 2
    assert await env.same_on_both_sides("account")


async def test_links_become_associate_and_disassociate(tmp_path: Path) -> None:
    configs = [EntityConfig("lead"), EntityConfig("competitor"), EntityConfig("leadcompetitors")]
    env = await make_env(tmp_path, configs)
    try:
        lead = await env.synced("lead", {"leadid": LEAD, "subject": "Big deal", "lastname": "Smith"})
        comp = await env.synced("competitor", {"competitorid": COMP, "name": "Rival"})
        svc = env.service()
        await svc.capture_once()
        env.client.link("leadcompetitors_association", lead, comp)
        await svc.capture_once()
        [assoc] = await env.transactions(TransactionStatus.PENDING)
        assert assoc.operation is TransactionOperation.ASSOCIATE
        await svc.drain_once()
        assert env.server_org.links("leadcompetitors_association") == {(lead, comp)}

        env.client.unlink("leadcompetitors_association", lead, comp)
        assert await svc.sweep_once() == 1
        [dis] = await env.transactions(TransactionStatus.PENDING)
        assert dis.operation is TransactionOperation.DISASSOCIATE
        await svc.drain_once()
        assert env.server_org.links("leadcompetitors_association") == set()
    finally:
        env.close()


async def test_echo_of_the_engines_own_writes_is_never_queued(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    for i in range(20):  # a download writes records to the client and remembers what it wrote
        await env.synced("account", {"accountid": f"10000000-0000-4000-8000-{i:012d}", "name": f"Acme {i}",
                                     "revenue": 1000.0 + i})
    assert await svc.capture_once() == 0
    assert await env.transactions() == []
    [run] = await repos.list_runs(env.db, PROFILE)
    assert run.counts["account"]["echo"] == 20


async def test_a_page_read_again_after_a_crash_is_not_queued_twice(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Acme"})
    assert await svc.capture_once() == 1
    # the token and the transaction were committed together; losing the token re-reads the page
    state = await repos.get_sync_state(env.db, PROFILE, client_token_key("account"))
    assert state is not None
    await repos.put_sync_state(env.db, PROFILE, type(state)(entity=state.entity, token="0:0", strategy=state.strategy))
    assert await svc.capture_once() == 0
    assert len(await env.transactions()) == 1


async def test_changes_to_a_record_not_yet_on_the_server_are_creates(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "v1"})
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "v2"})
    await svc.capture_once()
    ops = [t.operation for t in await env.transactions()]
    assert ops == [TransactionOperation.CREATE, TransactionOperation.CREATE]
    await svc.drain_once()
    assert env.server_org.get("account", ACC)["name"] == "v2"  # type: ignore[index]
    assert env.server_org.count("account") == 1


async def test_parents_are_delivered_before_children_whatever_the_capture_order(env: Env) -> None:
    from crmsync_desktop.sync.upload import build_upload_plans

    async def children_first(pair):  # type: ignore[no-untyped-def]
        plans = await build_upload_plans(env.db, PROFILE, pair.server, pair.client)
        return sorted(plans, key=lambda p: p.entity != "contact")

    svc = env.service(planner=children_first)
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Parent"})
    env.client.put("contact", {"contactid": CON, "lastname": "Child", "parentcustomerid": LookupValue("account", ACC)})
    await svc.capture_once()
    assert [t.entity for t in await env.transactions()] == ["contact", "account"]  # child queued first
    await svc.drain_once()
    assert env.server.upserted_ids() == [ACC, CON]
    assert all(t.status is TransactionStatus.PROCESSED and t.attempts == 1 for t in await env.transactions())
    assert env.server_org.get("contact", CON)["parentcustomerid"] == LookupValue("account", ACC)  # type: ignore[index]
