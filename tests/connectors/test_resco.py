"""Resco Cloud connector against respx-mocked OData, REST data (XML) and metadata services.

The shapes are the agreed assumptions of docs/emulator.md, "Resco Cloud".
"""

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
    BulkMessage,
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

CONTACT = {"name": "contact", "display_name": "Contact", "primary_name": "fullname", "system": False, "fields": [
    {"name": "id", "type": "uniqueidentifier", "system": True},
    {"name": "fullname", "type": "string", "max_length": 160},
    {"name": "parentcustomerid", "type": "lookup", "targets": ["account", "contact"]},
    {"name": "preferredcontactmethodcode", "type": "picklist", "options": [{"value": 1, "label": "Any"}]},
    {"name": "ownerid", "type": "lookup", "targets": ["systemuser"], "system": True},
    {"name": "versionnumber", "type": "rowversion", "system": True}]}


def xml(text: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=text.encode(), headers={"Content-Type": "application/xml"})


@pytest.fixture
def router() -> respx.MockRouter:
    r = respx.MockRouter(assert_all_called=False)
    r.get(f"{META}entities/contact").respond(200, json=CONTACT)
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
    route = router.post(f"{REST}WhoAmI").mock(return_value=xml(
        "<WhoAmIResponse><SystemUserId>U</SystemUserId><OrganizationId>O</OrganizationId>"
        "<BusinessUnitId>B</BusinessUnitId><OrganizationName>Acme</OrganizationName></WhoAmIResponse>"))
    me = await resco.whoami()
    assert (me.user_id, me.business_unit_id, me.organization_id, me.organization_name) == ("u", "b", "o", "Acme")
    expected = "Basic " + base64.b64encode(b"admin@acme:p@ss").decode()
    assert route.calls[0].request.headers["Authorization"] == expected
    assert route.calls[0].request.headers["Content-Type"].startswith("application/xml")
    caps = await resco.capabilities(["contact"])
    assert caps.product is Product.RESCO and caps.max_page_size == 2 and caps.change_tracking == {"contact": True}
    assert BulkMessage.UPSERT_MULTIPLE in caps.bulk_messages["contact"]


async def test_401_is_an_auth_error_without_retry(resco: RescoConnector, router: respx.MockRouter) -> None:
    route = router.post(f"{REST}WhoAmI").respond(401)
    with pytest.raises(errors.AuthError):
        await resco.whoami()
    assert route.call_count == 1


async def test_get_max_row_version_probe_is_per_entity(resco: RescoConnector, router: respx.MockRouter) -> None:
    route = router.post(f"{REST}GetMaxRowVersion")
    route.side_effect = [xml("<GetMaxRowVersionResponse><RowVersion>100</RowVersion></GetMaxRowVersionResponse>"),
                         xml("<GetMaxRowVersionResponse><RowVersion>101</RowVersion></GetMaxRowVersionResponse>")]
    token = ChangeToken(TokenKind.ROW_VERSION, "100")
    assert await resco.has_changes("contact", token) is False
    assert await resco.has_changes("contact", token) is True
    assert b"<EntityName>contact</EntityName>" in route.calls[0].request.content


async def test_pages_follow_next_link_with_lookups_and_etags(resco: RescoConnector, router: respx.MockRouter) -> None:
    nxt = f"{ODATA}contact?$select=id,fullname,parentcustomerid&$skiptoken=2"
    router.get(f"{ODATA}contact", params={"$skiptoken": "2"}).respond(200, json={"value": [{"id": I3, "fullname": "C"}]})
    first = router.get(f"{ODATA}contact").respond(200, json={"value": [
        {"@odata.etag": 'W/"7"', "id": I1, "fullname": "A", "parentcustomerid": ACC,
         "parentcustomerid@resco.lookuplogicalname": "account"},
        {"id": I2, "fullname": "B", "parentcustomerid": None}], "@odata.nextLink": nxt})
    pages = [p async for p in resco.read_pages("contact", ["fullname", "parentcustomerid"])]
    assert [[r["id"] for r in p.records] for p in pages] == [[I1, I2], [I3]]
    assert pages[0].records[0]["parentcustomerid"] == LookupValue("account", ACC)
    assert pages[0].etags == {I1: 'W/"7"'}
    assert "odata.maxpagesize=2" in first.calls[0].request.headers["Prefer"]


async def test_row_version_changes_with_tombstones_and_a_token_per_page(resco: RescoConnector, router: respx.MockRouter) -> None:
    gone = router.post(f"{REST}GetDeletedRecords").mock(return_value=xml(
        f'<DeletedRecords MaxRowVersion="210"><DeletedRecord EntityName="contact" Id="{I3.upper()}" RowVersion="207" '
        'DeletedOn="2026-01-01T00:00:00Z"/></DeletedRecords>'))
    route = router.get(f"{ODATA}contact")
    route.side_effect = [
        httpx.Response(200, json={"value": [{"id": I1, "fullname": "A", "versionnumber": 205},
                                            {"id": I2, "fullname": "B", "versionnumber": 206}]}),
        httpx.Response(200, json={"value": []}),
    ]
    pages = [p async for p in resco.read_changes("contact", ["fullname"], ChangeToken(TokenKind.ROW_VERSION, "200"))]
    assert [p.token for p in pages] == [ChangeToken(TokenKind.ROW_VERSION, "206"), ChangeToken(TokenKind.ROW_VERSION, "210")]
    assert pages[0].upserts == ({"id": I1, "fullname": "A"}, {"id": I2, "fullname": "B"}) and pages[0].deleted_ids == (I3,)
    assert b"<RowVersion>200</RowVersion>" in gone.calls[0].request.content
    params = route.calls[1].request.url.params
    assert params["$filter"] == "versionnumber gt 206 and versionnumber le 210" and params["$orderby"] == "versionnumber asc"
    with pytest.raises(errors.FullResyncRequired):
        [p async for p in resco.read_changes("contact", [], ChangeToken(TokenKind.DELTA_LINK, "x"))]


async def test_fetch_filter_goes_through_rest_fetch_with_paging(resco: RescoConnector, router: respx.MockRouter) -> None:
    bodies: list[str] = []

    def fetch(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content.decode())
        if len(bodies) == 1:
            return xml(f'<EntityCollection EntityName="contact" MoreRecords="true" Page="1">'
                       f'<Entity LogicalName="contact" Id="{I1}"><Attribute Name="fullname" Type="String">A</Attribute>'
                       f'<Attribute Name="parentcustomerid" Type="Lookup" Target="account">{ACC}</Attribute></Entity>'
                       f'<Entity LogicalName="contact" Id="{I2}"/></EntityCollection>')
        return xml(f'<EntityCollection EntityName="contact" MoreRecords="false" Page="2"><Entity LogicalName="contact" Id="{I3}"/></EntityCollection>')

    router.post(f"{REST}Fetch").mock(side_effect=fetch)
    flt = '<fetch><entity name="contact"><filter><condition attribute="statecode" operator="eq" value="0"/></filter></entity></fetch>'
    pages = [p async for p in resco.read_pages("contact", ["fullname", "parentcustomerid"], fetch_filter=flt)]
    assert [[r["id"] for r in p.records] for p in pages] == [[I1, I2], [I3]]
    assert pages[0].records[0] == {"id": I1, "fullname": "A", "parentcustomerid": LookupValue("account", ACC)}
    assert pages[0].records[1]["fullname"] is None
    assert 'page="2"' in bodies[1] and 'count="2"' in bodies[0]


async def test_bulk_upsert_through_update_multiple_isolates_bad_records(resco: RescoConnector, router: respx.MockRouter) -> None:
    route = router.post(f"{REST}UpdateMultiple").mock(return_value=xml(
        f'<UpdateMultipleResponse><Result Id="{I1}" Status="200"/><Result Id="{I2}" Status="201"/>'
        f'<Result Id="{I3}" Status="400"><Error><Code>BadRequest</Code><Message>fullname too long</Message></Error></Result>'
        '</UpdateMultipleResponse>'))
    resco.settings = RescoSettings(**{**{f: getattr(resco.settings, f) for f in resco.settings.__slots__}, "bulk_chunk": 3})
    results = await resco.upsert_many("contact", [
        {"id": I1, "fullname": "A", "parentcustomerid": LookupValue("account", ACC)},
        {"id": I2, "fullname": "B", "preferredcontactmethodcode": None},
        {"id": I3, "fullname": "x" * 500},
    ])
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].error == "fullname too long" and results[2].status == 400 and not results[2].retryable
    request = route.calls[0].request
    assert request.url.params["$create"] == "true"
    body = request.content.decode()
    assert f'<Attribute Name="parentcustomerid" Target="account">{ACC}</Attribute>' in body
    assert '<Attribute Name="preferredcontactmethodcode" Null="true" />' in body
    assert f'<Entity LogicalName="contact" Id="{I2}">' in body


async def test_etag_conflict_and_deletes(resco: RescoConnector, router: respx.MockRouter) -> None:
    router.patch(f"{ODATA}contact('{I1}')").respond(412)
    (result,) = await resco.upsert_many("contact", [{"id": I1}], if_match={I1: 'W/"3"'})
    assert result.conflict and not result.ok
    assert router.calls[-1].request.headers["If-Match"] == 'W/"3"'
    delete = router.post(f"{REST}DeleteMultiple").mock(return_value=xml(
        f'<DeleteMultipleResponse><Result Id="{I1}" Status="204"/><Result Id="{I2}" Status="404">'
        '<Error><Code>NotFound</Code><Message>gone</Message></Error></Result></DeleteMultipleResponse>'))
    assert all(r.ok for r in await resco.delete_many("contact", [I1, I2]))
    assert f'<EntityReference LogicalName="contact" Id="{I2}" />' in delete.calls[0].request.content.decode()


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
    assert contact.field("ownerid").type is FieldType.OWNER and contact.field("fullname").is_primary_name  # type: ignore[union-attr]
    router.get(f"{META}entities").respond(200, json={"value": [CONTACT]})
    assert [e.logical_name for e in await resco.list_entities()] == ["contact"]
    rels = await resco.list_relationships("contact")
    assert {(r.referencing_attribute, r.referenced_entity) for r in rels} >= {("parentcustomerid", "account"), ("parentcustomerid", "contact")}
    create_entity = router.post(f"{META}entities").respond(409)  # already there: provisioning is re-runnable
    await resco.create_entity(EntityMeta("new_visit", label="Visit", primary_name="new_name"))
    assert json.loads(create_entity.calls[0].request.content) == {"name": "new_visit", "display_name": "Visit", "primary_name": "new_name"}
    create_field = router.post(f"{META}entities/new_visit/fields").respond(201, json={})
    await resco.create_field("new_visit", FieldMeta("new_notes", FieldType.MEMO, label="Notes"))
    assert json.loads(create_field.calls[0].request.content) == {
        "name": "new_notes", "type": "memo", "display_name": "Notes", "required": False}
    rel = RelationshipMeta("new_visit_contact", RelationshipKind.MANY_TO_MANY, entity1="new_visit", entity2="contact",
                           intersect_entity="new_visit_contact", entity1_navigation="new_visit_contact")
    with pytest.raises(errors.ConfigError):
        await resco.create_relationship(rel)
    with pytest.raises(errors.ConfigError):
        await resco.associate("new_visit_contact", I1, I2)


async def test_update_field_and_entity_patch_the_metadata_service(resco: RescoConnector, router: respx.MockRouter) -> None:
    """Update Server on an existing client column / table: PATCH, never the type; system columns are left alone."""
    patch_field = router.patch(f"{META}entities/contact/fields/fullname").respond(200, json={})
    await resco.get_entity("contact")  # cached ...
    await resco.update_field("contact", FieldMeta("fullname", FieldType.STRING, label="Name", max_length=200,
                                                  required=True))
    assert json.loads(patch_field.calls[0].request.content) == {
        "display_name": "Name", "required": True, "max_length": 200}
    assert "type" not in json.loads(patch_field.calls[0].request.content)
    await resco.get_entity("contact")  # ... and read again after the change
    assert router.routes[0].call_count == 2

    patch_choice = router.patch(f"{META}entities/contact/fields/preferredcontactmethodcode").respond(200, json={})
    await resco.update_field("contact", FieldMeta("preferredcontactmethodcode", FieldType.PICKLIST, label="Method",
                                                  options=(OptionMeta(1, "Any"), OptionMeta(2, "Email"))))
    assert json.loads(patch_choice.calls[0].request.content) == {
        "display_name": "Method", "required": False, "options": [{"value": 1, "label": "Any"}, {"value": 2, "label": "Email"}]}
    patch_lookup = router.patch(f"{META}entities/contact/fields/parentcustomerid").respond(200, json={})
    await resco.update_field("contact", FieldMeta("parentcustomerid", FieldType.LOOKUP, label="Company",
                                                  targets=("account", "contact")))
    assert json.loads(patch_lookup.calls[0].request.content)["targets"] == ["account", "contact"]

    await resco.update_field("contact", FieldMeta("ownerid", FieldType.OWNER, label="Owner"))  # a system column
    assert not router.patch(f"{META}entities/contact/fields/ownerid").called

    patch_entity = router.patch(f"{META}entities/contact").respond(200, json={})
    await resco.update_entity(EntityMeta("contact", label="Person", collection_label="People"))
    assert json.loads(patch_entity.calls[0].request.content) == {"display_name": "Person"}

    router.patch(f"{META}entities/contact/fields/nosuch").respond(404, json={"error": {"code": "404", "message": "x"}})
    with pytest.raises(errors.NotFoundError):
        await resco.update_field("contact", FieldMeta("nosuch", FieldType.STRING))
    router.patch(f"{META}entities/contact/fields/jobtitle").respond(
        400, json={"error": {"code": "400", "message": "The length of 'jobtitle' cannot shrink below 100."}})
    with pytest.raises(errors.CrmSyncError, match="cannot shrink"):
        await resco.update_field("contact", FieldMeta("jobtitle", FieldType.STRING, max_length=50))


async def test_change_tracking_needs_nothing_on_resco_cloud(resco: RescoConnector, router: respx.MockRouter) -> None:
    await resco.enable_change_tracking("contact")  # always on: no request but the (cached) entity read
    assert not [c for c in router.calls if c.request.method != "GET"]
    router.get(f"{META}entities/nosuch").respond(404, json={"error": {"code": "404", "message": "missing"}})
    with pytest.raises(errors.NotFoundError):
        await resco.enable_change_tracking("nosuch")
