"""The Dataverse connector against the emulated Dataverse organization and Entra ID, over HTTPS."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from typing import Any

import httpx
import pytest

from crmsync_desktop import errors
from crmsync_desktop.auth.msal_provider import DeviceCodeLogin, DeviceCodePrompt, MsalTokenProvider
from crmsync_desktop.emulator.runner import EmulatorPair
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.dataverse import DataverseConnector
from crmsync_desktop.sync.connectors.types import (
    BulkMessage,
    ChangeToken,
    FieldType,
    LookupValue,
    RelationshipKind,
    TokenKind,
)
from tests.integration.conftest import DataverseAdmin, dataverse

pytestmark = pytest.mark.asyncio


def fetch_in(entity: str, attribute: str, values: list[str]) -> str:
    items = "".join(f"<value>{v}</value>" for v in values)
    return f'<fetch><entity name="{entity}"><filter><condition attribute="{attribute}" operator="in">{items}</condition></filter></entity></fetch>'


async def read_all(conn: Connector, entity: str, fields: list[str], **kw: Any) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    pages = 0
    async for page in conn.read_pages(entity, fields, **kw):
        records.extend(page.records)
        pages += 1
    return records, pages


async def by_id(conn: Connector, entity: str, primary: str, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
    records, _ = await read_all(conn, entity, fields, fetch_filter=fetch_in(entity, primary, ids))
    return {str(r[primary]): r for r in records}


async def drain_changes(conn: Connector, entity: str, fields: list[str], token: ChangeToken | None) -> tuple[list[Any], ChangeToken]:
    pages = [p async for p in conn.read_changes(entity, fields, token)]
    final = [p.token for p in pages if p.token is not None]
    assert final, "the last page must carry a token"
    return pages, final[-1]


# -- sign-in ---------------------------------------------------------------------------------------
async def test_client_secret_sign_in_and_whoami(dv: DataverseConnector, emu: EmulatorPair) -> None:
    assert isinstance(dv, Connector)
    me = await dv.whoami()
    assert me.organization_name == "Contoso"
    assert me.organization_id == emu.dataverse_org.org_id.lower()
    assert me.business_unit_id == emu.dataverse_org.root_business_unit_id.lower()
    users, _ = await read_all(dv, "systemuser", ["applicationid", "azureactivedirectoryobjectid"],
                              fetch_filter=fetch_in("systemuser", "systemuserid", [me.user_id]))
    assert users[0]["applicationid"] == emu.client_id  # the app user provisioned for the client id


async def test_device_code_sign_in_approved_through_the_emulator(
    emu: EmulatorPair, tls: ssl.SSLContext, admin: httpx.Client
) -> None:
    prompts: list[DeviceCodePrompt] = []

    def approve(prompt: DeviceCodePrompt) -> None:
        prompts.append(prompt)
        admin.post(f"{emu.identity_url}/_emulator/devicecode/approve",
                   json={"user_code": prompt.user_code, "username": emu.user_upn}).raise_for_status()

    provider = MsalTokenProvider(DeviceCodeLogin(emu.public_client_id, approve), emu.authority, verify=tls)
    try:
        with pytest.raises(errors.AuthRequiredError):
            await provider.get_token([emu.dataverse_scope])  # nobody signed in yet
        await provider.sign_in([emu.dataverse_scope])
        assert prompts and prompts[0].verification_uri.startswith(emu.identity_url)
        async with dataverse(emu, provider) as conn:
            me = await conn.whoami()
            users, _ = await read_all(conn, "systemuser", ["domainname"],
                                      fetch_filter=fetch_in("systemuser", "systemuserid", [me.user_id]))
        assert users[0]["domainname"] == emu.user_upn
    finally:
        provider.close()


async def test_401_after_token_expiry_refreshes_once(emu: EmulatorPair, tokens: MsalTokenProvider) -> None:
    async with dataverse(emu, tokens) as conn:
        await conn.whoami()
        stale = await tokens.get_token([emu.dataverse_scope])
        provider = emu.provider
        assert provider is not None
        real_clock = provider.clock
        provider.clock = lambda: real_clock() + 7200  # every token issued so far is now expired
        try:
            await conn.whoami()  # 401 -> one refresh -> a token valid on the server's clock
            fresh = await tokens.get_token([emu.dataverse_scope])
        finally:
            provider.clock = real_clock
    assert fresh != stale


# -- metadata ----------------------------------------------------------------------------------------
async def test_entities_fields_types_targets_and_options(dv: DataverseConnector) -> None:
    names = {e.logical_name for e in await dv.list_entities()}
    assert {"account", "contact", "lead", "competitor", "systemuser", "team"} <= names
    contact = await dv.get_entity("contact")
    assert (contact.primary_id, contact.primary_name, contact.entity_set_name) == ("contactid", "fullname", "contacts")
    assert contact.change_tracking
    parent = contact.field("parentcustomerid")
    assert parent is not None and parent.type is FieldType.LOOKUP and set(parent.targets) == {"account", "contact"}
    owner = contact.field("ownerid")
    assert owner is not None and owner.type is FieldType.OWNER
    state = contact.field("statecode")
    assert state is not None and state.type is FieldType.STATE and {o.value for o in state.options} >= {0, 1}
    email = contact.field("emailaddress1")
    assert email is not None and email.type is FieldType.STRING and email.max_length
    assert contact.field("contactid").is_primary_id  # type: ignore[union-attr]
    account = await dv.get_entity("account")
    assert any(f.type is FieldType.PICKLIST and f.options for f in account.fields)
    caps = await dv.capabilities(["account"])
    assert BulkMessage.UPSERT_MULTIPLE in caps.bulk_messages["account"] and caps.change_tracking["account"]


async def test_relationships_one_to_many_and_many_to_many(dv: DataverseConnector) -> None:
    lead = await dv.list_relationships("lead")
    n2n = [r for r in lead if r.kind is RelationshipKind.MANY_TO_MANY]
    assert any(r.schema_name == "leadcompetitors_association" and r.intersect_entity == "leadcompetitors" and {r.entity1, r.entity2} == {"lead", "competitor"}
               and r.entity1_navigation and r.intersect_entity for r in n2n)
    contact = await dv.list_relationships("contact")
    m2o = {(r.referencing_attribute, r.referenced_entity): r for r in contact
           if r.kind is RelationshipKind.ONE_TO_MANY and r.referencing_entity == "contact"}
    assert m2o[("parentcustomerid", "account")].referencing_navigation == "parentcustomerid_account"
    assert any(r.referenced_entity == "contact" and r.referencing_entity != "contact" for r in contact)  # 1:N from contact


# -- reads ---------------------------------------------------------------------------------------------
async def test_read_pages_follows_next_links(dv: DataverseConnector, emu: EmulatorPair) -> None:
    records, pages = await read_all(dv, "contact", ["fullname", "parentcustomerid", "emailaddress1"], page_size=25)
    total = emu.dataverse_org.count("contact")
    assert len(records) == total and total > 25 and pages == -(-total // 25)
    assert len({r["contactid"] for r in records}) == total
    lookups = [r["parentcustomerid"] for r in records if r["parentcustomerid"] is not None]
    assert lookups and all(isinstance(v, LookupValue) and v.entity in ("account", "contact") for v in lookups)


async def test_fetchxml_filter_pages_with_paging_cookies(dv: DataverseConnector) -> None:
    everything, _ = await read_all(dv, "contact", ["fullname", "statecode"])
    expected = {r["contactid"] for r in everything if "a" in str(r["fullname"]).lower()}
    fetch = ('<fetch><entity name="contact"><filter type="and">'
             '<condition attribute="fullname" operator="like" value="%a%"/></filter></entity></fetch>')
    records, pages = await read_all(dv, "contact", ["fullname"], fetch_filter=fetch, page_size=10)
    assert {r["contactid"] for r in records} == expected and len(records) == len(expected)
    assert pages >= 3


async def test_read_ids_with_and_without_filter(dv: DataverseConnector, emu: EmulatorPair) -> None:
    ids = [i async for page in dv.read_ids("account", page_size=10) for i in page]
    assert len(ids) == len(set(ids)) == emu.dataverse_org.count("account")
    some = ids[:7]
    filtered = [i async for page in dv.read_ids("account", fetch_filter=fetch_in("account", "accountid", some), page_size=3)
                for i in page]
    assert sorted(filtered) == sorted(some)


async def test_change_tracking_cycle_with_tombstones_and_expiry(dv: DataverseConnector, dv_admin: DataverseAdmin) -> None:
    fields = ["name", "accountnumber"]
    pages, token = await drain_changes(dv, "account", fields, None)
    assert token.kind is TokenKind.DELTA_LINK and sum(len(p.upserts) for p in pages) > 0
    assert all(p.token is None for p in pages[:-1])
    assert await dv.has_changes("account", token) is False

    new_ids = [str(uuid.uuid4()) for _ in range(3)]
    results = await dv.upsert_many("account", [{"accountid": i, "name": f"Delta {n}"} for n, i in enumerate(new_ids)])
    assert all(r.ok for r in results)
    await dv.upsert_many("account", [{"accountid": new_ids[0], "name": "Delta renamed"}])
    assert all(r.ok for r in await dv.delete_many("account", [new_ids[2]]))
    assert await dv.has_changes("account", token) is True

    pages, token2 = await drain_changes(dv, "account", fields, token)
    upserts = {r["accountid"]: r for p in pages for r in p.upserts}
    deleted = {i for p in pages for i in p.deleted_ids}
    assert upserts[new_ids[0]]["name"] == "Delta renamed" and new_ids[1] in upserts
    assert new_ids[2] in deleted and new_ids[2] not in upserts
    assert token2 != token and await dv.has_changes("account", token2) is False

    dv_admin.call("POST", "expire-delta-tokens")
    with pytest.raises(errors.FullResyncRequired):
        await drain_changes(dv, "account", fields, token2)
    with pytest.raises(errors.FullResyncRequired):
        await dv.has_changes("account", token2)


# -- writes ---------------------------------------------------------------------------------------------
async def test_upsert_multiple_creates_then_updates(dv: DataverseConnector) -> None:
    ids = [str(uuid.uuid4()) for _ in range(250)]  # more than one UpsertMultiple chunk (200)
    parent = ids[0]
    records = [{"accountid": i, "name": f"Bulk {n}", "accountnumber": f"BULK-{i[:8]}",
                "parentaccountid": LookupValue("account", parent) if n else None} for n, i in enumerate(ids)]
    assert all(r.ok for r in await dv.upsert_many("account", records))
    assert all(r.ok for r in await dv.upsert_many("account", [{"accountid": i, "name": "Bulk updated"} for i in ids[:5]]))
    got = await by_id(dv, "account", "accountid", ids[:10], ["name", "parentaccountid"])
    assert {got[i]["name"] for i in ids[:5]} == {"Bulk updated"} and got[ids[7]]["name"] == "Bulk 7"
    assert got[ids[7]]["parentaccountid"] == LookupValue("account", parent)
    assert await dv.delete_many("account", ids) == [r for r in await dv.delete_many("account", ids)]  # idempotent


async def test_conditional_upserts_go_through_batch_and_report_conflicts(dv: DataverseConnector) -> None:
    ids = [str(uuid.uuid4()) for _ in range(4)]
    assert all(r.ok for r in await dv.upsert_many("account", [{"accountid": i, "name": "etag"} for i in ids]))
    etags = {}
    async for page in dv.read_pages("account", ["name"], fetch_filter=fetch_in("account", "accountid", ids)):
        etags.update(page.etags)
    assert set(etags) == set(ids)
    await dv.upsert_many("account", [{"accountid": ids[0], "name": "changed by someone"}])  # ids[0] etag is stale now
    results = await dv.upsert_many("account", [{"accountid": i, "name": "mine"} for i in ids], if_match=etags)
    assert [r.ok for r in results] == [False, True, True, True]
    assert results[0].conflict and results[0].status == 412
    got = await by_id(dv, "account", "accountid", ids, ["name"])
    assert [got[i]["name"] for i in ids] == ["changed by someone", "mine", "mine", "mine"]
    await dv.delete_many("account", ids)


@pytest.mark.parametrize("conditional", [False, True], ids=["UpsertMultiple", "batch"])
async def test_one_bad_record_does_not_stop_the_others(dv: DataverseConnector, conditional: bool) -> None:
    ids = [str(uuid.uuid4()) for _ in range(12)]
    records = [{"accountid": i, "name": f"Good {n}"} for n, i in enumerate(ids)]
    records[5]["name"] = "x" * 5000  # longer than account.name allows
    if conditional:
        await dv.upsert_many("account", [{"accountid": i, "name": "before"} for i in ids])
    if_match = {i: "*" for i in ids} if conditional else None
    results = await dv.upsert_many("account", records, if_match=if_match)
    assert [r.ok for r in results] == [n != 5 for n in range(12)]
    assert results[5].error and results[5].status == 400 and not results[5].retryable
    got = await by_id(dv, "account", "accountid", ids, ["name"])
    assert got[ids[0]]["name"] == "Good 0" and got[ids[11]]["name"] == "Good 11"
    assert (ids[5] in got) is conditional
    await dv.delete_many("account", ids)


async def test_delete_many_counts_missing_records_as_deleted(dv: DataverseConnector) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    await dv.upsert_many("account", [{"accountid": i, "name": "to delete"} for i in ids])
    results = await dv.delete_many("account", [*ids, str(uuid.uuid4())])
    assert all(r.ok for r in results) and len(results) == 6
    assert await by_id(dv, "account", "accountid", ids, ["name"]) == {}


async def test_associate_disassociate_and_assign(dv: DataverseConnector) -> None:
    lead_id = str(uuid.uuid4())
    competitor_id = str(uuid.uuid4())
    assert (await dv.upsert_many("lead", [{"leadid": lead_id, "lastname": "Linked", "subject": "N:N"}]))[0].ok
    assert (await dv.upsert_many("competitor", [{"competitorid": competitor_id, "name": "Rival"}]))[0].ok

    async def linked() -> list[str]:
        body = await dv.http.get_json(f"leads({lead_id})/leadcompetitors_association", params={"$select": "competitorid"})
        return [r["competitorid"] for r in body["value"]]

    rel = next(r for r in await dv.list_relationships("lead") if r.schema_name == "leadcompetitors_association")
    first, second = (lead_id, competitor_id) if rel.entity1 == "lead" else (competitor_id, lead_id)
    await dv.associate("leadcompetitors_association", first, second)
    await dv.associate("leadcompetitors_association", first, second)  # idempotent
    assert await linked() == [competitor_id]
    await dv.disassociate("leadcompetitors_association", first, second)
    await dv.disassociate("leadcompetitors_association", first, second)  # idempotent
    assert await linked() == []

    me = await dv.whoami()
    users = [i async for page in dv.read_ids("systemuser") for i in page if i != me.user_id]
    await dv.assign("lead", lead_id, LookupValue("systemuser", users[0]))
    got = await by_id(dv, "lead", "leadid", [lead_id], ["ownerid"])
    assert got[lead_id]["ownerid"] == LookupValue("systemuser", users[0])
    with pytest.raises(errors.NotFoundError):
        await dv.assign("lead", str(uuid.uuid4()), LookupValue("systemuser", users[0]))  # never creates
    await dv.delete_many("lead", [lead_id])
    await dv.delete_many("competitor", [competitor_id])


# -- service protection and faults ------------------------------------------------------------------------
async def test_429_waits_retry_after_and_every_call_succeeds(dv: DataverseConnector, dv_admin: DataverseAdmin) -> None:
    await dv.get_entity("account")  # metadata cached before the limit is tiny
    dv_admin.call("PATCH", "limits", {"enabled": True, "requests_per_window": 4, "window_seconds": 1.0})
    started = time.monotonic()
    results = await asyncio.gather(*(dv.whoami() for _ in range(6)))
    elapsed = time.monotonic() - started
    assert len(results) == 6
    state = dv.throttle_state()
    assert state.throttle_events >= 1
    assert elapsed >= 0.9  # the Retry-After (the window) was waited for, not hammered through


async def test_5xx_and_dropped_connections_are_retried_for_idempotent_calls(
    dv: DataverseConnector, dv_admin: DataverseAdmin, emu: EmulatorPair
) -> None:
    await dv.get_entity("contact")
    dv_admin.call("PATCH", "faults", {"error_rate": 0.25, "error_status": 503, "drop_rate": 0.15, "seed": 11})
    records, _ = await read_all(dv, "contact", ["fullname"], page_size=20)
    assert len(records) == emu.dataverse_org.count("contact")
    ids = [str(uuid.uuid4()) for _ in range(30)]
    dv_admin.call("PATCH", "faults", {"error_rate": 0.2, "drop_rate": 0.1, "seed": 12})
    results = await dv.upsert_many("account", [{"accountid": i, "name": "through faults"} for i in ids])
    assert all(r.ok for r in results)
    dv_admin.call("DELETE", "faults")
    assert len(await by_id(dv, "account", "accountid", ids, ["name"])) == 30
    counts = dv_admin.config()
    assert counts["faults"]["error_rate"] == 0
    await dv.delete_many("account", ids)


async def test_non_idempotent_failure_is_not_retried(dv: DataverseConnector, dv_admin: DataverseAdmin) -> None:
    await dv.get_entity("account")
    dv_admin.call("PATCH", "faults", {"error_rate": 1.0, "error_status": 500})
    with pytest.raises(errors.ServerError):
        await dv.http.request("POST", "accounts", json_body={"name": "never twice"})
