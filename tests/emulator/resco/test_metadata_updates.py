"""PATCH of entities and fields in the metadata service (Update Server: labels, lengths, options, targets)."""

from __future__ import annotations

from tests.emulator.resco.conftest import ACCOUNT, CONTACT, Resco

META = "/rest/v1/metadata/contoso/entities"


def test_patch_field_relabels_widens_and_adds_options_and_targets(resco: Resco) -> None:
    with resco.client() as client:
        assert client.post(META, json=ACCOUNT).status_code == 201
        assert client.post(META, json=CONTACT).status_code == 201
        email = f"{META}/contact/fields/emailaddress1"
        changed = client.patch(email, json={"display_name": "E-mail", "max_length": 250, "required": True})
        assert changed.status_code == 200, changed.text
        assert {k: changed.json()[k] for k in ("name", "type", "display_name", "max_length", "required")} == {
            "name": "emailaddress1", "type": "string", "display_name": "E-mail", "max_length": 250, "required": True}
        again = client.patch(email, json={"display_name": "E-mail", "max_length": 250, "required": True})
        assert again.json() == changed.json()  # idempotent
        assert client.get(email).json()["max_length"] == 250

        choice = client.patch(f"{META}/account/fields/industrycode", json={"options": [
            {"value": 2, "label": "Professional Services"}, {"value": 3, "label": "Consulting"}]})
        assert choice.json()["options"] == [{"value": 1, "label": "Retail"},  # kept: records may hold it
                                            {"value": 2, "label": "Professional Services"},
                                            {"value": 3, "label": "Consulting"}]
        lookup = client.patch(f"{META}/contact/fields/parentcustomerid", json={"targets": ["contact", "systemuser"]})
        assert lookup.json()["targets"] == ["account", "contact", "systemuser"]

        entity = client.patch(f"{META}/account", json={"display_name": "Customer"})
        assert entity.status_code == 200 and entity.json()["display_name"] == "Customer"
        assert client.get(f"{META}/account").json()["display_name"] == "Customer"


def test_patch_never_changes_type_name_or_system_fields_and_never_narrows(resco: Resco) -> None:
    with resco.client() as client:
        assert client.post(META, json=ACCOUNT).status_code == 201
        assert client.post(META, json=CONTACT).status_code == 201
        email = f"{META}/contact/fields/emailaddress1"
        for body, text in (({"type": "memo"}, "type"), ({"name": "mail"}, "name"),
                           ({"max_length": 50}, "cannot shrink"), ({"colour": "red"}, "Cannot change")):
            refused = client.patch(email, json=body)
            assert refused.status_code == 400 and text in refused.json()["error"]["message"], (body, refused.text)
        assert client.patch(f"{META}/contact/fields/createdon", json={"display_name": "x"}).status_code == 400
        assert client.patch(f"{META}/contact/fields/nosuch", json={"display_name": "x"}).status_code == 404
        assert client.patch(f"{META}/nosuch", json={"display_name": "x"}).status_code == 404
        assert client.patch(f"{META}/contact", json={"primary_name": "x"}).status_code == 400
        assert client.get(email).json()["max_length"] == 100


def test_a_wider_column_accepts_longer_values(resco: Resco) -> None:
    with resco.client() as client:
        assert client.post(META, json=ACCOUNT).status_code == 201
        assert client.post(META, json=CONTACT).status_code == 201
        long_mail = "x" * 150 + "@example.com"
        refused = client.post("/odata/v4/contoso/contact", json={"emailaddress1": long_mail})
        assert refused.status_code == 400
        client.patch(f"{META}/contact/fields/emailaddress1", json={"max_length": 200})
        assert client.post("/odata/v4/contoso/contact", json={"emailaddress1": long_mail}).status_code in (201, 204)
    from crmsync_desktop.emulator.resco import RescoOrg

    reopened = RescoOrg(resco.org.path)  # the change is stored
    try:
        assert reopened.entity("contact").field("emailaddress1").max_length == 200
    finally:
        reopened.close()
