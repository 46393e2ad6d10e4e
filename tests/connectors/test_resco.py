"""Resco Cloud connector against respx-mocked OData, REST data and metadata services."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import respx

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.http.retry import RetryPolicy
from crmsync_desktop.sync.connectors.resco import RescoConnector, RescoSettings
from crmsync_desktop.sync.connectors.types import (
    ChangeToken,
    EntityMeta,
    FieldMeta,
    FieldType,
    LookupValue,
    OptionMeta,
    Product,
    RelationshipKind,
    RelationshipMeta,
    TokenKind,
)
from tests.connectors.conftest import FakeClock

pytestmark = pytest.mark.asyncio
BASE = "https://resco.example.com"
ODATA = f"{BASE}/odata/v4/acme/"
REST = f"{BASE}/rest/v1/data/acme/"
META = f"{BASE}/rest/v1/metadata/acme/"
I1, I2, I3 = "00000000-0000-0000-0000-0000000000a1", "00000000-0000-0000-0000-0000000000a2", "00000000-0000-0000-0000-0000000000a3"
ACC = "00000000-0000-0000-0000-0000000000bb"

CONTACT = {"LogicalName": "contact", "DisplayName": "Contact", "PrimaryIdAttribute": "id", "PrimaryNameAttribute": "fullname",
           "OwnershipType": "UserOwned", "Attributes": [
               {"LogicalName": "id", "Type": "UniqueIdentifier", "IsPrimaryId": True},
               {"LogicalName": "fullname", "Type": "String", "MaxLength": 160, "IsPrimaryName": True},
               {"LogicalName": "parentcustomerid", "Type": "Lookup", "Targets": ["account", "contact"]},
               {"LogicalName": "preferredcontactmethodcode", "Type": "Picklist", "Options": [{"Value": 1, "Label": "Any"}]},
               {"LogicalName": "versionnumber", "Type": "RowVersion"}]}


@pytest.fixture
def router() -> respx.MockRouter:
    r = respx.MockRouter(assert_all_called=False)
    r.get(f"{META}Entities('contact')").respond(200, json=CONTACT)
    return r


@pytest_asyncio.fixture
async def resco(router: respx.MockRouter, clock: FakeClock) -> AsyncIterator[RescoConnector]:
    connector = RescoConnector(RescoSettings(base_url=BASE, organization="acme", user="admin@acme", page_size=2),
                               "p@ss", transport=httpx.MockTransport(router.async_handler), clock=clock,
                               policy=RetryPolicy(max_attempts=4, rng=random.Random(3)))
    yield connector
    await connector.aclose()


async def test_basic_auth_whoami_and_capabilities(resco: RescoConnector, router: respx.MockRouter) -> None:
    assert isinstance(resco, Connector)
    route = router.post(f"{REST}WhoAmI").respond(200, json={"SystemUserId": "U", "BusinessUnitId": "B", "OrganizationId": "O"})
    me = await resco.whoami()
    assert (me.user_id, me.business_unit_id, me.organization_id, me.organization_name) == ("u", "b", "o", "acme")
    expected = "Basic " + base64.b64encode(b"admin@acme:p@ss").decode()
    assert route.calls[0].request.headers["Authorization"] == expected
    caps = await resco.capabilities(["contact"])
    assert caps.product is Product.RESCO and caps.max_page_size == 2 and caps.change_tracking == {"contact": False}


async def test_401_is_an_auth_error_without_retry(resco: RescoConnector, router: respx.MockRouter) -> None:
    route = router.post(f"{REST}WhoAmI").respond(401)
    with pytest.raises(errors.AuthError):
        await resco.whoami()
    assert route.call_count == 1


async def test_get_max_row_version_probe(resco: RescoConnector, router: respx.MockRouter) -> None:
    route = router.post(f"{REST}GetMaxRowVersion")
    route.side_effect = [httpx.Response(200, json=100), httpx.Response(200, json={"value": 101})]
    token = ChangeToken(TokenKind.ROW_VERSION, "100")
    assert await resco.has_changes("contact", token) is False
    assert await resco.has_changes("contact", token) is True


async def test_pages_follow_next_link_with_lookups_and_etags(resco: RescoConnector, router: respx.MockRouter) -> None:
    nxt = f"{ODATA}contact?$select=id,fullname,parentcustomerid&$skiptoken=2"
    router.get(f"{ODATA}contact", params={"$skiptoken": "2"}).respond(200, json={"value": [{"id": I3, "fullname": "C"}]})
    first = router.get(f"{ODATA}contact").respond(200, json={"value": [
        {"@odata.etag": 'W/"7"', "id": I1, "fullname": "A", "parentcustomerid": ACC,
         "parentcustomerid@Microsoft.Dynamics.CRM.lookuplogicalname": "account"},
        {"id": I2, "fullname": "B", "parentcustomerid": None}], "@odata.nextLink": nxt})
    pages = [p async for p in resco.read_pages("contact", ["fullname", "parentcustomerid"])]
    assert [[r["id"] for r in p.records] for p in pages] == [[I1, I2], [I3]]
    assert pages[0].records[0]["parentcustomerid"] == LookupValue("account", ACC)
    assert pages[0].etags == {I1: 'W/"7"'}
    assert "odata.maxpagesize=2" in first.calls[0].request.headers["Prefer"]


async def test_row_version_changes_hand_out_a_token_per_page(resco: RescoConnector, router: respx.MockRouter) -> None:
    route = router.get(f"{ODATA}contact")
    route.side_effect = [httpx.Response(200, json={"value": [{"id": I1, "fullname": "A", "versionnumber": 205}]})]
    pages = [p async for p in resco.read_changes("contact", ["fullname"], ChangeToken(TokenKind.ROW_VERSION, "200"))]
    assert pages[0].token == ChangeToken(TokenKind.ROW_VERSION, "205") and pages[0].upserts == ({"id": I1, "fullname": "A"},)
    params = route.calls[0].request.url.params
    assert params["$filter"] == "versionnumber gt 200" and params["$orderby"] == "versionnumber asc"
    with pytest.raises(errors.FullResyncRequired):
        [p async for p in resco.read_changes("contact", [], ChangeToken(TokenKind.DELTA_LINK, "x"))]


async def test_fetch_filter_goes_through_rest_fetch_with_paging(resco: RescoConnector, router: respx.MockRouter) -> None:
    bodies: list[str] = []

    def fetch(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content.decode())
        assert request.headers["Content-Type"] == "application/xml"
        if len(bodies) == 1:
            return httpx.Response(200, json={"value": [{"id": I1}, {"id": I2}], "@Microsoft.Dynamics.CRM.morerecords": True,
                                             "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie": '<cookie pagenumber="2" pagingcookie="%253ccookie%253e" />'})
        return httpx.Response(200, json={"value": [{"id": I3}]})

    router.post(f"{REST}Fetch").mock(side_effect=fetch)
    flt = '<fetch><entity name="contact"><filter><condition attribute="statecode" operator="eq" value="0"/></filter></entity></fetch>'
    assert [ids async for ids in resco.read_ids("contact", fetch_filter=flt)] == [[I1, I2], [I3]]
    assert 'page="2"' in bodies[1] and 'paging-cookie="&lt;cookie&gt;"' in bodies[1]


async def test_upsert_updates_or_creates_and_isolates_failures(resco: RescoConnector, router: respx.MockRouter) -> None:
    router.patch(f"{ODATA}contact('{I1}')").respond(204)
    router.patch(f"{ODATA}contact('{I2}')").respond(404)
    create = router.post(f"{ODATA}contact").respond(201, json={})
    router.patch(f"{ODATA}contact('{I3}')").respond(400, json={"error": {"code": "", "message": "fullname too long"}})
    results = await resco.upsert_many("contact", [
        {"id": I1, "fullname": "A", "parentcustomerid": LookupValue("account", ACC)},
        {"id": I2, "fullname": "B"},
        {"id": I3, "fullname": "x" * 500},
    ])
    assert [r.ok for r in results] == [True, True, False]
    assert "fullname too long" in (results[2].error or "")
    assert json.loads(create.calls[0].request.content) == {"id": I2, "fullname": "B"}
    patched = next(c.request for c in router.calls if c.request.url.path.endswith(f"('{I1}')"))
    assert json.loads(patched.content) == {"fullname": "A", "parentcustomerid@odata.bind": f"account('{ACC}')"}


async def test_etag_conflict_and_deletes(resco: RescoConnector, router: respx.MockRouter) -> None:
    router.patch(f"{ODATA}contact('{I1}')").respond(412)
    (result,) = await resco.upsert_many("contact", [{"id": I1}], if_match={I1: 'W/"3"'})
    assert result.conflict and not result.ok
    assert router.calls[-1].request.headers["If-Match"] == 'W/"3"'
    router.delete(f"{ODATA}contact('{I1}')").respond(204)
    router.delete(f"{ODATA}contact('{I2}')").respond(404)
    assert all(r.ok for r in await resco.delete_many("contact", [I1, I2]))


async def test_throttling_and_503_follow_the_shared_rules(resco: RescoConnector, router: respx.MockRouter, clock: FakeClock) -> None:
    route = router.get(f"{ODATA}contact")
    route.side_effect = [httpx.Response(429, headers={"Retry-After": "4"}), httpx.Response(503),
                         httpx.Response(200, json={"value": []})]
    pages = [p async for p in resco.read_pages("contact", [])]
    assert pages[0].records == ()
    assert clock.sleeps[0] == 4.0 and len(clock.sleeps) == 2


async def test_metadata_read_and_provisioning(resco: RescoConnector, router: respx.MockRouter) -> None:
    contact = await resco.get_entity("contact")
    assert contact.primary_id == "id" and contact.field("parentcustomerid").targets == ("account", "contact")  # type: ignore[union-attr]
    assert contact.field("preferredcontactmethodcode").options == (OptionMeta(1, "Any"),)  # type: ignore[union-attr]
    router.get(f"{META}Entities").respond(200, json={"value": [CONTACT]})
    assert [e.logical_name for e in await resco.list_entities()] == ["contact"]
    create_entity = router.post(f"{META}Entities").respond(409)  # already there: provisioning is re-runnable
    await resco.create_entity(EntityMeta("new_visit", label="Visit", primary_name="new_name"))
    assert json.loads(create_entity.calls[0].request.content)["PrimaryNameAttribute"] == "new_name"
    create_field = router.post(f"{META}Entities('new_visit')/Attributes").respond(204)
    await resco.create_field("new_visit", FieldMeta("new_notes", FieldType.MEMO, label="Notes"))
    assert json.loads(create_field.calls[0].request.content) == {
        "LogicalName": "new_notes", "DisplayName": "Notes", "Type": "String", "IsRequired": False, "MaxLength": 1_048_576}
    rel = RelationshipMeta("new_visit_contact", RelationshipKind.MANY_TO_MANY, entity1="new_visit", entity2="contact",
                           intersect_entity="new_visit_contact", entity1_navigation="new_visit_contact")
    router.post(f"{META}Relationships").respond(204)
    await resco.create_relationship(rel)
    link = router.post(f"{ODATA}new_visit('{I1}')/new_visit_contact/$ref").respond(204)
    await resco.associate("new_visit_contact", I1, I2)
    assert json.loads(link.calls[0].request.content) == {"@odata.id": f"{ODATA}contact('{I2}')"}
    unlink = router.delete(f"{ODATA}new_visit('{I1}')/new_visit_contact/$ref").respond(204)
    await resco.disassociate("new_visit_contact", I1, I2)
    assert unlink.calls[0].request.url.params["$id"] == f"{ODATA}contact('{I2}')"
