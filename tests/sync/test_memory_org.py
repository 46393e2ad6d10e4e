"""The in-memory organization (tests/fakes/memory_org.py) honours the Connector Protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TypeVar

import pytest

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import (
    ChangePage,
    EntityMeta,
    FieldMeta,
    FieldType,
    LookupValue,
    Ownership,
    Product,
    RelationshipKind,
    RelationshipMeta,
    TokenKind,
)
from tests.fakes.memory_org import DEFAULT_TEAM_ID, DEFAULT_USER_ID, MemoryOrg, sales_org

pytestmark = pytest.mark.asyncio

T = TypeVar("T")
ACC1 = "10000000-0000-4000-8000-000000000001"
ACC2 = "10000000-0000-4000-8000-000000000002"
CON1 = "20000000-0000-4000-8000-000000000001"
LEAD1 = "30000000-0000-4000-8000-000000000001"
COMP1 = "40000000-0000-4000-8000-000000000001"


async def collect(it: AsyncIterator[T]) -> list[T]:
    return [x async for x in it]


def accounts(org: MemoryOrg, n: int) -> list[str]:
    return [org.put("account", {"accountid": f"a{i:07d}-0000-4000-8000-000000000000", "name": f"Acme {i}"})
            for i in range(n)]


# --- identity, capabilities, metadata ----------------------------------------------------------------

async def test_is_a_connector_with_identity_and_capabilities() -> None:
    server, client = sales_org(Product.DATAVERSE), MemoryOrg(Product.RESCO)
    assert isinstance(server, Connector) and isinstance(client, Connector)
    me = await server.whoami()
    assert me.user_id == DEFAULT_USER_ID and server.get("systemuser", me.user_id) is not None
    caps = await server.capabilities(["account"])
    assert caps.product is Product.DATAVERSE and caps.change_tracking == {"account": True}
    assert not caps.can_create_schema and caps.bulk_messages["account"]
    rcaps = await client.capabilities(["x"])
    assert rcaps.product is Product.RESCO and rcaps.can_create_schema and rcaps.change_tracking == {"x": False}
    assert rcaps.max_page_size == 1000


async def test_metadata_reads() -> None:
    org = sales_org()
    listed = await org.list_entities()
    names = [e.logical_name for e in listed]
    assert names == sorted(names) and {"account", "contact", "leadcompetitors", "systemuser"} <= set(names)
    assert all(not e.fields for e in listed)
    contact = await org.get_entity("contact")
    assert contact.primary_id == "contactid" and contact.primary_name == "fullname"
    pcid = contact.field("parentcustomerid")
    assert pcid is not None and pcid.type is FieldType.LOOKUP and pcid.targets == ("account", "contact")
    rels = {r.schema_name for r in await org.list_relationships("lead")}
    assert {"leadcompetitors_association", "lead_parent_account", "lead_opportunity_origin"} <= rels
    with pytest.raises(errors.NotFoundError):
        await org.get_entity("nope")


async def test_dataverse_schema_is_read_only_through_the_connector() -> None:
    org = sales_org()
    with pytest.raises(errors.ConfigError):
        await org.create_entity(EntityMeta("new_thing"))
    with pytest.raises(errors.ConfigError):
        await org.create_field("account", FieldMeta("new_x", FieldType.STRING))
    org.add_field("account", FieldMeta("new_x", FieldType.STRING, max_length=10))  # the admin can
    assert (await org.get_entity("account")).field("new_x") is not None


async def test_resco_create_entity_field_relationship() -> None:
    org = MemoryOrg(Product.RESCO)
    await org.create_entity(EntityMeta("systemuser", primary_id="systemuserid", primary_name="fullname",
                                       ownership=Ownership.ORGANIZATION))
    await org.create_entity(EntityMeta("team", primary_id="teamid", primary_name="name",
                                       ownership=Ownership.ORGANIZATION))
    await org.create_entity(EntityMeta(
        "account", primary_id="accountid", primary_name="name",
        fields=(FieldMeta("name", FieldType.STRING, label="Account Name", max_length=160, is_primary_name=True),
                FieldMeta("ignored", FieldType.STRING)),
    ))
    await org.create_entity(EntityMeta("account"))  # exists: a no-op, like a 409
    acc = await org.get_entity("account")
    assert acc.primary_id == "id"  # Resco Cloud names every key "id"
    name = acc.field("name")
    assert name is not None and name.max_length == 160 and name.is_primary_name
    owner = acc.field("ownerid")
    assert owner is not None and owner.type is FieldType.LOOKUP  # Resco stores owner as a lookup
    assert acc.field("versionnumber") is not None and acc.field("ignored") is None
    await org.create_field("account", FieldMeta("description", FieldType.MEMO, max_length=2000))
    await org.create_field("account", FieldMeta("statecode", FieldType.STATE))
    acc = await org.get_entity("account")
    assert acc.field("description").type is FieldType.STRING  # type: ignore[union-attr]
    assert acc.field("statecode").type is FieldType.PICKLIST  # type: ignore[union-attr]
    await org.create_field("account", FieldMeta("description", FieldType.MEMO))  # same kind: no-op
    with pytest.raises(errors.ValidationError):
        await org.create_field("account", FieldMeta("description", FieldType.INTEGER))
    with pytest.raises(errors.ValidationError):
        await org.create_field("account", FieldMeta("primarycontactid", FieldType.LOOKUP, targets=("contact",)))
    with pytest.raises(errors.ValidationError):
        await org.create_field("account", FieldMeta("x", FieldType.OTHER))
    await org.create_entity(EntityMeta("contact", primary_id="contactid", primary_name="fullname"))
    await org.create_relationship(RelationshipMeta(
        "contact_customer_accounts", RelationshipKind.ONE_TO_MANY, referenced_entity="account",
        referencing_entity="contact", referencing_attribute="parentcustomerid"))
    await org.create_relationship(RelationshipMeta(
        "contact_customer_contacts", RelationshipKind.ONE_TO_MANY, referenced_entity="contact",
        referencing_entity="contact", referencing_attribute="parentcustomerid"))
    pcid = (await org.get_entity("contact")).field("parentcustomerid")
    assert pcid is not None and pcid.targets == ("account", "contact")
    await org.create_relationship(RelationshipMeta(
        "rel_nn", RelationshipKind.MANY_TO_MANY, entity1="account", entity2="contact", intersect_entity="acc_con",
        entity1_intersect_attribute="accountid", entity2_intersect_attribute="contactid"))
    inter = await org.get_entity("acc_con")
    assert inter.is_intersect and inter.field("accountid") is not None
    assert org.requests["create_relationship"] == 3


async def test_update_field_and_entity() -> None:
    org = MemoryOrg(Product.RESCO)
    await org.create_entity(EntityMeta("thing", label="Thing"))
    await org.create_field("thing", FieldMeta("code", FieldType.STRING, label="Code", max_length=10))
    await org.update_field("thing", FieldMeta("code", FieldType.STRING, label="Code 2", max_length=20))
    code = (await org.get_entity("thing")).field("code")
    assert code is not None and (code.label, code.max_length) == ("Code 2", 20)
    with pytest.raises(errors.ValidationError):
        await org.update_field("thing", FieldMeta("code", FieldType.INTEGER))
    with pytest.raises(errors.NotFoundError):
        await org.update_field("thing", FieldMeta("nope", FieldType.STRING))
    await org.update_entity(EntityMeta("thing", label="Widget", collection_label="Widgets"))
    assert (await org.get_entity("thing")).label == "Widget"


# --- writes ----------------------------------------------------------------------------------------

async def test_upsert_merges_versions_and_owner() -> None:
    org = sales_org()
    before = org.row_version
    results = await org.upsert_many("account", [
        {"accountid": ACC1.upper(), "name": "Acme", "telephone1": "1"},
        {"accountid": ACC2, "name": "Beta"},
    ])
    assert [r.ok for r in results] == [True, True] and results[0].id == ACC1
    acc = org.get("account", ACC1)
    assert acc is not None and acc["ownerid"] == LookupValue("systemuser", DEFAULT_USER_ID)
    assert acc["createdon"] and acc["versionnumber"] == before + 1
    await org.upsert_many("account", [{"accountid": ACC1, "name": "Acme Inc"}])
    acc = org.get("account", ACC1)
    assert acc is not None and acc["name"] == "Acme Inc" and acc["telephone1"] == "1"  # merged
    assert org.version_of("account", ACC1) == before + 3


async def test_upsert_per_record_failures() -> None:
    org = sales_org()
    org.put("account", {"accountid": ACC1, "name": "Acme"})
    org.reject_when(lambda entity, r: "name too rude" if r.get("name") == "Rude" else None)
    results = await org.upsert_many("account", [
        {"accountid": ACC2, "name": "Rude"},
        {"name": "no id"},
        {"accountid": ACC1, "nonsense": 1},
        {"accountid": ACC1, "primarycontactid": LookupValue("account", ACC1)},
        {"accountid": ACC1, "primarycontactid": LookupValue("contact", CON1)},
        {"accountid": CON1, "name": "Good"},
    ])
    assert [r.ok for r in results] == [False, False, False, False, False, True]
    assert results[0].error == "name too rude" and results[0].status == 400 and not results[0].retryable
    assert results[4].status == 404
    assert org.get("account", ACC2) is None and org.get("account", CON1) is not None
    bad = await org.upsert_many("leadcompetitors", [{"leadcompetitorid": LEAD1}])
    assert not bad[0].ok


async def test_if_match_conflicts() -> None:
    org = sales_org()
    org.put("account", {"accountid": ACC1, "name": "Acme"})
    page = (await collect(org.read_pages("account", ["name"])))[0]
    etag = page.etags[ACC1]
    org.put("account", {"accountid": ACC1, "name": "Changed by a user"})
    [r] = await org.upsert_many("account", [{"accountid": ACC1, "name": "Mine"}], if_match={ACC1: etag})
    assert not r.ok and r.conflict and r.status == 412
    fresh = org.etag_of("account", ACC1)
    assert fresh is not None
    [r] = await org.upsert_many("account", [{"accountid": ACC1, "name": "Mine"}], if_match={ACC1: fresh})
    assert r.ok
    org.delete("account", ACC1)
    [r] = await org.upsert_many("account", [{"accountid": ACC1, "name": "Mine"}], if_match={ACC1: fresh})
    assert not r.ok and r.status == 404 and org.get("account", ACC1) is None


async def test_delete_clears_lookups_and_links() -> None:
    org = sales_org()
    org.put("account", {"accountid": ACC1, "name": "Acme"})
    org.put("contact", {"contactid": CON1, "lastname": "X", "parentcustomerid": LookupValue("account", ACC1)})
    org.put("lead", {"leadid": LEAD1, "subject": "s", "lastname": "L"})
    org.put("competitor", {"competitorid": COMP1, "name": "C"})
    await org.associate("leadcompetitors_association", LEAD1, COMP1)
    await org.associate("leadcompetitors_association", LEAD1, COMP1)  # idempotent
    assert org.links("leadcompetitors_association") == {(LEAD1, COMP1)}
    [row] = org.records("leadcompetitors")
    assert (row["leadid"], row["competitorid"]) == (LEAD1, COMP1)
    results = await org.delete_many("account", [ACC1, ACC2])
    assert all(r.ok for r in results)  # missing ACC2 counts as deleted
    contact = org.get("contact", CON1)
    assert contact is not None and contact["parentcustomerid"] is None
    await org.delete_many("lead", [LEAD1])
    assert org.links("leadcompetitors_association") == set() and org.records("leadcompetitors") == []
    with pytest.raises(errors.NotFoundError):
        await org.associate("leadcompetitors_association", LEAD1, COMP1)
    await org.disassociate("leadcompetitors_association", LEAD1, COMP1)  # already gone: fine


async def test_assign() -> None:
    org = sales_org()
    org.put("account", {"accountid": ACC1, "name": "Acme"})
    await org.assign("account", ACC1, LookupValue("team", DEFAULT_TEAM_ID))
    assert org.get("account", ACC1)["ownerid"] == LookupValue("team", DEFAULT_TEAM_ID)  # type: ignore[index]
    with pytest.raises(errors.ValidationError):
        await org.assign("account", ACC1, LookupValue("account", ACC1))
    with pytest.raises(errors.NotFoundError):
        await org.assign("account", ACC2, LookupValue("team", DEFAULT_TEAM_ID))


# --- reads -----------------------------------------------------------------------------------------

async def test_read_pages_paging_and_request_count() -> None:
    org = sales_org()
    ids = accounts(org, 7)
    org.reset_requests()
    pages = await collect(org.read_pages("account", ["name", "telephone1"], page_size=3))
    assert [len(p.records) for p in pages] == [3, 3, 1]
    assert [r["accountid"] for p in pages for r in p.records] == sorted(ids)
    assert set(pages[0].records[0]) == {"accountid", "name", "telephone1"}
    assert org.requests["read_pages"] == 3
    exact = await collect(org.read_pages("account", ["name"], page_size=7))
    assert [len(p.records) for p in exact] == [7]
    assert [len(p) for p in await collect(org.read_ids("account", page_size=5))] == [5, 2]
    assert await collect(org.read_pages("competitor", ["name"])) == [await anext(org.read_pages("competitor", []))]
    with pytest.raises(errors.ValidationError):
        await collect(org.read_pages("account", ["nonsense"]))


async def test_read_pages_filters() -> None:
    now = datetime(2024, 5, 10, 12, tzinfo=UTC)
    org = sales_org(now=lambda: now)
    org.put("account", {"accountid": ACC1, "name": "Alpha", "statecode": 0})
    org.put("account", {"accountid": ACC2, "name": "Beta", "statecode": 1,
                        "ownerid": LookupValue("team", DEFAULT_TEAM_ID)})
    org.put("contact", {"contactid": CON1, "lastname": "C", "parentcustomerid": LookupValue("account", ACC2)})

    async def ids(entity: str, fetch: str) -> list[str]:
        return [i for page in await collect(org.read_ids(entity, fetch_filter=fetch)) for i in page]

    active = '<fetch><entity name="account"><filter><condition attribute="statecode" operator="eq" value="0"/></filter></entity></fetch>'
    assert await ids("account", active) == [ACC1]
    mine = '<fetch><entity name="account"><filter><condition attribute="ownerid" operator="eq-userid"/></filter></entity></fetch>'
    assert await ids("account", mine) == [ACC1]
    linked = ('<fetch><entity name="contact"><link-entity name="account" from="accountid" to="parentcustomerid" '
              'alias="a"><filter><condition attribute="name" operator="like" value="b%"/></filter></link-entity>'
              '</entity></fetch>')
    assert await ids("contact", linked) == [CON1]
    assert await ids("contact", linked.replace("b%", "a%")) == []
    limited = '<fetch count="1"><entity name="account"></entity></fetch>'
    assert await ids("account", limited) == [ACC1]
    aliased = ('<fetch><entity name="contact"><filter><condition entityname="a" attribute="name" operator="eq" '
               'value="x"/></filter><link-entity name="account" from="accountid" to="parentcustomerid" alias="a"/>'
               '</entity></fetch>')
    with pytest.raises(errors.FilterError):
        await ids("contact", aliased)
    with pytest.raises(errors.FilterError):
        await ids("contact", active)  # a filter for another entity


def _flatten(pages: list[ChangePage]) -> tuple[list[str], list[str]]:
    ups = [str(r[k]) for p in pages for r in p.upserts for k in r if k.endswith("id") and k in ("accountid", "contactid")]
    return ups, [d for p in pages for d in p.deleted_ids]


async def test_read_changes_dataverse() -> None:
    org = sales_org(max_page_size=2)
    ids = accounts(org, 5)
    first = await collect(org.read_changes("account", ["name"], None))
    assert [len(p.upserts) for p in first] == [2, 2, 1]
    assert [p.token is not None for p in first] == [False, False, True]  # a delta link only at the end
    token = first[-1].token
    assert token is not None and token.kind is TokenKind.DELTA_LINK
    assert not await org.has_changes("account", token)
    org.reset_requests()
    org.put("account", {"accountid": ids[0], "name": "changed"})
    org.delete("account", ids[1])
    org.put("contact", {"contactid": CON1, "lastname": "other entity"})
    assert await org.has_changes("account", token)
    changes = await collect(org.read_changes("account", ["name"], token))
    assert org.requests["read_changes"] == 1  # O(changes), not O(table)
    [page] = changes
    assert [r["accountid"] for r in page.upserts] == [ids[0]] and page.deleted_ids == (ids[1],)
    assert page.etags[ids[0]] == org.etag_of("account", ids[0])
    assert page.token is not None
    assert await collect(org.read_changes("account", ["name"], page.token)) == [
        ChangePage(upserts=(), token=(await anext(org.read_changes("account", ["name"], page.token))).token)
    ]


async def test_read_changes_tokens_every_page_resume_safely() -> None:
    org = sales_org(max_page_size=2)
    ids = accounts(org, 2)
    token = (await collect(org.read_changes("account", ["name"], None)))[-1].token
    assert token is not None
    for i in ids:
        org.put("account", {"accountid": i, "name": "v2"})
    more = accounts(org, 4)[2:]
    pages = await collect(org.read_changes("account", ["name"], token))
    assert [len(p.upserts) for p in pages] == [2, 2]
    assert all(p.token is not None for p in pages)
    # crash after the first page: resume from its token and get exactly the rest
    resumed = await collect(org.read_changes("account", ["name"], pages[0].token))
    assert [r["accountid"] for p in resumed for r in p.upserts] == more


async def test_expired_tokens_require_a_full_resync() -> None:
    org = sales_org()
    accounts(org, 1)
    token = (await collect(org.read_changes("account", ["name"], None)))[-1].token
    assert token is not None
    org.expire_tokens()
    with pytest.raises(errors.FullResyncRequired):
        await collect(org.read_changes("account", ["name"], token))
    with pytest.raises(errors.FullResyncRequired):
        await org.has_changes("account", token)
    fresh = (await collect(org.read_changes("account", ["name"], None)))[-1].token
    assert fresh is not None and not await org.has_changes("account", fresh)


async def test_resco_changes_are_row_versions_without_tombstones() -> None:
    org = sales_org(Product.RESCO, max_page_size=2)
    ids = accounts(org, 3)
    pages = await collect(org.read_changes("account", ["name"], None))
    assert all(p.token is not None and p.token.kind is TokenKind.ROW_VERSION for p in pages)
    org.delete("account", ids[0])
    org.put("account", {"accountid": ids[1], "name": "x"})
    changes = await collect(org.read_changes("account", ["name"], pages[-1].token))
    assert [r["accountid"] for p in changes for r in p.upserts] == [ids[1]]
    assert all(not p.deleted_ids for p in changes)


async def test_intersect_rows_are_readable_changes() -> None:
    org = sales_org()
    org.put("lead", {"leadid": LEAD1, "subject": "s", "lastname": "L"})
    org.put("competitor", {"competitorid": COMP1, "name": "C"})
    token = (await collect(org.read_changes("leadcompetitors", ["leadid", "competitorid"], None)))[-1].token
    assert token is not None
    await org.associate("leadcompetitors_association", LEAD1, COMP1)
    [page] = await collect(org.read_changes("leadcompetitors", ["leadid", "competitorid"], token))
    [row] = page.upserts
    assert (row["leadid"], row["competitorid"]) == (LEAD1, COMP1)
    await org.disassociate("leadcompetitors_association", LEAD1, COMP1)
    [page2] = await collect(org.read_changes("leadcompetitors", [], page.token))
    assert page2.deleted_ids == (row["leadcompetitorid"],)


# --- fault injection -------------------------------------------------------------------------------

async def test_fail_next_offline_and_throttling() -> None:
    org = sales_org()
    accounts(org, 3)
    org.fail_next(1, errors.ServerError("boom", status=500), method="upsert_many")
    await org.whoami()  # another method is not affected
    with pytest.raises(errors.ServerError):
        await org.upsert_many("account", [{"accountid": ACC1, "name": "x"}])
    assert org.get("account", ACC1) is None
    assert (await org.upsert_many("account", [{"accountid": ACC1, "name": "x"}]))[0].ok
    # a fault in the middle of a paged read
    it = org.read_pages("account", ["name"], page_size=2)
    assert len((await anext(it)).records) == 2
    org.fail_next(1, errors.NetworkError("reset"))
    with pytest.raises(errors.NetworkError):
        await anext(it)
    org.fail_next(2, errors.ThrottledError("slow down", retry_after=30, status=429))
    for _ in range(2):
        with pytest.raises(errors.ThrottledError):
            await org.get_entity("account")
    state = org.throttle_state()
    assert state.throttle_events == 2 and state.throttled_until is not None
    await org.get_entity("account")
    org.offline = True
    with pytest.raises(errors.NetworkError):
        await org.list_entities()
    org.offline = False
    assert org.requests["get_entity"] == 3 and org.requests["list_entities"] == 1
