"""Delivery under failure: offline, rejections, Set to Pending, Archived, crashes, backoff, retention."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crmsync_desktop import errors
from crmsync_desktop.domain import TransactionOperation, TransactionStatus
from crmsync_desktop.store import repos
from crmsync_desktop.store.values import NewTransaction
from crmsync_desktop.sync.connectors.types import LookupValue
from crmsync_desktop.sync.upload import ConflictLogged, DeliverySettings, ServerReachability, UploadSettings
from tests.sync.upload.harness import PROFILE, Env

pytestmark = pytest.mark.asyncio

ACC = "10000000-0000-4000-8000-000000000001"
ACC2 = "10000000-0000-4000-8000-000000000002"
CON = "20000000-0000-4000-8000-000000000001"


def acc(i: int) -> str:
    return f"10000000-0000-4000-8000-{i:012d}"


async def test_offline_server_queues_everything_then_drains_in_order(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    env.server_org.offline = True
    for i in range(1000):
        env.client.put("account", {"accountid": acc(i), "name": f"Acme {i}"})
    for i in range(0, 1000, 100):  # some records change again while the server is away
        env.client.put("account", {"accountid": acc(i), "name": f"Acme {i} (edited)"})
    assert await svc.capture_once() == 1000  # the second edit folds into the not yet captured create
    for i in range(0, 1000, 100):
        env.client.put("account", {"accountid": acc(i), "telephone1": f"+47 {i}"})
    assert await svc.capture_once() == 10

    result = await svc.drain_once()
    assert result.unavailable is not None and not svc.server_reachable
    pending = await env.transactions(TransactionStatus.PENDING)
    assert len(pending) == 1010 and all(t.attempts == 0 and t.next_attempt_at is None for t in pending)
    reach = [e for e in env.events if isinstance(e, ServerReachability)]
    assert reach and not reach[-1].reachable and reach[-1].retry_at == svc.paused_until

    await svc.drain_once()  # paused: not even tried
    assert env.server_org.requests["upsert_many"] == 1

    env.server_org.offline = False
    env.clock.advance(60)
    env.server.calls.clear()
    result = await svc.drain_once()
    assert result.delivered == 1010 and svc.server_reachable
    assert [e.reachable for e in env.events if isinstance(e, ServerReachability)][-1] is True
    assert await env.same_on_both_sides("account")
    queued = [t.record_id for t in await env.transactions()]
    assert env.server.upserted_ids() == queued  # delivered in the order the client made the changes
    assert queued[-10:] == [acc(i) for i in range(0, 1000, 100)] and len(set(queued[:1000])) == 1000
    counts = await svc.counts()
    assert counts[TransactionStatus.PROCESSED] == 1010 and counts[TransactionStatus.PENDING] == 0


async def test_a_rejected_change_is_an_error_with_the_servers_message_until_set_to_pending(env: Env) -> None:
    rid = await env.synced("account", {"accountid": ACC, "name": "Acme"})
    svc = env.service()
    await svc.capture_once()
    env.server_org.reject_when(lambda entity, record: "Account Number must be 6 digits."
                               if "accountnumber" in record and len(str(record["accountnumber"])) != 6 else None)
    env.client.put("account", {"accountid": rid, "accountnumber": "12"})
    await svc.capture_once()
    await svc.drain_once()
    [bad] = await env.transactions(TransactionStatus.ERROR)
    assert bad.last_error == "Account Number must be 6 digits." and bad.attempts == 1
    [run] = [r for r in await repos.list_runs(env.db, PROFILE) if r.counts.get("account", {}).get("failed")]
    assert run.status.value == "failed"

    # a later change of the same record waits behind the error: changes never overtake each other
    env.client.put("account", {"accountid": rid, "name": "Acme 2"})
    await svc.capture_once()
    await svc.drain_once()
    assert env.server_org.get("account", rid)["name"] == "Acme"  # type: ignore[index]
    assert len(await env.transactions(TransactionStatus.PENDING)) == 1

    env.server_org.clear_rejects()  # the admin fixed the rule on the server
    assert await svc.set_pending([bad.id]) == 1
    await svc.drain_once()
    assert [t.status for t in await env.transactions()] == [TransactionStatus.PROCESSED] * 2
    server = env.server_org.get("account", rid) or {}
    assert (server["accountnumber"], server["name"]) == ("12", "Acme 2")
    assert await env.same_on_both_sides("account")


async def test_retry_errors_sets_every_error_to_pending(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    env.server_org.reject_when(lambda e, r: "No." if str(r.get("name", "")).startswith("Bad") else None)
    for i in range(3):
        env.client.put("account", {"accountid": acc(i), "name": f"Bad {i}"})
    await svc.capture_once()
    await svc.drain_once()
    assert len(await env.transactions(TransactionStatus.ERROR)) == 3
    env.server_org.clear_rejects()
    assert await svc.retry_errors() == 3
    await svc.drain_once()
    assert env.server_org.count("account") == 3


async def test_archived_transactions_are_never_sent(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Keep local"})
    env.client.put("account", {"accountid": ACC2, "name": "Send"})
    await svc.capture_once()
    first, second = await env.transactions()
    assert await svc.archive([first.id]) == 1
    assert await svc.archive([first.id]) == 0  # already archived
    await svc.drain_once()
    assert env.server.upserted_ids() == [ACC2]
    assert (await repos.get_transaction(env.db, PROFILE, first.id)).status is TransactionStatus.ARCHIVED  # type: ignore[union-attr]
    # Archived does not block later changes of the same record, and Processed cannot be archived
    assert await svc.archive([second.id]) == 0
    env.client.put("account", {"accountid": ACC, "name": "Changed again"})
    await svc.capture_once()
    await svc.drain_once()
    assert env.server_org.get("account", ACC)["name"] == "Changed again"  # type: ignore[index]


async def test_a_crash_between_sending_and_bookkeeping_creates_no_duplicate(env: Env) -> None:
    rid = await env.synced("account", {"accountid": ACC, "name": "Acme", "telephone1": "1"})
    svc = env.service()
    await svc.capture_once()
    env.client.put("account", {"accountid": rid, "telephone1": "2"})
    env.client.put("account", {"accountid": ACC2, "name": "New"})
    await svc.capture_once()
    env.server.crash_after_upsert = 1
    with pytest.raises(RuntimeError, match="crashed"):
        await svc.drain_once()
    assert len(await env.transactions(TransactionStatus.PENDING)) == 2  # nothing marked: the app died

    restarted = env.service()  # a new app: same store, same organizations
    result = await restarted.drain_once()
    assert result.delivered == 2 and result.failed == 0
    assert env.server_org.count("account") == 2
    assert (env.server_org.get("account", rid) or {})["telephone1"] == "2"
    assert all(t.last_error is None for t in await env.transactions())  # the resend was no conflict
    outcomes = {e.outcome for e in env.events if isinstance(e, ConflictLogged)}
    assert outcomes <= {"already_applied"}
    assert await env.same_on_both_sides("account")


async def test_throttling_pauses_delivery_for_retry_after_without_counting_attempts(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Acme"})
    await svc.capture_once()
    env.server_org.fail_next(1, errors.ThrottledError("Too many requests", retry_after=30), method="upsert_many")
    await svc.drain_once()
    [t] = await env.transactions()
    assert t.status is TransactionStatus.PENDING and t.attempts == 0
    assert svc.paused_until == env.clock() + timedelta(seconds=30)
    env.clock.advance(29)
    await svc.drain_once()
    assert env.server_org.count("account") == 0
    env.clock.advance(1)
    await svc.drain_once()
    assert env.server_org.get("account", ACC) is not None


async def test_passing_record_failures_back_off_then_give_up(env: Env) -> None:
    svc = env.service(settings=UploadSettings(delivery=DeliverySettings(max_attempts=3, retry_base_s=2.0)))
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Flaky"})
    await svc.capture_once()
    env.server_org.reject_when(lambda e, r: "Service unavailable", status=503, retryable=True)
    await svc.drain_once()
    [t] = await env.transactions()
    assert (t.status, t.attempts, t.next_attempt_at) == (TransactionStatus.PENDING, 1, env.clock() + timedelta(seconds=2))
    await svc.drain_once()  # not due yet
    assert (await env.transactions())[0].attempts == 1
    env.clock.advance(2)
    await svc.drain_once()
    [t] = await env.transactions()
    assert t.attempts == 2 and t.next_attempt_at == env.clock() + timedelta(seconds=4)
    env.clock.advance(4)
    await svc.drain_once()
    [t] = await env.transactions()
    assert t.status is TransactionStatus.ERROR and "gave up after 3 attempts" in (t.last_error or "")


async def test_a_whole_call_server_error_is_retried_later(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Acme"})
    await svc.capture_once()
    env.server_org.fail_next(1, errors.ServerError("Internal error", status=500), method="upsert_many")
    await svc.drain_once()
    [t] = await env.transactions()
    assert t.status is TransactionStatus.PENDING and t.attempts == 1 and t.last_error == "Internal error"
    env.clock.advance(2)
    await svc.drain_once()
    assert env.server_org.get("account", ACC) is not None


async def test_a_missing_parent_is_retried_then_reported(env: Env) -> None:
    svc = env.service(settings=UploadSettings(delivery=DeliverySettings(missing_parent_attempts=3)))
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Parent"})
    env.client.put("contact", {"contactid": CON, "lastname": "Child", "parentcustomerid": LookupValue("account", ACC)})
    await svc.capture_once()
    parent, child = await env.transactions()
    await svc.archive([parent.id])  # the parent never reaches the server
    for _ in range(3):
        await svc.drain_once()
        env.clock.advance(600)
    child_now = await repos.get_transaction(env.db, PROFILE, child.id)
    assert child_now is not None and child_now.status is TransactionStatus.ERROR
    assert "still missing after 3 attempts" in (child_now.last_error or "")


async def test_hold_back_keeps_a_records_changes_in_order(env: Env) -> None:
    svc = env.service()
    await svc.capture_once()
    ids = await repos.enqueue_transactions(env.db, PROFILE, [
        NewTransaction("account", TransactionOperation.UPDATE, {}, ACC),
        NewTransaction("account", TransactionOperation.UPDATE, {}, ACC2),
        NewTransaction("account", TransactionOperation.UPDATE, {}, ACC),
    ])
    await repos.retry_transactions(env.db, PROFILE, {ids[0]: ("busy", env.clock() + timedelta(seconds=10))})
    batch = await repos.next_delivery_batch(env.db, PROFILE, now=env.clock())
    assert [t.id for t in batch] == [ids[1]]
    batch = await repos.next_delivery_batch(env.db, PROFILE, now=env.clock() + timedelta(seconds=10))
    assert [t.id for t in batch] == [ids[0], ids[1], ids[2]]


async def test_processed_transactions_are_pruned_after_the_retention(env: Env) -> None:
    svc = env.service(settings=UploadSettings(retention=timedelta(days=30)))
    await svc.capture_once()
    env.client.put("account", {"accountid": ACC, "name": "Old"})
    await svc.capture_once()
    await svc.drain_once()
    env.clock.advance(timedelta(days=20).total_seconds())
    env.client.put("account", {"accountid": ACC2, "name": "Recent"})
    env.server_org.reject_when(lambda e, r: "No." if r.get("name") == "Refused" else None)
    env.client.put("account", {"accountid": acc(9), "name": "Refused"})
    await svc.capture_once()
    await svc.drain_once()
    env.clock.advance(timedelta(days=11).total_seconds())
    assert await svc.prune() == 1
    left = await env.transactions()
    assert [(t.record_id, t.status) for t in left] == [(ACC2, TransactionStatus.PROCESSED),
                                                       (acc(9), TransactionStatus.ERROR)]
    assert await svc.prune(timedelta(0)) == 1


async def test_run_forever_delivers_a_client_change_on_the_next_tick(env: Env) -> None:
    ticks: list[float] = []

    async def sleep(seconds: float) -> None:
        ticks.append(seconds)
        env.clock.advance(seconds)
        if len(ticks) == 1:
            env.client.put("account", {"accountid": ACC, "name": "Typed on a phone"})
        if len(ticks) == 3:
            svc.stop()

    svc = env.service(sleep=sleep, probe_interval_s=2.0)
    await svc.run_forever()
    assert ticks == [2.0, 2.0, 2.0]
    assert env.server_org.get("account", ACC) is not None
    [t] = await env.transactions()
    assert t.status is TransactionStatus.PROCESSED and t.processed_at == env.clock() - timedelta(seconds=4)
    runs = await repos.list_runs(env.db, PROFILE)
    assert len(runs) == 1 and runs[0].counts["account"]["uploaded"] == 1  # quiet ticks leave no run
