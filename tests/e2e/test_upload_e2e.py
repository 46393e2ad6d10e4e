"""Upload end to end: client changes reach the server through the Offline Transactions queue."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from crmsync_desktop.domain import ConflictPolicy, RunStatus, TransactionStatus
from crmsync_desktop.store import repos
from crmsync_desktop.sync.connectors.types import LookupValue
from tests.e2e.harness import PROFILE, Rig, Session, WriteCounter, diff_summary

ENTITIES = ["account", "contact"]


async def _ready(s: Session) -> None:
    """Connected, account + contact enabled, Sync All done, capture primed (as the running app would be)."""
    result, report = await s.connect(ENTITIES)
    assert result.status is RunStatus.SUCCEEDED, report.problems()
    await s.enable(*ENTITIES, sync_deletion=True)  # server-side cascades reach the client
    result = await s.engine.sync(PROFILE, full=True)
    assert result.status is RunStatus.SUCCEEDED, result
    uploads = s.engine.uploads(PROFILE)
    assert await uploads.capture_once() == 0  # the first capture learns the client; the download is no change


async def _items(s: Session, status: TransactionStatus) -> list[Any]:
    page = await s.engine.uploads(PROFILE).list(status, limit=5000, newest_first=False)
    return list(page.items)


def _new_id(rng: random.Random) -> str:
    """A fresh record id (uuid5 in a test namespace: never one of the seeded ids, which come from Random)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"crmsync-e2e/{rng.getrandbits(64)}"))


def test_client_create_update_delete_reach_the_server_and_idle_probing_queues_nothing(
        rig_factory: Callable[..., Any]) -> None:
    with rig_factory(seed_records=600) as rig:

        async def body() -> None:
            async with rig.session() as s:
                await _ready(s)
                uploads = s.engine.uploads(PROFILE)
                # No echo: a full download followed by idle probing queues nothing.
                for _ in range(4):
                    assert await uploads.capture_once() == 0
                    assert await uploads.capture_once(probe=False) == 0
                assert sum((await uploads.counts()).values()) == 0

                rng = random.Random(3)
                accounts = sorted(await s.ids("client", "account"))
                created, changed, removed = _new_id(rng), accounts[0], accounts[1]
                contact = (await s.ids("client", "contact"))[0]
                await s.client.upsert_many("account", [
                    {"id": created, "name": "Created on the client", "telephone1": "+1 555 0100",
                     "primarycontactid": LookupValue("contact", contact)},
                    {"id": changed, "name": "Changed on the client"},
                ])
                await s.client.delete_many("account", [removed])
                assert await uploads.capture_once() == 3
                drained = await uploads.drain_once()
                assert (drained.delivered, drained.failed, drained.conflicts) == (3, 0, 0), drained
                on_server = await s.records("server", "account", ["name", "telephone1", "primarycontactid"],
                                            [created, changed, removed])
                assert on_server[created]["name"] == "Created on the client"
                assert on_server[created]["telephone1"] == "+1 555 0100"
                assert on_server[created]["primarycontactid"] == LookupValue("contact", contact)
                assert on_server[changed]["name"] == "Changed on the client"
                assert removed not in on_server
                # The server's echo of the upload is not downloaded, and nothing is queued again. The
                # created record comes back once: the server gave it an owner (the client's own user is
                # not a server user), and the client takes the server's owner.
                writes = WriteCounter(rig.pair)
                result = await s.engine.sync(PROFILE)
                assert result.status is RunStatus.SUCCEEDED, result
                assert set(writes.per_record) <= {("account", created)}, writes.per_record
                owner = (await s.records("server", "account", ["ownerid"], [created]))[created]["ownerid"]
                assert owner == LookupValue("systemuser", (await s.server.whoami()).user_id.lower())
                client_owner = (await s.records("client", "account", ["ownerid"], [created]))[created]["ownerid"]
                assert client_owner == owner
                for _ in range(3):
                    assert await uploads.capture_once() == 0
                report = await s.verify()
                assert report.in_sync, diff_summary(report)

        asyncio.run(body())


def test_server_offline_queues_1000_changes_that_drain_in_order(rig_factory: Callable[..., Any]) -> None:
    with rig_factory(seed_records=1600) as rig:

        async def body() -> None:
            async with rig.session(fast_retries=True) as s:
                await _ready(s)
                uploads = s.engine.uploads(PROFILE)
                rng = random.Random(8)
                rig.pair.dataverse_org.set_offline(True)
                contacts = sorted(await s.ids("client", "contact"))[:300]
                new = [_new_id(rng) for _ in range(200)]
                # 1,000 client changes, captured as they happen: 200 creates, 300 updates, then the
                # same 200 records and 300 contacts changed again (their last value must win).
                await s.client.upsert_many("account", [{"id": r, "name": f"New {i} v1"} for i, r in enumerate(new)])
                assert await uploads.capture_once() == 200
                await s.client.upsert_many("contact", [{"id": r, "jobtitle": "Title v1"} for r in contacts])
                assert await uploads.capture_once() == 300
                await s.client.upsert_many("account", [{"id": r, "name": f"New {i} v2"} for i, r in enumerate(new)])
                assert await uploads.capture_once() == 200
                await s.client.upsert_many("contact", [{"id": r, "jobtitle": "Title v2"} for r in contacts])
                assert await uploads.capture_once() == 300
                drained = await uploads.drain_once()
                assert drained.unavailable is not None and drained.delivered == 0
                counts = await uploads.counts()
                assert counts[TransactionStatus.PENDING] == 1000 and counts[TransactionStatus.ERROR] == 0

                rig.pair.dataverse_org.set_offline(False)
                while uploads.paused_until is not None:  # delivery waits for its back-off (~2 s)
                    await asyncio.sleep(0.2)
                    drained = await uploads.drain_once()
                    if drained.reached_server:
                        break
                while (await uploads.counts())[TransactionStatus.PENDING]:
                    drained = await uploads.drain_once()
                    assert drained.reached_server, drained
                counts = await uploads.counts()
                assert counts[TransactionStatus.PROCESSED] == 1000 and counts[TransactionStatus.ERROR] == 0, counts
                done = await _items(s, TransactionStatus.PROCESSED)
                by_record: dict[str, list[Any]] = {}
                for t in done:
                    by_record.setdefault(t.record_id, []).append(t)
                for items in by_record.values():  # a record's transactions were delivered in queue order
                    assert [t.processed_at for t in items] == sorted(t.processed_at for t in items)
                server_accounts = await s.records("server", "account", ["name"], new)
                assert {r["name"] for r in server_accounts.values()} == {f"New {i} v2" for i in range(200)}
                server_contacts = await s.records("server", "contact", ["jobtitle"], contacts)
                assert {r.get("jobtitle") for r in server_contacts.values()} == {"Title v2"}
                result = await s.engine.sync(PROFILE)  # the next download (the created records' server owner)
                assert result.status is RunStatus.SUCCEEDED, result
                report = await s.verify()
                assert report.in_sync, diff_summary(report)

        asyncio.run(body())


def test_rejected_change_is_error_then_pending_delivers_and_archived_is_never_sent(
        rig_factory: Callable[..., Any]) -> None:
    with rig_factory(seed_records=400) as rig:

        async def body() -> None:
            async with rig.session() as s:
                await _ready(s)
                uploads = s.engine.uploads(PROFILE)
                org = rig.pair.dataverse_org
                org.deny_privilege(rig.pair.creds.app_object_id, "prvWriteAccount")
                first, second = sorted(await s.ids("client", "account"))[:2]
                before = await s.records("server", "account", ["name"], [first, second])
                await s.client.upsert_many("account", [{"id": first, "name": "Fixed later"},
                                                       {"id": second, "name": "Never sent"}])
                assert await uploads.capture_once() == 2
                drained = await uploads.drain_once()
                assert drained.failed == 2, drained
                errors = {t.record_id: t for t in await _items(s, TransactionStatus.ERROR)}
                assert set(errors) == {first, second}
                assert all("prvWriteAccount" in (t.last_error or "") or "privilege" in (t.last_error or "").lower()
                           for t in errors.values()), [t.last_error for t in errors.values()]
                assert await uploads.archive([errors[second].id]) == 1
                org.allow_privilege(rig.pair.creds.app_object_id, "prvWriteAccount")  # the cause is fixed
                assert await uploads.set_pending([errors[first].id]) == 1
                drained = await uploads.drain_once()
                assert drained.delivered == 1 and drained.failed == 0, drained
                for _ in range(2):  # archived stays archived, however often delivery runs
                    await uploads.drain_once()
                after = await s.records("server", "account", ["name"], [first, second])
                assert after[first]["name"] == "Fixed later"
                assert after[second]["name"] == before[second]["name"]
                archived = await _items(s, TransactionStatus.ARCHIVED)
                assert [t.record_id for t in archived] == [second] and archived[0].attempts == 1

        asyncio.run(body())


def test_crash_between_delivery_and_bookkeeping_delivers_no_duplicates(
        rig_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    with rig_factory(seed_records=400) as rig:

        async def body() -> None:
            rng = random.Random(4)
            new = [_new_id(rng) for _ in range(5)]
            async with rig.session() as s:
                await _ready(s)
                uploads = s.engine.uploads(PROFILE)
                existing = sorted(await s.ids("client", "account"))[:5]
                await s.client.upsert_many("account", [{"id": r, "name": f"Crash {i}"} for i, r in enumerate(new)]
                                           + [{"id": r, "name": f"Edited {i}"} for i, r in enumerate(existing)])
                await s.client.delete_many("contact", sorted(await s.ids("client", "contact"))[:3])
                assert await uploads.capture_once() == 13
                server_before = rig.pair.dataverse_org.count("account")
                real = repos.finish_delivery
                crashed = []

                async def crash(*args: Any, **kwargs: Any) -> None:
                    crashed.append(1)
                    raise RuntimeError("process killed after the server accepted the changes")

                monkeypatch.setattr(repos, "finish_delivery", crash)
                with pytest.raises(RuntimeError):
                    await uploads.drain_once()
                monkeypatch.setattr(repos, "finish_delivery", real)
                assert crashed and rig.pair.dataverse_org.count("account") == server_before + 5  # the server has them
                assert (await uploads.counts())[TransactionStatus.PENDING] == 13
            async with rig.session() as s:  # restart: a new engine on the same store
                uploads = s.engine.uploads(PROFILE)
                drained = await uploads.drain_once()
                assert (drained.delivered, drained.failed, drained.conflicts) == (13, 0, 0), drained
                assert rig.pair.dataverse_org.count("account") == server_before + 5  # no duplicates
                names = await s.records("server", "account", ["name"], new + existing)
                assert sorted(r["name"] for r in names.values()) == sorted(
                    [f"Crash {i}" for i in range(5)] + [f"Edited {i}" for i in range(5)])
                assert all(t.last_error is None or "conflict" not in t.last_error
                           for t in await _items(s, TransactionStatus.PROCESSED))
                result = await s.engine.sync(PROFILE)  # the created records' server owner comes back
                assert result.status is RunStatus.SUCCEEDED, result
                report = await s.verify()
                assert report.in_sync, diff_summary(report)

        asyncio.run(body())


@pytest.mark.parametrize("policy", [ConflictPolicy.SERVER_WINS, ConflictPolicy.CLIENT_WINS,
                                    ConflictPolicy.CLIENT_WINS_FULL, ConflictPolicy.MANUAL])
def test_conflict_policies_with_concurrent_edits(rig_factory: Callable[..., Any], policy: ConflictPolicy) -> None:
    with rig_factory(seed_records=300) as rig:
        asyncio.run(_conflict(rig, policy))


async def _conflict(rig: Rig, policy: ConflictPolicy) -> None:
    async with rig.session() as s:
        await _ready(s)
        await s.configure("account", conflict_policy=policy)
        uploads = s.engine.uploads(PROFILE)
        rid = sorted(await s.ids("client", "account"))[0]
        original = (await s.records("server", "account", ["name", "telephone1", "websiteurl"], [rid]))[rid]
        # Both sides edit the record after it was synchronized: the client its name and website,
        # the server its name and phone.
        await s.client.upsert_many("account", [{"id": rid, "name": "Client name", "websiteurl": "https://client"}])
        await s.server.upsert_many("account", [{"accountid": rid, "name": "Server name", "telephone1": "+1 555 0199"}])
        assert await uploads.capture_once() == 1
        drained = await uploads.drain_once()
        server = (await s.records("server", "account", ["name", "telephone1", "websiteurl"], [rid]))[rid]
        client = (await s.records("client", "account", ["name", "telephone1", "websiteurl"], [rid]))[rid]
        if policy is ConflictPolicy.SERVER_WINS:
            assert drained.delivered == 1 and drained.failed == 0
            assert (server["name"], server["telephone1"], server.get("websiteurl")) == (
                "Server name", "+1 555 0199", original.get("websiteurl"))
            assert (client["name"], client["telephone1"], client.get("websiteurl")) == (
                "Server name", "+1 555 0199", original.get("websiteurl"))
        elif policy is ConflictPolicy.CLIENT_WINS:  # the client's changed fields only
            assert drained.delivered == 1
            assert (server["name"], server["telephone1"], server["websiteurl"]) == (
                "Client name", "+1 555 0199", "https://client")
        elif policy is ConflictPolicy.CLIENT_WINS_FULL:  # the whole client record
            assert drained.delivered == 1
            assert (server["name"], server.get("telephone1"), server["websiteurl"]) == (
                "Client name", original.get("telephone1"), "https://client")
        else:  # manual: waits in Error with both versions; Set to Pending = client wins
            assert drained.delivered == 0
            [waiting] = await _items(s, TransactionStatus.ERROR)
            assert waiting.last_error and waiting.last_error.startswith("conflict:")
            assert "Client name" in waiting.last_error and "Server name" in waiting.last_error
            assert server["name"] == "Server name"
            assert await uploads.set_pending([waiting.id]) == 1
            drained = await uploads.drain_once()
            assert drained.delivered == 1, drained
            server = (await s.records("server", "account", ["name", "telephone1"], [rid]))[rid]
            assert (server["name"], server["telephone1"]) == ("Client name", "+1 555 0199")
        result = await s.engine.sync(PROFILE)
        assert result.status is RunStatus.SUCCEEDED
        report = await s.verify()
        assert report.in_sync, diff_summary(report)
