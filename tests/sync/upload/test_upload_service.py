"""The service around capture and delivery: wiring, the engine's lock, reachability, scheduled sweeps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crmsync_desktop import errors
from crmsync_desktop.domain import ConflictPolicy, ConnectionProfile, EntityConfig, TransactionStatus
from crmsync_desktop.store import repos
from crmsync_desktop.sync.upload import ServerReachability, UploadService, UploadSettings
from tests.sync.upload.harness import PROFILE, Env, Pair, make_env

pytestmark = pytest.mark.asyncio

ACC = "10000000-0000-4000-8000-000000000001"


async def test_a_connector_factory_is_opened_on_first_use_and_closed_by_aclose(env: Env) -> None:
    opened: list[str] = []
    pair = Pair(env.server, env.client)

    class Factory:
        async def open(self, profile: ConnectionProfile) -> Pair:
            opened.append(profile.name)
            return pair

    svc = UploadService(env.db, PROFILE, Factory(), env.bus, clock=env.clock)
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Acme"})
    await svc.capture_once()
    await svc.drain_once()
    assert opened == [PROFILE] and env.server_org.get("account", ACC) is not None
    await svc.aclose()
    assert pair.closed


async def test_capture_waits_while_the_engine_writes_the_client(env: Env) -> None:
    lock = asyncio.Lock()
    svc = env.service(exclusive=lock)
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Written during a download"})
    async with lock:
        assert await svc.capture_once() == 0
        assert await svc.sweep_once() == 0
    assert await svc.capture_once() == 1


async def test_an_unreachable_client_pauses_capture_and_loses_nothing(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Acme"})
    env.client.offline = True
    assert await svc.capture_once() == 0
    [event] = [e for e in env.events if isinstance(e, ServerReachability)]
    assert (event.side, event.reachable) == ("client", False)
    env.client.offline = False
    assert await svc.capture_once() == 0  # still backing off
    env.clock.advance(2)
    assert await svc.capture_once() == 1
    assert [e.reachable for e in env.events if isinstance(e, ServerReachability)] == [False, True]


async def test_ticks_sweep_for_deletions_every_sweep_interval(env: Env) -> None:
    rid = await env.synced("account", {"accountid": ACC, "name": "Acme"})
    svc = env.service(settings=UploadSettings(sweep_interval_s=60))
    await svc.tick()
    env.client.delete("account", rid)
    env.clock.advance(30)
    await svc.tick()
    assert env.server_org.get("account", rid) is not None
    env.clock.advance(30)
    await svc.tick()
    assert env.server_org.get("account", rid) is None
    assert (await svc.counts())[TransactionStatus.PROCESSED] == 1


async def test_the_admins_choice_survives_a_passing_failure(tmp_path: Path) -> None:
    env = await make_env(tmp_path, [EntityConfig("account", conflict_policy=ConflictPolicy.MANUAL)])
    try:
        rid = await env.synced("account", {"accountid": ACC, "name": "Acme"})
        svc = env.service()
        await svc.capture_once()
        env.client.put("account", {"accountid": rid, "name": "client"})
        await svc.capture_once()
        env.server_org.put("account", {"accountid": rid, "name": "server"})
        await svc.drain_once()
        [t] = await env.transactions(TransactionStatus.ERROR)
        await svc.set_pending([t.id])
        env.server_org.fail_next(1, errors.ServerError("Internal error", status=500), method="upsert_many")
        await svc.drain_once()
        [t] = await env.transactions(TransactionStatus.PENDING)
        assert t.last_error and t.last_error.startswith("conflict:") and "Internal error" in t.last_error
        env.clock.advance(10)
        await svc.drain_once()
        assert (env.server_org.get("account", rid) or {})["name"] == "client"
    finally:
        env.close()


async def test_server_wins_retries_when_the_client_cannot_take_the_servers_version(tmp_path: Path) -> None:
    env = await make_env(tmp_path, [EntityConfig("account")])
    try:
        rid = await env.synced("account", {"accountid": ACC, "name": "Acme"})
        svc = env.service()
        await svc.capture_once()
        env.client.put("account", {"accountid": rid, "name": "client"})
        await svc.capture_once()
        env.server_org.put("account", {"accountid": rid, "name": "server"})
        env.client.fail_next(1, errors.ServerError("busy", status=503), method="upsert_many")
        await svc.drain_once()
        [t] = await env.transactions(TransactionStatus.PENDING)
        assert t.last_error and not t.last_error.startswith("conflict:")  # not mistaken for the admin's choice
        env.clock.advance(10)
        await svc.drain_once()
        assert (env.server_org.get("account", rid) or {})["name"] == "server"
        assert (env.client.get("account", rid) or {})["name"] == "server"
        assert [t.status for t in await env.transactions()] == [TransactionStatus.PROCESSED]
    finally:
        env.close()


async def test_queue_pages_by_keyset(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    for i in range(5):
        env.client.put("account", {"accountid": f"10000000-0000-4000-8000-{i:012d}", "name": f"A{i}"})
    await svc.capture_once()
    first = await svc.list(TransactionStatus.PENDING, limit=3, with_counts=True)
    second = await svc.list(TransactionStatus.PENDING, after_id=first.next_after_id, limit=3)
    assert len(first.items) == 3 and len(second.items) == 2 and second.next_after_id is None
    assert first.counts[TransactionStatus.PENDING] == 5
    assert await repos.count_transactions(env.db, PROFILE) == await svc.counts()


async def test_a_server_offline_at_start_up_pauses_delivery_instead_of_failing(env: Env) -> None:
    env.server_org.offline = True
    svc = env.service()
    result = await svc.drain_once()
    assert result.unavailable is not None and not svc.server_reachable
    env.server_org.offline = False
    env.clock.advance(2)
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Acme"})
    await svc.capture_once()
    await svc.drain_once()
    assert svc.server_reachable and env.server_org.get("account", ACC) is not None


async def test_capture_holds_the_engines_lock_while_it_reads(env: Env) -> None:
    lock = asyncio.Lock()
    seen: list[bool] = []
    svc = env.service(exclusive=lock)
    real = env.client.has_changes

    async def probing(entity, token):  # type: ignore[no-untyped-def]
        seen.append(lock.locked())
        return await real(entity, token)

    env.client.has_changes = probing  # type: ignore[method-assign]
    await svc.capture_once()
    await svc.capture_once()
    assert seen and all(seen) and not lock.locked()
