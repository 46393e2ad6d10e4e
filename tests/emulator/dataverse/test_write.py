"""Create, update, upsert, conditional writes, binds, owner assignment, $ref, single properties, delete."""

from __future__ import annotations

import uuid

import httpx

from crmsync_desktop.emulator.dataverse import DataverseOrg

from .conftest import entity_id


def test_create_204_and_201_with_representation(api: httpx.Client) -> None:
    r = api.post("accounts", json={"name": "Contoso"})
    assert r.status_code == 204 and r.content == b""
    assert r.headers["OData-EntityId"].endswith(f"/api/data/v9.2/accounts({entity_id(r)})")
    r = api.post("accounts?$select=name", json={"name": "Fabrikam"}, headers={"Prefer": "return=representation"})
    assert r.status_code == 201 and "OData-EntityId" not in r.headers
    body = r.json()
    assert body["name"] == "Fabrikam" and set(body) == {"@odata.context", "@odata.etag", "accountid", "name"}
    assert r.headers["Preference-Applied"] == "return=representation"


def test_platform_columns_maintained(api: httpx.Client) -> None:
    who = api.get("WhoAmI").json()
    aid = entity_id(api.post("accounts", json={"name": "V1", "createdon": "2000-01-01T00:00:00Z"}))
    row = api.get(f"accounts({aid})").json()
    assert row["_ownerid_value"] == row["_createdby_value"] == row["_modifiedby_value"] == who["UserId"]
    assert row["_owningbusinessunit_value"] == who["BusinessUnitId"]
    assert row["statecode"] == 0 and row["statuscode"] == 1 and row["createdon"] != "2000-01-01T00:00:00Z"
    v1 = row["versionnumber"]
    api.patch(f"accounts({aid})", json={"statecode": 1}, headers={"If-Match": "*"})
    row2 = api.get(f"accounts({aid})").json()
    assert row2["versionnumber"] > v1 and row2["statuscode"] == 2 and row2["@odata.etag"] == f'W/"{row2["versionnumber"]}"'


def test_client_supplied_id_and_duplicate(api: httpx.Client) -> None:
    rid = str(uuid.uuid4())
    r = api.post("contacts", json={"contactid": rid, "firstname": "Ann", "lastname": "Lee"})
    assert entity_id(r) == rid
    assert api.get(f"contacts({rid})?$select=fullname").json()["fullname"] == "Ann Lee"
    dup = api.post("contacts", json={"contactid": rid, "lastname": "Again"})
    assert dup.status_code == 412 and dup.json()["error"]["code"] == "0x80040237"


def test_validation_errors(api: httpx.Client) -> None:
    r = api.post("accounts", json={"name": "x" * 161})
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80044331"
    r = api.post("accounts", json={"industrycode": 999})
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x8004431A"
    r = api.post("accounts", json={"numberofemployees": "many"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80048d19"
    r = api.post("accounts", json={"nosuch": 1})
    assert r.status_code == 400 and "does not exist on type 'Microsoft.Dynamics.CRM.account'" in r.json()["error"]["message"]


def test_update_upsert_and_conditions(api: httpx.Client) -> None:
    rid = str(uuid.uuid4())
    missing = api.patch(f"accounts({rid})", json={"name": "x"}, headers={"If-Match": "*"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "0x80040217"
    created = api.patch(f"accounts({rid})", json={"name": "Upserted"}, headers={"Prefer": "return=representation"})
    assert created.status_code == 201 and created.json()["accountid"] == rid
    updated = api.patch(f"accounts({rid})", json={"name": "Again"}, headers={"Prefer": "return=representation"})
    assert updated.status_code == 200 and updated.json()["name"] == "Again"
    plain = api.patch(f"accounts({rid})", json={"telephone1": "1"})
    assert plain.status_code == 204 and plain.headers["OData-EntityId"].endswith(f"accounts({rid})")
    exists = api.patch(f"accounts({rid})", json={"name": "x"}, headers={"If-None-Match": "*"})
    assert exists.status_code == 412
    assert exists.json()["error"] == {"code": "0x80040237", "message": "A record with matching key values already exists."}
    etag = api.get(f"accounts({rid})").headers["ETag"]
    assert api.patch(f"accounts({rid})", json={"name": "ok"}, headers={"If-Match": etag}).status_code == 204
    stale = api.patch(f"accounts({rid})", json={"name": "stale"}, headers={"If-Match": etag})
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "0x80060882"
    assert api.delete(f"accounts({rid})", headers={"If-Match": etag}).status_code == 412
    fresh = api.get(f"accounts({rid})").headers["ETag"]
    assert api.delete(f"accounts({rid})", headers={"If-Match": fresh}).status_code == 204
    assert api.delete(f"accounts({rid})").status_code == 404


def test_upsert_by_alternate_key(api: httpx.Client) -> None:
    r = api.patch("accounts(accountnumber='K-9')", json={"name": "By key"})
    assert r.status_code == 204
    aid = entity_id(r)
    r = api.patch("accounts(accountnumber='K-9')", json={"name": "By key 2"})
    assert entity_id(r) == aid
    assert api.get(f"accounts({aid})?$select=name,accountnumber").json()["accountnumber"] == "K-9"
    dup = api.post("accounts", json={"name": "dup", "accountnumber": "K-9"})
    assert dup.status_code == 412 and dup.json()["error"]["code"] == "0x80060892"
    assert api.delete("accounts(accountnumber='K-9')").status_code == 204


def test_bind_clear_and_owner_assignment(api: httpx.Client, user_api: httpx.Client, org: DataverseOrg) -> None:
    acc = entity_id(api.post("accounts", json={"name": "Parent"}))
    con = entity_id(api.post("contacts", json={"lastname": "Kid", "parentcustomerid_account@odata.bind": f"/accounts({acc})"}))
    assert api.get(f"contacts({con})?$select=_parentcustomerid_value").json()["_parentcustomerid_value"] == acc
    api.patch(f"contacts({con})", json={"parentcustomerid_account@odata.bind": None})
    assert api.get(f"contacts({con})?$select=_parentcustomerid_value").json()["_parentcustomerid_value"] is None
    api.patch(f"accounts({acc})", json={"primarycontactid@odata.bind": f"contacts({con})"})
    api.patch(f"accounts({acc})", json={"primarycontactid": None})
    assert api.get(f"accounts({acc})?$select=_primarycontactid_value").json()["_primarycontactid_value"] is None
    wrong = api.patch(f"accounts({acc})", json={"primarycontactid@odata.bind": f"/accounts({acc})"})
    assert wrong.status_code == 400
    ghost = api.patch(f"accounts({acc})", json={"primarycontactid@odata.bind": f"/contacts({uuid.uuid4()})"})
    assert ghost.status_code == 404
    user_id = user_api.get("WhoAmI").json()["UserId"]
    assert api.patch(f"accounts({acc})", json={"ownerid@odata.bind": f"/systemusers({user_id})"}).status_code == 204
    row = api.get(f"accounts({acc})?$select=_ownerid_value", headers={"Prefer": 'odata.include-annotations="*"'}).json()
    assert row["_ownerid_value"] == user_id
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "systemuser"
    team = entity_id(api.post("teams", json={"name": "Sales", "businessunitid@odata.bind":
                                             f"businessunits({org.root_business_unit_id})"}))
    api.patch(f"accounts({acc})", json={"ownerid@odata.bind": f"teams({team})"})
    row = api.get(f"accounts({acc})?$select=_ownerid_value", headers={"Prefer": 'odata.include-annotations="*"'}).json()
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "team"
    mine = user_api.post("accounts", json={"name": "mine"})
    assert api.get(f"accounts({entity_id(mine)})?$select=_ownerid_value").json()["_ownerid_value"] == user_id


def test_ref_associate_disassociate_nn_and_1n(api: httpx.Client, server: str) -> None:
    lead = entity_id(api.post("leads", json={"lastname": "Prospect"}))
    comp = entity_id(api.post("competitors", json={"name": "Rival"}))
    r = api.post(f"leads({lead})/leadcompetitors_association/$ref",
                 json={"@odata.id": f"{server}/api/data/v9.2/competitors({comp})"})
    assert r.status_code == 204
    related = api.get(f"leads({lead})/leadcompetitors_association?$select=name").json()["value"]
    assert [c["name"] for c in related] == ["Rival"]
    inter = api.get("leadcompetitorscollection", params={"$select": "leadid,competitorid"}).json()["value"]
    assert [(x["leadid"], x["competitorid"]) for x in inter] == [(lead, comp)]
    expanded = api.get(f"competitors({comp})?$select=name&$expand=leadcompetitors_association($select=fullname)").json()
    assert [x["leadid"] for x in expanded["leadcompetitors_association"]] == [lead]
    assert api.delete(f"leads({lead})/leadcompetitors_association({comp})/$ref").status_code == 204
    assert api.get(f"leads({lead})/leadcompetitors_association").json()["value"] == []
    api.post(f"competitors({comp})/leadcompetitors_association/$ref", json={"@odata.id": f"leads({lead})"})
    assert api.delete(f"competitors({comp})/leadcompetitors_association/$ref",
                      params={"$id": f"{server}/api/data/v9.2/leads({lead})"}).status_code == 204
    acc = entity_id(api.post("accounts", json={"name": "P"}))
    task = entity_id(api.post("tasks", json={"subject": "t"}))
    assert api.post(f"accounts({acc})/Account_Tasks/$ref", json={"@odata.id": f"tasks({task})"}).status_code == 204
    row = api.get(f"tasks({task})?$select=_regardingobjectid_value", headers={"Prefer": 'odata.include-annotations="*"'}).json()
    assert row["_regardingobjectid_value"] == acc
    assert row["_regardingobjectid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "regardingobjectid_account_task"
    con = entity_id(api.post("contacts", json={"lastname": "C"}))
    assert api.put(f"accounts({acc})/primarycontactid/$ref", json={"@odata.id": f"contacts({con})"}).status_code == 204
    assert api.get(f"accounts({acc})/primarycontactid?$select=lastname").json()["lastname"] == "C"
    assert api.delete(f"accounts({acc})/primarycontactid/$ref").status_code == 204


def test_single_property_put_delete_and_cascade(api: httpx.Client) -> None:
    acc = entity_id(api.post("accounts", json={"name": "Cascade", "description": "d"}))
    assert api.put(f"accounts({acc})/name", json={"value": "Renamed"}).status_code == 204
    assert api.delete(f"accounts({acc})/description").status_code == 204
    row = api.get(f"accounts({acc})?$select=name,description").json()
    assert (row["name"], row["description"]) == ("Renamed", None)
    task = entity_id(api.post("tasks", json={"subject": "child", "regardingobjectid_account_task@odata.bind": f"accounts({acc})"}))
    con = entity_id(api.post("contacts", json={"lastname": "x"}))
    api.patch(f"contacts({con})", json={"parentcustomerid_account@odata.bind": f"accounts({acc})"})
    opp = entity_id(api.post("opportunities", json={"name": "o", "parentaccountid@odata.bind": f"accounts({acc})"}))
    assert api.delete(f"accounts({acc})").status_code == 204
    assert api.get(f"tasks({task})").status_code == 404  # parental: cascade delete
    assert api.get(f"contacts({con})").status_code == 404
    assert api.get(f"opportunities({opp})?$select=_parentaccountid_value").json()["_parentaccountid_value"] is None
