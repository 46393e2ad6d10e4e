"""Dataverse reads: identity, metadata, nextLink paging, FetchXML paging cookies, change tracking."""

from __future__ import annotations

import asyncio
import urllib.parse

import httpx
import pytest
import respx

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.dataverse import DataverseConnector
from crmsync_desktop.sync.connectors.types import ChangeToken, FieldType, LookupValue, Ownership, TokenKind
from tests.connectors.conftest import API, mock_metadata

pytestmark = pytest.mark.asyncio
C1, C2, C3 = "11111111-0000-0000-0000-000000000001", "11111111-0000-0000-0000-000000000002", "11111111-0000-0000-0000-000000000003"
A1 = "aaaaaaaa-0000-0000-0000-000000000001"


def contact_row(cid: str, name: str, **extra: object) -> dict[str, object]:
    return {"@odata.etag": f'W/"{cid[-1]}00"', "contactid": cid, "fullname": name, "_parentcustomerid_value": None, **extra}


async def test_is_a_connector(dv: DataverseConnector) -> None:
    assert isinstance(dv, Connector)


async def test_whoami_reads_identity_and_organization_name(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    dv_router.get("WhoAmI").respond(200, json={"UserId": "U-1", "BusinessUnitId": "B-1", "OrganizationId": "O-1"},
                                    headers={"x-ms-dop-hint": "8"})
    dv_router.get("organizations(o-1)").respond(200, json={"name": "Contoso"})
    me = await dv.whoami()
    assert (me.user_id, me.business_unit_id, me.organization_id, me.organization_name) == ("u-1", "b-1", "o-1", "Contoso")
    assert dv.throttle_state().concurrency_ceiling == 8
    sent = dv_router.calls[0].request
    assert sent.headers["Authorization"] == "Bearer token-1"
    assert sent.headers["OData-Version"] == "4.0" and sent.headers["Accept"] == "application/json"


async def test_metadata_types_targets_options_and_shadow_columns(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    contact = await dv.get_entity("contact")
    assert contact.entity_set_name == "contacts" and contact.primary_id == "contactid" and contact.change_tracking
    assert contact.ownership is Ownership.USER and contact.label == "Contact"
    names = [f.logical_name for f in contact.fields]
    assert "parentcustomeridname" not in names  # AttributeOf shadow column skipped
    parent = contact.field("parentcustomerid")
    assert parent is not None and parent.type is FieldType.LOOKUP and parent.targets == ("account", "contact")
    method = contact.field("preferredcontactmethodcode")
    assert method is not None and [(o.value, o.label) for o in method.options] == [(1, "Any"), (2, "Email")]
    assert contact.field("interests").type is FieldType.MULTI_PICKLIST  # type: ignore[union-attr]
    assert contact.field("fullname").max_length == 160  # type: ignore[union-attr]
    await dv.get_entity("contact")
    assert dv_router.routes["entities"].call_count == 0  # get_entity does not need the list; cached afterwards
    assert sum(1 for c in dv_router.calls if c.request.url.path.endswith("(LogicalName='contact')")) == 1


async def test_read_pages_follows_next_link_verbatim(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    next_link = f"{API}contacts?$select=contactid,fullname,_parentcustomerid_value&$skiptoken=%3Ccookie%20pagenumber=%222%22%3E"
    dv_router.get("contacts", params={"$skiptoken": "<cookie pagenumber=\"2\">"}).respond(200, json={"value": [
        contact_row(C3, "Cy", **{"_parentcustomerid_value": A1.upper(),
                                 "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account"})]})
    dv_router.get("contacts").respond(200, json={"value": [contact_row(C1, "Ann"), contact_row(C2, "Bo")],
                                                 "@odata.nextLink": next_link})
    pages = [p async for p in dv.read_pages("contact", ["fullname", "parentcustomerid"])]
    assert [len(p.records) for p in pages] == [2, 1]
    assert pages[0].records[0] == {"contactid": C1, "fullname": "Ann", "parentcustomerid": None}
    assert pages[1].records[0]["parentcustomerid"] == LookupValue("account", A1)
    assert pages[0].etags[C1] == 'W/"100"'
    data_calls = [c.request for c in dv_router.calls if c.request.url.path.endswith("/contacts")]
    assert data_calls[0].url.params["$select"] == "contactid,fullname,_parentcustomerid_value"
    assert "odata.maxpagesize=2" in data_calls[0].headers["Prefer"]
    assert str(data_calls[1].url) == next_link  # not re-encoded, nothing appended
    assert "odata.maxpagesize=2" in data_calls[1].headers["Prefer"]  # same page size on every page


async def test_fetchxml_paging_cookie_iteration(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    inner = '<cookie page="1"><contactid last="{X}" first="{Y}" /></cookie>'
    cookie_attr = urllib.parse.quote(urllib.parse.quote(inner))
    annotation = f'<cookie pagenumber="2" pagingcookie="{cookie_attr}" istracking="False" />'
    sent_fetches: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetch = request.url.params["fetchXml"]
        sent_fetches.append(fetch)
        if 'page="1"' in fetch:
            return httpx.Response(200, json={
                "value": [{"contactid": C1, "fullname": "Ann"}, {"contactid": C2}],  # null columns are omitted
                "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie": annotation,
                "@Microsoft.Dynamics.CRM.morerecords": True})
        return httpx.Response(200, json={"value": [{"contactid": C3, "fullname": "Cy"}]})

    dv_router.get("contacts").mock(side_effect=handler)
    flt = ('<fetch><entity name="contact"><attribute name="telephone1"/>'
           '<filter><condition attribute="statecode" operator="eq" value="0"/></filter></entity></fetch>')
    pages = [p async for p in dv.read_pages("contact", ["fullname"], fetch_filter=flt)]
    assert [[r["contactid"] for r in p.records] for p in pages] == [[C1, C2], [C3]]
    assert pages[0].records[1] == {"contactid": C2, "fullname": None}
    from defusedxml.ElementTree import fromstring
    first, second = fromstring(sent_fetches[0]), fromstring(sent_fetches[1])
    assert first.get("page") == "1" and first.get("count") == "2" and first.get("paging-cookie") is None
    assert second.get("page") == "2" and second.get("paging-cookie") == inner  # decoded twice
    assert [a.get("name") for a in first.iter("attribute")] == ["fullname", "contactid"]
    assert first.find("entity/filter/condition").get("attribute") == "statecode"  # type: ignore[union-attr]
    assert "fetchxmlpagingcookie" in dv_router.calls[-1].request.headers["Prefer"]


async def test_fetch_filter_for_another_entity_is_a_filter_error(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    with pytest.raises(errors.FilterError):
        [p async for p in dv.read_pages("contact", [], fetch_filter='<fetch><entity name="account"/></fetch>')]
    with pytest.raises(errors.FilterError):
        [p async for p in dv.read_ids("contact", fetch_filter="<fetch><entity")]


async def test_read_ids_streams_ids_only(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    dv_router.get("contacts", params={"$skiptoken": "2"}).respond(200, json={"value": [{"contactid": C3}]})
    dv_router.get("contacts").respond(200, json={"value": [{"contactid": C1.upper()}, {"contactid": C2}],
                                                 "@odata.nextLink": f"{API}contacts?$select=contactid&$skiptoken=2"})
    assert [ids async for ids in dv.read_ids("contact")] == [[C1, C2], [C3]]
    assert dv_router.calls[-2].request.url.params["$select"] == "contactid"


async def test_change_tracking_initial_then_delta_then_expiry(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    delta1 = f"{API}contacts?$select=contactid,fullname&$deltatoken=919042%2108%2f22%2f2017"
    delta2 = f"{API}contacts?$select=contactid,fullname&$deltatoken=919099%2108%2f23%2f2017"
    expired = f"{API}contacts?$select=contactid,fullname&$deltatoken=1%2101%2f01%2f2017"
    dv_router.get("contacts", params={"$deltatoken": "1!01/01/2017"}).respond(
        400, json={"error": {"code": "0x80044352", "message": "Version stamp associated with the client has expired."}})
    dv_router.get("contacts", params={"$deltatoken": "919042!08/22/2017"}).respond(200, json={
        "@odata.context": f"{API}$metadata#contacts(contactid,fullname)/$delta",
        "value": [contact_row(C2, "Bo v2"),
                  {"@odata.context": f"{API}$metadata#contacts/$deletedEntity", "id": C1.upper(), "reason": "deleted"}],
        "@odata.deltaLink": delta2})
    dv_router.get("contacts", params={"$skiptoken": "2"}).respond(200, json={"value": [contact_row(C3, "Cy")],
                                                                             "@odata.deltaLink": delta1})
    dv_router.get("contacts").respond(200, json={"value": [contact_row(C1, "Ann"), contact_row(C2, "Bo")],
                                                 "@odata.nextLink": f"{API}contacts?$skiptoken=2"})
    initial = [p async for p in dv.read_changes("contact", ["fullname"], None)]
    assert [len(p.upserts) for p in initial] == [2, 1]
    assert initial[0].token is None  # nothing to persist until the last page is applied
    assert initial[1].token == ChangeToken(TokenKind.DELTA_LINK, delta1)
    first_request = next(c.request for c in dv_router.calls if c.request.url.path.endswith("/contacts"))
    assert "odata.track-changes" in first_request.headers["Prefer"]

    delta = [p async for p in dv.read_changes("contact", ["fullname"], initial[-1].token)]
    assert len(delta) == 1
    assert delta[0].upserts == ({"contactid": C2, "fullname": "Bo v2"},)
    assert delta[0].deleted_ids == (C1,)
    assert delta[0].token == ChangeToken(TokenKind.DELTA_LINK, delta2)

    with pytest.raises(errors.FullResyncRequired) as info:
        [p async for p in dv.read_changes("contact", ["fullname"], ChangeToken(TokenKind.DELTA_LINK, expired))]
    assert info.value.code == "0x80044352" and "full resynchronization" in info.value.message
    with pytest.raises(errors.FullResyncRequired):
        await dv.has_changes("contact", ChangeToken(TokenKind.DELTA_LINK, expired))


async def test_change_feed_requests_the_next_page_before_the_current_one_is_consumed(
    dv: DataverseConnector, dv_router: respx.MockRouter
) -> None:
    """The pages of a change feed form a chain: the next request leaves as soon as its link is known."""
    mock_metadata(dv_router)
    delta = f"{API}contacts?$select=contactid,fullname&$deltatoken=1%2101%2f01%2f2030"
    third = dv_router.get("contacts", params={"$skiptoken": "3"}).respond(
        200, json={"value": [contact_row(C3, "Cy")], "@odata.deltaLink": delta})
    second = dv_router.get("contacts", params={"$skiptoken": "2"}).respond(
        200, json={"value": [contact_row(C2, "Bo")], "@odata.nextLink": f"{API}contacts?$skiptoken=3"})
    dv_router.get("contacts").respond(200, json={"value": [contact_row(C1, "Ann")],
                                                 "@odata.nextLink": f"{API}contacts?$skiptoken=2"})
    pages = dv.read_changes("contact", ["fullname"], None)
    first = await pages.__anext__()
    assert first.upserts[0]["contactid"] == C1
    for _ in range(20):  # let the request that was started run (the mock answers at once)
        if second.call_count:
            break
        await asyncio.sleep(0)
    assert second.call_count == 1 and third.call_count == 0  # one page ahead, not more
    await pages.aclose()  # a consumer that stops early leaves no request running
    assert third.call_count == 0


async def test_has_changes_probes_delta_link_with_one_row(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    link = f"{API}contacts?$deltatoken=5"
    route = dv_router.get("contacts", params={"$deltatoken": "5"})
    route.side_effect = [httpx.Response(200, json={"value": []}), httpx.Response(200, json={"value": [contact_row(C1, "A")]})]
    token = ChangeToken(TokenKind.DELTA_LINK, link)
    assert await dv.has_changes("contact", token) is False
    assert await dv.has_changes("contact", token) is True
    assert "odata.maxpagesize=1" in route.calls[0].request.headers["Prefer"]


async def test_untracked_table_uses_versionnumber_watermark(dv: DataverseConnector, dv_router: respx.MockRouter) -> None:
    mock_metadata(dv_router)
    route = dv_router.get("accounts")
    route.side_effect = [
        httpx.Response(200, json={"value": [{"accountid": A1, "name": "Contoso", "versionnumber": 41},
                                            {"accountid": C1, "name": "Fabrikam", "versionnumber": 57}]}),
        httpx.Response(200, json={"value": []}),
    ]
    first = [p async for p in dv.read_changes("account", ["name"], None)]
    assert first[-1].token == ChangeToken(TokenKind.ROW_VERSION, "57")
    assert first[0].upserts[0] == {"accountid": A1, "name": "Contoso"}
    assert route.calls[0].request.url.params["$orderby"] == "versionnumber asc"
    again = [p async for p in dv.read_changes("account", ["name"], first[-1].token)]
    assert route.calls[1].request.url.params["$filter"] == "versionnumber gt 57"
    assert again[-1].token == ChangeToken(TokenKind.ROW_VERSION, "57") and again[-1].upserts == ()
