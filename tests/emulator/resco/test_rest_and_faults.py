"""REST data service (WhoAmI, GetMaxRowVersion, Fetch, deleted records) and fault injection over HTTPS."""

from __future__ import annotations

import time
from xml.etree import ElementTree as ET

import httpx
import pytest

from crmsync_desktop.emulator.resco import EntityDef, FaultConfig
from tests.emulator.resco.conftest import ACCOUNT, CONTACT, Resco

DATA = "/rest/v1/data/contoso"


@pytest.fixture
def seeded(resco: Resco) -> Resco:
    resco.org.create_entity(EntityDef.from_json(ACCOUNT))
    resco.org.create_entity(EntityDef.from_json(CONTACT))
    user = resco.org.check_password("admin", "Pa55word")
    assert user is not None
    contoso = resco.org.create("account", {"name": "Contoso", "industrycode": 1, "revenue": 100}, user)
    fabrikam = resco.org.create("account", {"name": "Fabrikam", "industrycode": 2, "revenue": 200}, user)
    resco.org.create(
        "contact",
        {"fullname": "Ann", "parentcustomerid": {"id": contoso["id"], "logicalname": "account"}},
        user,
    )
    resco.org.create(
        "contact",
        {"fullname": "Bob", "parentcustomerid": {"id": fabrikam["id"], "logicalname": "account"}},
        user,
    )
    resco.org.create("contact", {"fullname": "Cid"}, user)
    return resco


def _post_xml(client: httpx.Client, method: str, body: str = "") -> ET.Element:
    response = client.post(f"{DATA}/{method}", content=body, headers={"Content-Type": "application/xml"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ET.fromstring(response.content)


def _attrs(entity: ET.Element) -> dict[str, str]:
    return {a.get("Name", ""): a.text or "" for a in entity.findall("Attribute")}


def test_whoami_and_max_row_version(seeded: Resco) -> None:
    with seeded.client() as client:
        who = _post_xml(client, "WhoAmI")
        assert who.findtext("SystemUserId") == seeded.org.check_password("admin", "Pa55word")
        assert who.findtext("OrganizationId") == seeded.org.organization_id
        before = int(_post_xml(client, "GetMaxRowVersion").findtext("RowVersion") or 0)
        again = int(_post_xml(client, "GetMaxRowVersion").findtext("RowVersion") or 0)
        assert before == again > 0
        client.post("/odata/v4/contoso/account", json={"name": "New"})
        after = int(_post_xml(client, "GetMaxRowVersion").findtext("RowVersion") or 0)
        assert after == before + 1
        scoped = _post_xml(
            client,
            "GetMaxRowVersion",
            "<GetMaxRowVersionRequest><EntityName>contact</EntityName></GetMaxRowVersionRequest>",
        )
        assert int(scoped.findtext("RowVersion") or 0) < after
        assert client.get(f"{DATA}/WhoAmI").status_code == 405
        assert client.post(f"{DATA}/NoSuchMethod").status_code == 404
    with seeded.client(auth=("admin", "nope")) as client:
        assert client.post(f"{DATA}/WhoAmI").status_code == 401


def test_fetch_filter_link_entity_and_paging(seeded: Resco) -> None:
    fetch = """<fetch version="1.0" count="1" page="{page}" returntotalrecordcount="true">
      <entity name="contact">
        <attribute name="fullname"/><attribute name="parentcustomerid"/>
        <order attribute="fullname"/>
        <filter type="and"><condition attribute="fullname" operator="not-null"/></filter>
        <link-entity name="account" from="id" to="parentcustomerid" alias="acc" link-type="inner">
          <attribute name="name"/>
          <filter type="or">
            <condition attribute="industrycode" operator="in"><value>1</value><value>2</value></condition>
          </filter>
        </link-entity>
      </entity></fetch>"""
    with seeded.client() as client:
        first = _post_xml(client, "Fetch", fetch.format(page=1))
        assert first.get("MoreRecords") == "true" and first.get("TotalRecordCount") == "2"
        assert first.get("PagingCookie", "").startswith('<cookie page="1">')
        entities = first.findall("Entity")
        assert len(entities) == 1
        attrs = _attrs(entities[0])
        assert attrs["fullname"] == "Ann" and attrs["acc.name"] == "Contoso"
        lookup = next(a for a in entities[0].findall("Attribute") if a.get("Name") == "parentcustomerid")
        assert lookup.get("Type") == "Lookup" and lookup.get("Target") == "account"
        second = _post_xml(client, "Fetch", fetch.format(page=2))
        assert second.get("MoreRecords") == "false"
        assert _attrs(second.findall("Entity")[0])["fullname"] == "Bob"

        outer = _post_xml(
            client,
            "Fetch",
            """<fetch><entity name="contact"><attribute name="fullname"/>
            <order attribute="fullname" descending="true"/>
            <link-entity name="account" from="id" to="parentcustomerid" link-type="outer"><attribute name="name"/>
            </link-entity></entity></fetch>""",
        )
        rows = [_attrs(e) for e in outer.findall("Entity")]
        assert [r["fullname"] for r in rows] == ["Cid", "Bob", "Ann"] and "account.name" not in rows[0]

        all_attrs = _post_xml(
            client,
            "Fetch",
            """<fetch><entity name="account"><all-attributes/>
            <filter><condition attribute="revenue" operator="ge" value="150"/>
            <condition attribute="name" operator="begins-with" value="Fab"/></filter></entity></fetch>""",
        )
        only = all_attrs.findall("Entity")
        assert len(only) == 1
        typed = {a.get("Name"): a.get("Type") for a in only[0].findall("Attribute")}
        assert (
            typed["revenue"] == "Money"
            and typed["versionnumber"] == "RowVersion"
            and typed["id"] == "UniqueIdentifier"
        )

        bad = client.post(
            f"{DATA}/Fetch",
            content="<fetch><entity name='account'><filter><condition "
            "attribute='name' operator='sounds-like' value='x'/></filter>"
            "</entity></fetch>",
        )
        assert bad.status_code == 400 and ET.fromstring(bad.content).findtext("Code") == "BadRequest"
        bomb = client.post(f"{DATA}/Fetch", content='<!DOCTYPE x [<!ENTITY a "aaaa">]><fetch>&a;</fetch>')
        assert bomb.status_code == 400


def test_changes_and_deletions_since_row_version(seeded: Resco) -> None:
    with seeded.client() as client:
        mark = int(_post_xml(client, "GetMaxRowVersion").findtext("RowVersion") or 0)
        accounts = client.get("/odata/v4/contoso/account", params={"$orderby": "name"}).json()["value"]
        client.patch(f"/odata/v4/contoso/account({accounts[0]['id']})", json={"revenue": 111})
        client.delete(f"/odata/v4/contoso/account({accounts[1]['id']})")
        changed = _post_xml(
            client,
            "Fetch",
            f"""<fetch><entity name="account"><attribute name="name"/>
            <filter><condition attribute="versionnumber" operator="gt" value="{mark}"/></filter></entity></fetch>""",
        )
        assert [_attrs(e)["name"] for e in changed.findall("Entity")] == ["Contoso"]
        deleted = _post_xml(
            client,
            "GetDeletedRecords",
            f"<GetDeletedRecordsRequest><EntityName>account</EntityName>"
            f"<RowVersion>{mark}</RowVersion></GetDeletedRecordsRequest>",
        )
        records = deleted.findall("DeletedRecord")
        assert [(r.get("EntityName"), r.get("Id")) for r in records] == [("account", accounts[1]["id"])]
        assert int(records[0].get("RowVersion") or 0) == int(deleted.get("MaxRowVersion") or 0) == mark + 2
        later = _post_xml(
            client,
            "GetDeletedRecords",
            f"<GetDeletedRecordsRequest><RowVersion>{mark + 2}</RowVersion></GetDeletedRecordsRequest>",
        )
        assert later.findall("DeletedRecord") == []


def test_fault_injection_via_admin_endpoint(seeded: Resco) -> None:
    with seeded.client() as client:
        settings = client.put("/_emulator/faults", json={"throttle_burst": 2, "retry_after": 7})
        assert settings.json()["throttle_burst"] == 2
        throttled = [client.get("/odata/v4/contoso/me") for _ in range(3)]
        assert [r.status_code for r in throttled] == [429, 429, 200]
        assert throttled[0].headers["retry-after"] == "7"

        client.put("/_emulator/faults", json={"error_rate": 1.0, "error_status": 500})
        assert client.get("/odata/v4/contoso/me").status_code == 500
        client.put("/_emulator/faults", json={"error_rate": 0, "drop_rate": 1.0})
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/odata/v4/contoso/me")
        client.put("/_emulator/faults", json={"drop_rate": 0, "offline": True})
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(f"{DATA}/WhoAmI")
        assert client.get("/_emulator/faults").json()["offline"] is True  # admin surface never faulted
        client.put("/_emulator/faults", json={"offline": False, "latency_ms": 150})
        start = time.monotonic()
        assert client.get("/odata/v4/contoso/me").status_code == 200
        assert time.monotonic() - start >= 0.15
        reset = client.delete("/_emulator/faults").json()
        assert reset["latency_ms"] == 0 and reset["counts"]["throttled"] == 2
        assert client.put("/_emulator/faults", json={"nonsense": 1}).status_code == 400
        assert client.put("/_emulator/faults", json={"error_rate": 2}).status_code == 400


def test_fault_rate_is_repeatable_with_a_seed(seeded: Resco) -> None:
    seeded.app.configure(FaultConfig(error_rate=0.5, seed=42).as_dict())
    with seeded.client() as client:
        first = [client.get("/odata/v4/contoso/me").status_code for _ in range(20)]
        seeded.app.configure({"seed": 42})
        second = [client.get("/odata/v4/contoso/me").status_code for _ in range(20)]
    assert first == second and 503 in first and 200 in first
