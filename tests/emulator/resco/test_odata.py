"""Resco Cloud OData v4 over real HTTPS: documents, CRUD with ETags, paging, query options."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from crmsync_desktop.emulator.resco import EntityDef
from tests.emulator.resco.conftest import ACCOUNT, CONTACT, Resco

ROOT = "/odata/v4/contoso"


@pytest.fixture
def schema(resco: Resco) -> Resco:
    resco.org.create_entity(EntityDef.from_json(ACCOUNT))
    resco.org.create_entity(EntityDef.from_json(CONTACT))
    return resco


def test_service_document_metadata_and_me(schema: Resco) -> None:
    with schema.client() as client:
        service = client.get(f"{ROOT}/").json()
        assert {"kind": "EntitySet", "name": "account", "title": "Account", "url": "account"} in service[
            "value"
        ]
        metadata = client.get(f"{ROOT}/$metadata")
        assert metadata.headers["content-type"].startswith("application/xml")
        ns = {"edm": "http://docs.oasis-open.org/odata/ns/edm"}
        schema_el = ET.fromstring(metadata.content).find(".//edm:Schema", ns)
        assert schema_el is not None and schema_el.get("Namespace") == "RescoCrm"
        revenue = schema_el.find("edm:EntityType[@Name='account']/edm:Property[@Name='revenue']", ns)
        assert revenue is not None and revenue.get("Type") == "Edm.Decimal"
        me = client.get(f"{ROOT}/me").json()
        assert me["fullname"] == "Sync Admin" and me["domainname"] == "admin"
    with schema.client(auth=None) as anonymous:
        assert anonymous.get(f"{ROOT}/account").status_code == 401


def test_crud_with_etags(schema: Resco) -> None:
    with schema.client() as client:
        created = client.post(
            f"{ROOT}/account",
            headers={"Prefer": "return=representation"},
            json={
                "name": "Contoso",
                "revenue": 1234.5678,
                "donotcall": True,
                "lastcontacted": "2024-05-01T12:00:00+02:00",
                "industrycode": 2,
                "numberofemployees": 50,
            },
        )
        assert created.status_code == 201, created.text
        record = created.json()
        assert record["lastcontacted"] == "2024-05-01T10:00:00Z" and record["revenue"] == 1234.5678
        record_id, tag = record["id"], record["@odata.etag"]
        assert created.headers["etag"] == tag
        child = client.post(
            f"{ROOT}/account", json={"name": "Child", "parentaccountid@odata.bind": f"account({record_id})"}
        )
        assert child.status_code == 204 and child.headers["odata-entityid"].startswith(
            f"{schema.url}{ROOT}/account("
        )

        got = client.get(f"{ROOT}/account('{record_id}')", headers={"Prefer": "odata.include-annotations=*"})
        assert got.json()["industrycode@OData.Community.Display.V1.FormattedValue"] == "Services"
        assert client.get(f"{ROOT}/account({record_id})", headers={"If-None-Match": tag}).status_code == 304

        assert (
            client.patch(
                f"{ROOT}/account({record_id})", json={"name": "Contoso Ltd"}, headers={"If-Match": tag}
            ).status_code
            == 204
        )
        stale = client.patch(
            f"{ROOT}/account({record_id})", json={"name": "lost update"}, headers={"If-Match": tag}
        )
        assert stale.status_code == 412 and "error" in stale.json()
        assert client.delete(f"{ROOT}/account({record_id})", headers={"If-Match": tag}).status_code == 412
        assert client.get(f"{ROOT}/account({record_id})").json()["name"] == "Contoso Ltd"
        bad = client.post(f"{ROOT}/account", json={"name": "x", "industrycode": 99})
        assert bad.status_code == 400
        assert client.delete(f"{ROOT}/account({record_id})").status_code == 204
        assert client.get(f"{ROOT}/account({record_id})").status_code == 404
        assert client.get(f"{ROOT}/nosuchentity").status_code == 404


def test_host_style_organization(schema: Resco) -> None:
    with schema.client(headers={"Host": "contoso.localhost"}) as client:
        assert client.get("/odata/v4/me").json()["domainname"] == "admin"
        assert client.get("/odata/v4/account").status_code == 200


def test_server_paging_at_1000(schema: Resco) -> None:
    user = schema.org.check_password("admin", "Pa55word")
    assert user is not None
    schema.org.create_many(
        "account", ({"name": f"Account {i:04d}", "numberofemployees": i} for i in range(2500)), user
    )
    with schema.client() as client:
        first = client.get(f"{ROOT}/account", params={"$select": "name", "$count": "true"}).json()
        assert len(first["value"]) == 1000 and first["@odata.count"] == 2500
        assert set(first["value"][0]) == {"@odata.etag", "name", "id"}
        names, url = [r["name"] for r in first["value"]], first["@odata.nextLink"]
        while url:
            page = client.get(url).json()
            names += [r["name"] for r in page["value"]]
            url = page.get("@odata.nextLink")
        assert len(names) == 2500 and len(set(names)) == 2500
        small = client.get(
            f"{ROOT}/account",
            headers={"Prefer": "odata.maxpagesize=10"},
            params={"$orderby": "numberofemployees desc", "$top": "15"},
        )
        body = small.json()
        assert small.headers["preference-applied"] == "odata.maxpagesize=10"
        assert [r["numberofemployees"] for r in body["value"]][:2] == [2499, 2498]
        rest = client.get(body["@odata.nextLink"]).json()
        assert len(rest["value"]) == 5 and "@odata.nextLink" not in rest
        skipped = client.get(
            f"{ROOT}/account", params={"$orderby": "numberofemployees", "$skip": "10", "$top": "2"}
        )
        assert [r["numberofemployees"] for r in skipped.json()["value"]] == [10, 11]
        assert client.get(f"{ROOT}/account/$count").text == "2500"


def test_filters(schema: Resco) -> None:
    user = schema.org.check_password("admin", "Pa55word")
    assert user is not None
    schema.org.create_many(
        "account",
        [
            {"name": "Contoso 100%", "revenue": 10, "lastcontacted": "2024-05-01T09:00:00Z"},
            {"name": "Fabrikam", "revenue": 30, "lastcontacted": "2024-05-01T11:00:00Z"},
            {"name": "O'Brien", "revenue": None},
        ],
        user,
    )
    with schema.client() as client:

        def names(expr: str) -> list[str]:
            response = client.get(f"{ROOT}/account", params={"$filter": expr, "$orderby": "name"})
            assert response.status_code == 200, response.text
            return [r["name"] for r in response.json()["value"]]

        assert names("contains(name,'%')") == ["Contoso 100%"]
        assert names("revenue gt 15") == ["Fabrikam"]
        assert names("revenue eq null") == ["O'Brien"]
        assert names("name eq 'O''Brien'") == ["O'Brien"]
        assert names("lastcontacted ge 2024-05-01T12:00:00+02:00") == ["Fabrikam"]
        assert names("startswith(name,'Fab') or revenue lt 20") == ["Contoso 100%", "Fabrikam"]
        max_version = schema.org.max_row_version()
        assert names(f"versionnumber gt {max_version - 1}") == ["O'Brien"]
        bad = client.get(f"{ROOT}/account", params={"$filter": "nosuchfield eq 1"})
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("Invalid $filter")
