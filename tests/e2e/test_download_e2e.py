"""Download end to end: Sync All of related entities, sync filters, incremental cost in requests."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from crmsync_desktop.domain import RunStatus
from crmsync_desktop.sync.connectors.types import LookupValue
from tests.e2e.harness import (
    PROFILE,
    Rig,
    Session,
    WriteCounter,
    dataverse_requests,
    diff_summary,
    reset_dataverse_requests,
)

SALES = ["account", "contact", "lead", "opportunity", "competitor", "task", "phonecall"]


async def _connect_and_enable(s: Session, entities: list[str], **changes: Any) -> None:
    result, report = await s.connect(entities)
    assert result.status is RunStatus.SUCCEEDED, report.problems()
    await s.enable(*entities, **changes)


def _sync_all_and_verify(rig: Rig) -> None:
    async def body() -> None:
        async with rig.session() as s:
            await _connect_and_enable(s, SALES)
            result = await s.engine.sync(PROFILE, full=True)
            assert result.status is RunStatus.SUCCEEDED, result
            report = await s.verify()
            assert report.in_sync, diff_summary(report)
            for entity in SALES:
                server, client = await s.ids("server", entity), await s.ids("client", entity)
                assert len(client) == len(set(client)), entity
                assert set(client) == set(server), entity
            # Related records point at the same parents on both sides (spot check).
            some = (await s.ids("server", "contact"))[:200]
            on_server = await s.records("server", "contact", ["parentcustomerid"], some)
            on_client = await s.records("client", "contact", ["parentcustomerid"], some)
            for rid, record in on_server.items():
                parent = record.get("parentcustomerid")
                theirs = on_client[rid].get("parentcustomerid")
                assert (parent.id if isinstance(parent, LookupValue) else None) == (
                    theirs.id if isinstance(theirs, LookupValue) else None), rid

    asyncio.run(body())


def test_sync_all_of_related_entities_ends_in_sync(rig_factory: Callable[..., Any]) -> None:
    with rig_factory(seed_records=4000) as rig:
        _sync_all_and_verify(rig)


@pytest.mark.slow
def test_sync_all_of_50k_records_ends_in_sync(rig_factory: Callable[..., Any]) -> None:
    with rig_factory(seed_records=50_000) as rig:
        _sync_all_and_verify(rig)


CONTACT_FILTER = """<fetch><entity name="contact"><filter type="or">
  <condition attribute="ownerid" operator="eq-userid"/>
  <condition attribute="jobtitle" operator="eq" value="CEO"/>
</filter></entity></fetch>"""
ACCOUNT_FILTER = """<fetch><entity name="account">
  <link-entity name="contact" from="contactid" to="primarycontactid" link-type="inner">
    <filter><condition attribute="jobtitle" operator="eq" value="Buyer"/></filter>
  </link-entity>
</entity></fetch>"""


def test_sync_filters_with_eq_userid_and_a_link_entity(rig_factory: Callable[..., Any]) -> None:
    with rig_factory(seed_records=2000) as rig:

        async def body() -> None:
            async with rig.session() as s:
                await _connect_and_enable(s, ["account", "contact"])
                me = (await s.server.whoami()).user_id.lower()
                contacts = await s.records("server", "contact", ["ownerid", "jobtitle"])
                mine = sorted(contacts)[:40]
                for rid in mine:
                    await s.server.assign("contact", rid, LookupValue("systemuser", me))
                await s.configure("contact", sync_filter=CONTACT_FILTER)
                await s.configure("account", sync_filter=ACCOUNT_FILTER)
                result = await s.engine.sync(PROFILE, full=True)
                assert result.status is RunStatus.SUCCEEDED, result

                contacts = await s.records("server", "contact", ["ownerid", "jobtitle"])
                want_contacts = {rid for rid, r in contacts.items()
                                 if (isinstance(r.get("ownerid"), LookupValue) and r["ownerid"].id.lower() == me)
                                 or r.get("jobtitle") == "CEO"}
                assert set(mine) <= want_contacts
                assert set(await s.ids("client", "contact")) == want_contacts
                buyers = {rid for rid, r in contacts.items() if r.get("jobtitle") == "Buyer"}
                accounts = await s.records("server", "account", ["primarycontactid"])
                want_accounts = {rid for rid, r in accounts.items()
                                 if isinstance(r.get("primarycontactid"), LookupValue)
                                 and r["primarycontactid"].id.lower() in buyers}
                assert want_accounts and len(want_accounts) < len(accounts)
                assert set(await s.ids("client", "account")) == want_accounts
                report = await s.verify()
                assert report.in_sync, diff_summary(report)

        asyncio.run(body())


def test_incremental_sync_costs_follow_the_changes(rig_factory: Callable[..., Any]) -> None:
    """100 server changes among ~3,000 records: requests and client writes follow the changes, not the size."""
    page = 25
    with rig_factory(seed_records=3600) as rig:
        writes = WriteCounter(rig.pair)

        async def body() -> None:
            async with rig.session(page_size=page) as s:
                entities = ["account", "contact", "lead", "opportunity"]
                await _connect_and_enable(s, entities, sync_deletion=True)
                me = (await s.server.whoami()).user_id.lower()
                contacts = sorted(await s.ids("server", "contact"))
                rng = random.Random(5)
                # The contact filter: owned by the app user or a CEO. 60 contacts start owned by the app user.
                owned = rng.sample(contacts, 60)
                for rid in owned:
                    await s.server.assign("contact", rid, LookupValue("systemuser", me))
                await s.configure("contact", sync_filter=CONTACT_FILTER)
                reset_dataverse_requests(rig.pair)
                result = await s.engine.sync(PROFILE, full=True)
                assert result.status is RunStatus.SUCCEEDED, result
                full_requests = sum(dataverse_requests(rig.pair).values())
                held = {e: set(await s.ids("client", e)) for e in entities}
                total = sum(len(v) for v in held.values())

                # 100 changes: 40 updates, 15 creates, 15 deletes, 15 contacts entering the filter, 15 leaving it.
                accounts = sorted(await s.ids("server", "account"))
                leads = sorted(await s.ids("server", "lead"))
                updated = rng.sample(accounts, 25) + rng.sample(leads, 15)
                await s.server.upsert_many("account", [{"accountid": r, "name": f"Renamed {n}"}
                                                       for n, r in enumerate(updated[:25])])
                await s.server.upsert_many("lead", [{"leadid": r, "subject": f"Changed {n}"}
                                                    for n, r in enumerate(updated[25:])])
                created = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(15)]
                await s.server.upsert_many("account", [{"accountid": r, "name": f"New {n}"}
                                                       for n, r in enumerate(created)])
                deleted = rng.sample(sorted(set(leads) - set(updated)), 15)
                await s.server.delete_many("lead", deleted)
                others = [r for r in contacts if r not in held["contact"] and r not in owned]
                entering = rng.sample(others, 15)
                for rid in entering:
                    await s.server.assign("contact", rid, LookupValue("systemuser", me))
                titles = await s.records("server", "contact", ["jobtitle"], owned)
                leaving = rng.sample(sorted(r for r in set(owned) & held["contact"]
                                            if titles[r].get("jobtitle") != "CEO"), 15)
                someone = next(r for r in (await s.records("server", "systemuser", ["systemuserid"])) if r != me)
                for rid in leaving:
                    await s.server.assign("contact", rid, LookupValue("systemuser", someone))

                reset_dataverse_requests(rig.pair)
                writes.reset()
                result = await s.engine.sync(PROFILE)
                assert result.status is RunStatus.SUCCEEDED, result
                requests = dataverse_requests(rig.pair)
                # Metadata (EntityDefinitions) is read once per run and entity: a constant, whatever the changes.
                metadata = requests.pop("GET EntityDefinitions", 0)
                synced = len(entities) + 3  # + systemuser, team, businessunit (always synchronized)
                assert metadata <= 8 * synced, metadata
                n = sum(requests.values())
                # Full read: at least one request per 25 rows; incremental: a few per entity, whatever the size.
                assert full_requests - metadata >= total // page, (full_requests, total)
                # One change read per entity, plus one read per lookup column pointing at records that
                # arrived (created, or entered a filter) to complete the lookups to them.
                assert n <= 3 * synced + 4, requests
                assert n * 4 < full_requests - metadata, (n, full_requests, requests)
                # Client writes: exactly the records that changed or entered (no unchanged record rewritten).
                written = {rid for (_, rid), _ in writes.per_record.items()}
                expected = set(updated) | set(created) | set(entering)
                # ... plus records whose lookup points at a contact that just entered the filter or an
                # account just created: that lookup could not be written before (the target was not on
                # the client) and now can. Records that changed themselves and point at an arrival are
                # written twice (once changed, once completed), nothing else is.
                arrivals = set(created) | set(entering)
                assert expected <= written, sorted(expected - written)
                by_entity: dict[str, list[str]] = {}
                for (entity, rid), count in writes.per_record.items():
                    if rid not in expected or count > 1:
                        by_entity.setdefault(entity, []).append(rid)
                for entity, rids in by_entity.items():
                    meta = await s.server.get_entity(entity)
                    lookups = [f.logical_name for f in meta.fields if f.type.is_lookup]
                    for rid, record in (await s.records("server", entity, lookups, rids)).items():
                        targets = {v.id for v in record.values() if isinstance(v, LookupValue)}
                        assert targets & arrivals, (entity, rid, writes.per_record[(entity, rid)])
                assert max(writes.per_record.values()) <= 2
                assert not (set(deleted) & set(await s.ids("client", "lead")))
                client_contacts = set(await s.ids("client", "contact"))
                assert set(entering) <= client_contacts and not (set(leaving) & client_contacts)
                report = await s.verify()
                assert report.in_sync, diff_summary(report)

        asyncio.run(body())

