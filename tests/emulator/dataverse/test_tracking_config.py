"""Switching on change tracking with a metadata PUT, and the Resco tracking configuration as records."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx

from crmsync_desktop.emulator.dataverse import DataverseOrg

from .conftest import ORG_URL, entity_id


def _untracked_table(api: httpx.Client) -> dict:
    body = {"@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata", "SchemaName": "new_Visit",
            "DisplayName": {"LocalizedLabels": [{"Label": "Visit", "LanguageCode": 1033}]},
            "DisplayCollectionName": {"LocalizedLabels": [{"Label": "Visits", "LanguageCode": 1033}]},
            "OwnershipType": "UserOwned", "HasActivities": False, "HasNotes": False, "IsActivity": False,
            "Attributes": [{"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "new_Name",
                            "IsPrimaryName": True, "MaxLength": 100, "RequiredLevel": {"Value": "None"},
                            "DisplayName": {"LocalizedLabels": [{"Label": "Name", "LanguageCode": 1033}]}}]}
    assert api.post("EntityDefinitions", json=body).status_code == 204
    return api.get("EntityDefinitions(LogicalName='new_visit')").json()


def test_put_of_the_complete_definition_switches_change_tracking_on_for_good(api: httpx.Client) -> None:
    definition = _untracked_table(api)
    assert definition["ChangeTrackingEnabled"] is False
    refused = api.get("new_visits", headers={"Prefer": "odata.track-changes"})
    assert refused.status_code == 400
    api.post("new_visits", json={"new_name": "before"})
    assert api.patch("EntityDefinitions(LogicalName='new_visit')", json={"ChangeTrackingEnabled": True}).status_code == 405

    body = {k: v for k, v in definition.items() if "@" not in k} | {
        "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata", "ChangeTrackingEnabled": True,
        "DisplayName": {"LocalizedLabels": [{"Label": "Besuch", "LanguageCode": 1031}]}}
    put = api.put(f"EntityDefinitions({definition['MetadataId']})", json=body, headers={"MSCRM.MergeLabels": "true"})
    assert put.status_code == 204, put.text

    after = api.get("EntityDefinitions(LogicalName='new_visit')").json()
    assert after["ChangeTrackingEnabled"] is True
    assert {(x["Label"], x["LanguageCode"]) for x in after["DisplayName"]["LocalizedLabels"]} == {
        ("Visit", 1033), ("Besuch", 1031)}  # MergeLabels kept English
    assert after["DisplayName"]["UserLocalizedLabel"]["Label"] == "Visit"
    tracked = api.get("EntityDefinitions", params={"$select": "LogicalName",
                                                   "$filter": "ChangeTrackingEnabled eq true"}).json()["value"]
    assert {"LogicalName": "new_visit"} in [{"LogicalName": e["LogicalName"]} for e in tracked]

    first = api.get("new_visits?$select=new_name", headers={"Prefer": "odata.track-changes"})
    assert first.status_code == 200 and [r["new_name"] for r in first.json()["value"]] == ["before"]
    doomed = entity_id(api.post("new_visits", json={"new_name": "doomed"}))
    api.delete(f"new_visits({doomed})")
    delta = api.get(first.json()["@odata.deltaLink"]).json()["value"]
    assert [r.get("id") for r in delta if r.get("reason") == "deleted"] == [doomed]

    off = api.put("EntityDefinitions(LogicalName='new_visit')", json={**body, "ChangeTrackingEnabled": False})
    assert off.status_code == 400 and "cannot be disabled" in off.json()["error"]["message"]
    replaced = api.put("EntityDefinitions(LogicalName='new_visit')", json={
        "DisplayName": {"LocalizedLabels": [{"Label": "Besuch", "LanguageCode": 1031}]}})  # no MergeLabels
    assert replaced.status_code == 204
    labels = api.get("EntityDefinitions(LogicalName='new_visit')").json()["DisplayName"]["LocalizedLabels"]
    assert [(x["Label"], x["LanguageCode"]) for x in labels] == [("Besuch", 1031)]
    renamed = api.put("EntityDefinitions(LogicalName='new_visit')", json={"SchemaName": "new_Other"})
    assert renamed.status_code == 400
    never = api.put("EntityDefinitions(LogicalName='organization')", json={"ChangeTrackingEnabled": True})
    assert never.status_code == 400 and "cannot be enabled" in never.json()["error"]["message"]


def test_the_plugin_follows_configuration_records(api: httpx.Client, admin: httpx.Client) -> None:
    meta = api.get("EntityDefinitions(LogicalName='resco_mobiletrackingconfig')",
                   params={"$select": "EntitySetName,PrimaryIdAttribute,OwnershipType"}).json()
    assert (meta["EntitySetName"], meta["PrimaryIdAttribute"]) == ("resco_mobiletrackingconfigs",
                                                                  "resco_mobiletrackingconfigid")
    config = entity_id(api.post("resco_mobiletrackingconfigs", json={
        "resco_name": "contact", "resco_entityname": "contact", "resco_trackdelete": True}))
    api.post("resco_mobiletrackingconfigs", json={
        "resco_name": "leadcompetitors_association", "resco_relationshipname": "leadcompetitors_association",
        "resco_trackdisassociate": True})
    assert admin.get("config").json()["tracking"] == {
        "entities": {"contact": {"delete": True, "owner": False}},
        "relationships": {"leadcompetitors_association": True}}

    first = entity_id(api.post("contacts", json={"lastname": "A"}))
    api.delete(f"contacts({first})")
    lead = entity_id(api.post("leads", json={"lastname": "L"}))
    comp = entity_id(api.post("competitors", json={"name": "C"}))
    api.post(f"leads({lead})/leadcompetitors_association/$ref", json={"@odata.id": f"competitors({comp})"})
    api.delete(f"leads({lead})/leadcompetitors_association({comp})/$ref")
    api.patch(f"resco_mobiletrackingconfigs({config})", json={"resco_trackdelete": False})  # switched off again
    second = entity_id(api.post("contacts", json={"lastname": "B"}))
    api.delete(f"contacts({second})")

    rows = api.get("resco_mobiletrackings", params={"$select": "resco_action,resco_objectid",
                                                    "$orderby": "versionnumber"}).json()["value"]
    assert [(r["resco_action"], r["resco_objectid"]) for r in rows] == [(1, first), (3, lead)]


def test_admin_api_writes_the_same_records(api: httpx.Client, admin: httpx.Client) -> None:
    admin.put("tracking/entities/account", json={"delete": True})
    admin.put("tracking/entities/account", json={"owner": True})  # updates the same row
    rows = api.get("resco_mobiletrackingconfigs", params={
        "$select": "resco_entityname,resco_trackdelete,resco_trackowner,resco_trackdisassociate"}).json()["value"]
    assert [(r["resco_entityname"], r["resco_trackdelete"], r["resco_trackowner"]) for r in rows] == [
        ("account", True, True)]


def test_an_org_file_from_before_the_configuration_table_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    org = DataverseOrg.create(path, url=ORG_URL)
    org.close()
    conn = sqlite3.connect(path)  # make it look like an old file: no config table, the setup in JSON
    conn.execute('DROP TABLE "resco_mobiletrackingconfig"')
    conn.execute("DELETE FROM _md_entity WHERE logicalname = 'resco_mobiletrackingconfig'")
    conn.execute("DELETE FROM _md_attribute WHERE entity = 'resco_mobiletrackingconfig'")
    conn.execute("DELETE FROM _md_relationship WHERE json LIKE '%resco_mobiletrackingconfig%'")
    conn.execute("DELETE FROM sdkmessagefilter WHERE primaryobjecttypecode = 'resco_mobiletrackingconfig'")
    cfg = json.loads(conn.execute("SELECT value FROM _state WHERE key = 'config'").fetchone()[0])
    cfg["tracking"] = {"entities": {"account": {"delete": True, "owner": False}},
                       "relationships": {"leadcompetitors_association": True}}
    conn.execute("UPDATE _state SET value = ? WHERE key = 'config'", (json.dumps(cfg),))
    conn.commit()
    conn.close()
    with DataverseOrg.open(path) as upgraded:
        assert upgraded.tracking == {"entities": {"account": {"delete": True, "owner": False}},
                                     "relationships": {"leadcompetitors_association": True}}
        assert "resco_mobiletrackingconfig" in upgraded.md.entities
