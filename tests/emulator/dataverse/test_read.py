"""Reading rows: OData query options, paging, annotations, single rows, FetchXML."""

from __future__ import annotations

import urllib.parse
from xml.sax.saxutils import quoteattr

import httpx
import pytest

from crmsync_desktop.emulator.dataverse import DataverseOrg
from crmsync_desktop.emulator.seed import seed_sales_org

from .conftest import entity_id


@pytest.fixture
def seeded(org: DataverseOrg) -> DataverseOrg:
    seed_sales_org(org, records=2000, seed=7)
    return org


def test_paging_with_opaque_next_links(api: httpx.Client, seeded: DataverseOrg) -> None:
    url: str | None = "contacts?$select=fullname,emailaddress1"
    seen: list[str] = []
    pages = 0
    while url:
        r = api.get(url, headers={"Prefer": "odata.maxpagesize=120"})
        assert r.status_code == 200
        assert r.headers["Preference-Applied"] == "odata.maxpagesize=120"
        body = r.json()
        assert len(body["value"]) <= 120
        seen += [row["contactid"] for row in body["value"]]
        url = body.get("@odata.nextLink")
        if url:
            token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["$skiptoken"][0]
            assert token.startswith("<cookie pagenumber=") and 'istracking="False"' in token
            assert "$select=fullname,emailaddress1" in urllib.parse.unquote(url)
        pages += 1
    assert len(seen) == len(set(seen)) == seeded.count("contact")
    assert pages == -(-len(seen) // 120)


def test_maxpagesize_over_5000_rejected(api: httpx.Client) -> None:
    assert api.get("accounts", headers={"Prefer": "odata.maxpagesize=5001"}).status_code == 400


def test_filter_select_orderby_top_count(api: httpx.Client, seeded: DataverseOrg) -> None:
    r = api.get("accounts", params={
        "$select": "name,revenue,statecode", "$filter": "statecode eq 0 and revenue gt 1000000 and contains(name,'a')",
        "$orderby": "revenue desc,name", "$count": "true"})
    body = r.json()
    assert r.status_code == 200
    assert body["@odata.context"].endswith("#accounts(name,revenue,statecode)")
    revenues = [row["revenue"] for row in body["value"]]
    assert revenues == sorted(revenues, reverse=True) and min(revenues) > 1000000
    assert body["@odata.count"] == len(body["value"]) > 0
    assert set(body["value"][0]) == {"@odata.etag", "accountid", "name", "revenue", "statecode"}
    top = api.get("accounts", params={"$select": "name", "$top": "3", "$orderby": "name"}).json()
    assert len(top["value"]) == 3 and "@odata.nextLink" not in top
    count = api.get("accounts/$count", params={"$filter": "statecode eq 1"})
    assert count.headers["content-type"].startswith("text/plain")
    assert int(count.text) == seeded.conn.execute("select count(*) from account where statecode=1").fetchone()[0]


def test_filter_functions_null_lookup_and_navigation(api: httpx.Client, seeded: DataverseOrg) -> None:
    a = seeded.conn.execute("select accountid, primarycontactid from account where primarycontactid is not null "
                            "limit 1").fetchone()
    r = api.get("accounts", params={"$select": "name", "$filter": f"_primarycontactid_value eq {a[1]}"})
    assert a[0] in [row["accountid"] for row in r.json()["value"]]
    nulls = api.get("accounts", params={"$select": "name", "$filter": "_parentaccountid_value eq null", "$count": "true"})
    assert nulls.json()["@odata.count"] == seeded.conn.execute(
        "select count(*) from account where parentaccountid is null").fetchone()[0]
    starts = api.get("contacts", params={"$select": "lastname", "$filter": "startswith(lastname,'Sm')"}).json()["value"]
    assert starts and all(row["lastname"].startswith("Sm") for row in starts)
    name = seeded.conn.execute("select fullname from contact where contactid = ?", (a[1],)).fetchone()[0]
    nav = api.get("accounts", params={"$select": "name", "$filter": f"primarycontactid/fullname eq '{name}'"})
    assert a[0] in [row["accountid"] for row in nav.json()["value"]]
    percent = api.get("accounts", params={"$filter": "contains(name,'%')"}).json()["value"]
    assert percent == []  # LIKE wildcards are escaped
    bad = api.get("accounts", params={"$filter": "nosuchcolumn eq 1"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "0x80060888"
    assert api.get("accounts", params={"$filter": "name eq"}).status_code == 400


def test_dataverse_query_functions_in_filter(api: httpx.Client) -> None:
    api.post("accounts", json={"name": "Today Co"})
    r = api.get("accounts", params={"$select": "name",
                                    "$filter": "Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=2)"})
    assert [row["name"] for row in r.json()["value"]] == ["Today Co"]
    r = api.get("accounts", params={"$select": "name", "$filter": "Microsoft.Dynamics.CRM.EqualUserId(PropertyName='ownerid')"})
    assert len(r.json()["value"]) == 1


def test_expand_single_valued_lookup(api: httpx.Client, seeded: DataverseOrg) -> None:
    r = api.get("contacts", params={"$select": "fullname,_parentcustomerid_value",
                                    "$expand": "parentcustomerid_account($select=name,accountnumber)",
                                    "$filter": "_parentcustomerid_value ne null", "$top": "5"})
    for row in r.json()["value"]:
        assert row["parentcustomerid_account"]["accountid"] == row["_parentcustomerid_value"]
        assert set(row["parentcustomerid_account"]) == {"@odata.etag", "accountid", "name", "accountnumber"}
    owner = api.get("accounts", params={"$select": "name", "$top": "1", "$expand": "owningbusinessunit($select=name)"})
    assert owner.json()["value"][0]["owningbusinessunit"]["name"]


def test_formatted_values_and_lookup_annotations(api: httpx.Client) -> None:
    acc = entity_id(api.post("accounts", json={"name": "Fmt", "revenue": 1234.5, "industrycode": 7, "donotphone": True}))
    api.post("contacts", json={"lastname": "Annot", "parentcustomerid_account@odata.bind": f"accounts({acc})"})
    r = api.get("accounts", params={"$select": "revenue,industrycode,donotphone", "$filter": "name eq 'Fmt'"},
                headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'})
    row = r.json()["value"][0]
    fv = "@OData.Community.Display.V1.FormattedValue"
    assert (row["revenue" + fv], row["industrycode" + fv], row["donotphone" + fv]) == ("$1,234.50", "Consulting",
                                                                                      "Do Not Allow")
    c = api.get("contacts", params={"$select": "_parentcustomerid_value"},
                headers={"Prefer": 'odata.include-annotations="*"'}).json()["value"][0]
    assert c["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert c["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "parentcustomerid_account"
    assert c["_parentcustomerid_value" + fv] == "Fmt"
    plain = api.get("accounts", params={"$select": "revenue"}).json()["value"][0]
    assert not any("@OData" in k for k in plain)


def test_single_row_by_id_alternate_key_and_conditional_get(api: httpx.Client) -> None:
    aid = entity_id(api.post("accounts", json={"name": "Keyed", "accountnumber": "AK-1"}))
    r = api.get(f"accounts({aid})", params={"$select": "name"})
    assert r.status_code == 200 and r.json()["@odata.context"].endswith("#accounts(name)/$entity")
    etag = r.headers["ETag"]
    assert etag.startswith('W/"') and r.json()["@odata.etag"] == etag
    assert api.get(f"accounts({aid})", headers={"If-None-Match": etag}).status_code == 304
    assert api.get(f"accounts({aid})", headers={"If-None-Match": "null"}).status_code == 200
    by_key = api.get("accounts(accountnumber='AK-1')", params={"$select": "name"}).json()
    assert by_key["accountid"] == aid
    assert api.get(f"accounts({aid})/name").json()["value"] == "Keyed"
    assert api.get(f"accounts({aid})/name/$value").text == "Keyed"
    missing = api.get("accounts(00000000-0000-0000-0000-000000000001)")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "0x80040217", "message":
                                        "account With Id = 00000000-0000-0000-0000-000000000001 Does Not Exist"}}
    bad_key = api.get("accounts(name='Keyed')")
    assert bad_key.status_code == 400 and "key in the request URI is not valid" in bad_key.json()["error"]["message"]


def test_older_versions_service_root_and_unknown_set(server: str, api: httpx.Client) -> None:
    for v in ("v9.0", "v9.1"):
        r = api.get(f"{server}/api/data/{v}/WhoAmI()")
        assert r.status_code == 200 and f"/api/data/{v}/$metadata#" in r.json()["@odata.context"]
    root = api.get("").json()
    assert {"name": "accounts", "kind": "EntitySet", "url": "accounts"} in root["value"]
    r = api.get("nosuchthings")
    assert r.status_code == 404 and r.json()["error"]["message"] == "Resource not found for the segment 'nosuchthings'."
    assert api.get("$metadata").text.startswith("<?xml")


def _fetch(api: httpx.Client, entity_set: str, fetch: str, prefer: str | None = None) -> httpx.Response:
    headers = {"Prefer": prefer} if prefer else {}
    return api.get(entity_set, params={"fetchXml": fetch}, headers=headers)


def test_fetchxml_paging_cookie_and_morerecords(api: httpx.Client, seeded: DataverseOrg) -> None:
    prefer = 'odata.include-annotations="Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords"'
    page, cookie, seen = 1, None, []
    while True:
        attr = f" paging-cookie={quoteattr(cookie)}" if cookie else ""
        fetch = (f'<fetch count="250" page="{page}"{attr}><entity name="account"><attribute name="name"/>'
                 '<filter><condition attribute="statecode" operator="eq" value="0"/></filter></entity></fetch>')
        body = _fetch(api, "accounts", fetch, prefer).json()
        seen += [row["accountid"] for row in body["value"]]
        if not body.get("@Microsoft.Dynamics.CRM.morerecords"):
            assert "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie" not in body
            break
        raw = body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"]
        assert raw.startswith(f'<cookie pagenumber="{page + 1}" pagingcookie="')
        encoded = raw.split('pagingcookie="', 1)[1].split('"', 1)[0]
        cookie = urllib.parse.unquote(urllib.parse.unquote(encoded))
        page += 1
    expected = seeded.conn.execute("select count(*) from account where statecode = 0").fetchone()[0]
    assert len(seen) == len(set(seen)) == expected and page > 1


def test_fetchxml_link_entity_and_operators(api: httpx.Client, seeded: DataverseOrg) -> None:
    fetch = ('<fetch top="50"><entity name="contact"><attribute name="fullname"/><attribute name="parentcustomerid"/>'
             '<order attribute="fullname"/><filter type="and">'
             '<condition attribute="gendercode" operator="in"><value>1</value><value>2</value></condition>'
             '<condition attribute="emailaddress1" operator="like" value="%@contact.test"/>'
             '<condition attribute="jobtitle" operator="not-null"/></filter>'
             '<link-entity name="account" from="accountid" to="parentcustomerid" alias="acc" link-type="inner">'
             '<attribute name="name"/><attribute name="accountnumber"/>'
             '<filter><condition attribute="statecode" operator="eq" value="0"/></filter></link-entity>'
             '</entity></fetch>')
    r = _fetch(api, "contacts", fetch)
    assert r.status_code == 200, r.text
    rows = r.json()["value"]
    assert rows and all(row["acc.accountnumber"].startswith("ACC-") for row in rows)
    assert all(row["_parentcustomerid_value"] for row in rows)
    names = [row["fullname"] for row in rows]
    assert names == sorted(names, key=str.lower)
    outer = _fetch(api, "accounts", '<fetch top="20"><entity name="account"><attribute name="name"/>'
                   '<attribute name="description"/><link-entity name="contact" from="contactid" to="primarycontactid" '
                   'link-type="outer" alias="pc"><attribute name="fullname"/></link-entity></entity></fetch>').json()
    assert all("description" not in row for row in outer["value"])  # FetchXML omits nulls
    assert any("pc.fullname" in row for row in outer["value"])
    assert any("pc.fullname" not in row for row in outer["value"])


def test_fetchxml_user_and_date_operators(api: httpx.Client, user_api: httpx.Client) -> None:
    who = user_api.get("WhoAmI").json()
    user_api.post("tasks", json={"subject": "mine"})
    api.post("tasks", json={"subject": "not mine"})
    mine = _fetch(user_api, "tasks", '<fetch><entity name="task"><attribute name="subject"/><filter>'
                  '<condition attribute="ownerid" operator="eq-userid"/>'
                  '<condition attribute="createdon" operator="today"/>'
                  '<condition attribute="createdon" operator="last-x-days" value="1"/>'
                  '<condition attribute="owningbusinessunit" operator="eq-businessid"/>'
                  '</filter></entity></fetch>').json()["value"]
    assert [t["subject"] for t in mine] == ["mine"]
    assert all(t["activityid"] for t in mine)
    nulls = _fetch(api, "tasks", '<fetch><entity name="task"><attribute name="subject"/><filter>'
                   '<condition attribute="regardingobjectid" operator="null"/>'
                   '<condition attribute="subject" operator="begins-with" value="not"/>'
                   '</filter></entity></fetch>').json()["value"]
    assert [t["subject"] for t in nulls] == ["not mine"]
    assert who["UserId"]
    bad = _fetch(api, "tasks", '<fetch><entity name="task"><filter><condition attribute="subject" '
                 'operator="in-fiscal-year" value="2024"/></filter></entity></fetch>')
    assert bad.status_code == 400
    wrong = _fetch(api, "accounts", '<fetch><entity name="contact"/></fetch>')
    assert wrong.status_code == 400
