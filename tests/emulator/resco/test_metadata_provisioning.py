"""Provisioning (/_emulator/orgs) and the metadata service over real HTTPS."""

from __future__ import annotations

from tests.emulator.resco.conftest import ACCOUNT, CONTACT, Resco


def test_provision_list_and_delete_org(resco: Resco) -> None:
    with resco.client(auth=None) as admin:
        created = admin.post(
            "/_emulator/orgs", json={"name": "fabrikam", "username": "ops", "password": "pw1"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["odata_url"] == f"{resco.url}/odata/v4/fabrikam/"
        assert admin.post("/_emulator/orgs", json={"name": "fabrikam", "password": "x"}).status_code == 409
        assert [o["name"] for o in admin.get("/_emulator/orgs").json()["value"]] == ["contoso", "fabrikam"]
        assert (
            admin.post(
                "/_emulator/orgs/fabrikam/users", json={"username": "u2", "password": "pw2"}
            ).status_code
            == 201
        )
    with resco.client(auth=("u2", "pw2")) as user:
        assert user.get("/odata/v4/fabrikam/me").json()["domainname"] == "u2"
        assert user.get("/odata/v4/contoso/me").status_code == 401  # users belong to one organization
    with resco.client(auth=None) as admin:
        assert admin.delete("/_emulator/orgs/fabrikam").status_code == 204
        assert admin.get("/_emulator/orgs/fabrikam").status_code == 404
    assert not (resco.cloud.folder / "fabrikam.sqlite").exists()


def test_entities_and_fields(resco: Resco) -> None:
    with resco.client() as client:
        created = client.post("/rest/v1/metadata/contoso/entities", json=ACCOUNT)
        assert created.status_code == 201, created.text
        fields = {f["name"]: f for f in created.json()["fields"]}
        assert {"id", "createdon", "modifiedon", "ownerid", "versionnumber", "name"} <= set(fields)
        assert fields["industrycode"]["options"][1] == {"value": 2, "label": "Services"}
        assert fields["parentaccountid"]["targets"] == ["account"]
        assert client.post("/rest/v1/metadata/contoso/entities", json=CONTACT).status_code == 201
        names = [e["name"] for e in client.get("/rest/v1/metadata/contoso/entities").json()["value"]]
        assert names == ["systemuser", "team", "account", "contact"]
        added = client.post(
            "/rest/v1/metadata/contoso/entities/account/fields",
            json={"name": "websiteurl", "type": "string", "max_length": 200},
        )
        assert added.status_code == 201
        assert (
            client.get("/rest/v1/metadata/contoso/entities/account/fields/websiteurl").json()["max_length"]
            == 200
        )
        bad = client.post(
            "/rest/v1/metadata/contoso/entities/account/fields", json={"name": "x", "type": "blob"}
        )
        assert bad.status_code == 400 and "Unknown field type" in bad.json()["error"]["message"]
        bad_target = client.post(
            "/rest/v1/metadata/contoso/entities/account/fields",
            json={"name": "y", "type": "lookup", "targets": ["nosuch"]},
        )
        assert bad_target.status_code == 400
        assert (
            client.delete("/rest/v1/metadata/contoso/entities/account/fields/websiteurl").status_code == 204
        )
        assert client.delete("/rest/v1/metadata/contoso/entities/account/fields/id").status_code == 400
        assert client.delete("/rest/v1/metadata/contoso/entities/contact").status_code == 204
        assert client.delete("/rest/v1/metadata/contoso/entities/systemuser").status_code == 400
        assert client.get("/rest/v1/metadata/contoso/entities/contact").status_code == 404
    with resco.client(auth=("admin", "wrong")) as client:
        denied = client.get("/rest/v1/metadata/contoso/entities")
        assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Basic")
    # Schema survives reopening the organization file.
    from crmsync_desktop.emulator.resco import RescoOrg

    reopened = RescoOrg(resco.org.path)
    try:
        assert list(reopened.entities) == ["systemuser", "team", "account"]
        assert "websiteurl" not in reopened.entity("account").fields
    finally:
        reopened.close()
