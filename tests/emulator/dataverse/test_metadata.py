"""Metadata reads (EntityDefinitions, attribute casts, relationships, keys, sdkmessagefilters) and POSTs."""

from __future__ import annotations

import httpx
import pytest

CRM = "Microsoft.Dynamics.CRM"


def test_entity_definitions_list_select_and_enum_filter(api: httpx.Client) -> None:
    r = api.get("EntityDefinitions", params={
        "$select": "LogicalName,EntitySetName,ChangeTrackingEnabled",
        "$filter": f"OwnershipType eq {CRM}.OwnershipTypes'UserOwned' and ChangeTrackingEnabled eq true"})
    assert r.status_code == 200
    body = r.json()
    assert body["@odata.context"].endswith("$metadata#EntityDefinitions(LogicalName,EntitySetName,ChangeTrackingEnabled)")
    names = {e["LogicalName"] for e in body["value"]}
    assert {"account", "contact", "lead", "opportunity", "task", "phonecall"} <= names
    assert "competitor" not in names and "sdkmessagefilter" not in names
    assert all(set(e) == {"LogicalName", "EntitySetName", "ChangeTrackingEnabled", "MetadataId"} for e in body["value"])
    assert "@odata.nextLink" not in body  # metadata is never paged


def test_change_tracking_and_intersect_filters(api: httpx.Client) -> None:
    off = api.get("EntityDefinitions", params={
        "$select": "LogicalName", "$filter": "ChangeTrackingEnabled eq false and CanChangeTrackingBeEnabled/Value eq false"})
    assert {e["LogicalName"] for e in off.json()["value"]} >= {"sdkmessage", "sdkmessagefilter"}
    inter = api.get("EntityDefinitions", params={"$select": "LogicalName,IsIntersect", "$filter": "IsIntersect eq true"})
    assert {e["LogicalName"] for e in inter.json()["value"]} == {"leadcompetitors", "teammembership"}


def test_entity_by_logical_name_and_by_id(api: httpx.Client) -> None:
    r = api.get("EntityDefinitions(LogicalName='account')", params={"$select": "LogicalName,PrimaryIdAttribute,"
                                                                              "PrimaryNameAttribute,ObjectTypeCode"})
    one = r.json()
    assert one["@odata.context"].endswith("/$entity")
    assert (one["PrimaryIdAttribute"], one["PrimaryNameAttribute"], one["ObjectTypeCode"]) == ("accountid", "name", 1)
    again = api.get(f"EntityDefinitions({one['MetadataId']})", params={"$select": "LogicalName"}).json()
    assert again["LogicalName"] == "account"
    missing = api.get("EntityDefinitions(LogicalName='nosuch')")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "0x80040217"


def test_expand_attributes_with_nested_filter(api: httpx.Client) -> None:
    r = api.get("EntityDefinitions(LogicalName='account')", params={
        "$select": "LogicalName",
        "$expand": f"Attributes($select=LogicalName;$filter=AttributeType eq {CRM}.AttributeTypeCode'Picklist')"})
    attrs = r.json()["Attributes"]
    assert {a["LogicalName"] for a in attrs} == {"industrycode", "accountcategorycode", "customertypecode"}
    assert all(a["@odata.type"] == f"#{CRM}.PicklistAttributeMetadata" for a in attrs)


def test_attribute_collection_has_derived_types(api: httpx.Client) -> None:
    attrs = api.get("EntityDefinitions(LogicalName='contact')/Attributes").json()["value"]
    by_name = {a["LogicalName"]: a for a in attrs}
    expected = {"fullname": "String", "description": "Memo", "annualincome": "Money", "donotemail": "Boolean",
                "birthdate": "DateTime", "gendercode": "Picklist", "statecode": "State", "statuscode": "Status",
                "parentcustomerid": "Customer", "ownerid": "Owner", "contactid": "Uniqueidentifier",
                "versionnumber": "BigInt", "originatingleadid": "Lookup"}
    for name, atype in expected.items():
        assert by_name[name]["AttributeType"] == atype
    assert by_name["birthdate"]["DateTimeBehavior"] == {"Value": "DateOnly"}
    assert "OptionSet" not in by_name["gendercode"]  # navigation property: needs a cast and $expand


@pytest.mark.parametrize(("cast", "name", "prop", "expected"), [
    ("StringAttributeMetadata", "name", "MaxLength", 160),
    ("MemoAttributeMetadata", "description", "MaxLength", 2000),
    ("IntegerAttributeMetadata", "numberofemployees", "MinValue", 0),
    ("BigIntAttributeMetadata", "versionnumber", "MaxValue", 9223372036854775807),
    ("DecimalAttributeMetadata", "exchangerate", "Precision", 10),
    ("DoubleAttributeMetadata", "address1_latitude", "Precision", 5),
    ("MoneyAttributeMetadata", "revenue", "PrecisionSource", 2),
    ("DateTimeAttributeMetadata", "lastonholdtime", "Format", "DateAndTime"),
    ("LookupAttributeMetadata", "primarycontactid", "Targets", ["contact"]),
    ("LookupAttributeMetadata", "ownerid", "Targets", ["systemuser", "team"]),
    ("UniqueIdentifierAttributeMetadata", "accountid", "IsPrimaryId", True),
])
def test_attribute_casts(api: httpx.Client, cast: str, name: str, prop: str, expected: object) -> None:
    r = api.get(f"EntityDefinitions(LogicalName='account')/Attributes(LogicalName='{name}')/{CRM}.{cast}",
                params={"$select": f"LogicalName,{prop}"})
    assert r.status_code == 200, r.text
    assert r.json()[prop] == expected
    assert f"Attributes/{CRM}.{cast}/$entity" in r.json()["@odata.context"]


def test_picklist_state_status_boolean_option_sets(api: httpx.Client) -> None:
    picklists = api.get(f"EntityDefinitions(LogicalName='lead')/Attributes/{CRM}.PicklistAttributeMetadata",
                        params={"$select": "LogicalName", "$expand": "OptionSet,GlobalOptionSet"}).json()["value"]
    quality = next(a for a in picklists if a["LogicalName"] == "leadqualitycode")
    labels = {o["Value"]: o["Label"]["UserLocalizedLabel"]["Label"] for o in quality["OptionSet"]["Options"]}
    assert labels == {1: "Hot", 2: "Warm", 3: "Cold"}
    assert quality["GlobalOptionSet"] is None
    status = api.get(f"EntityDefinitions(LogicalName='lead')/Attributes(LogicalName='statuscode')/"
                     f"{CRM}.StatusAttributeMetadata", params={"$expand": "OptionSet"}).json()
    assert {o["Value"]: o["State"] for o in status["OptionSet"]["Options"]}[3] == 1
    state = api.get(f"EntityDefinitions(LogicalName='lead')/Attributes/{CRM}.StateAttributeMetadata",
                    params={"$expand": "OptionSet"}).json()["value"][0]
    assert [o["InvariantName"] for o in state["OptionSet"]["Options"]] == ["Open", "Qualified", "Disqualified"]
    boolean = api.get(f"EntityDefinitions(LogicalName='phonecall')/Attributes(LogicalName='directioncode')/"
                      f"{CRM}.BooleanAttributeMetadata", params={"$expand": "OptionSet"}).json()
    assert boolean["OptionSet"]["TrueOption"]["Label"]["UserLocalizedLabel"]["Label"] == "Outgoing"


def test_derived_property_without_cast_is_rejected(api: httpx.Client) -> None:
    r = api.get("EntityDefinitions(LogicalName='account')/Attributes", params={"$select": "LogicalName,MaxLength"})
    assert r.status_code == 400 and "MaxLength" in r.json()["error"]["message"]


def test_relationships_and_keys(api: httpx.Client) -> None:
    m2o = api.get("EntityDefinitions(LogicalName='contact')/ManyToOneRelationships", params={
        "$select": "SchemaName,ReferencingAttribute,ReferencedEntity,ReferencingEntityNavigationPropertyName"}).json()
    nav = {(r["ReferencingAttribute"], r["ReferencedEntity"]): r["ReferencingEntityNavigationPropertyName"]
           for r in m2o["value"]}
    assert nav[("parentcustomerid", "account")] == "parentcustomerid_account"
    assert nav[("parentcustomerid", "contact")] == "parentcustomerid_contact"
    o2m = api.get("EntityDefinitions(LogicalName='account')/OneToManyRelationships",
                  params={"$filter": "ReferencingEntity eq 'task'"}).json()["value"]
    assert [r["SchemaName"] for r in o2m] == ["Account_Tasks"]
    assert o2m[0]["CascadeConfiguration"]["Delete"] == "Cascade"
    m2m = api.get("EntityDefinitions(LogicalName='competitor')/ManyToManyRelationships").json()["value"]
    assert m2m[0]["SchemaName"] == "leadcompetitors_association"
    assert (m2m[0]["IntersectEntityName"], m2m[0]["Entity1LogicalName"]) == ("leadcompetitors", "lead")
    one = api.get("RelationshipDefinitions(SchemaName='account_primary_contact')").json()
    assert one["ReferencingAttribute"] == "primarycontactid"
    casted = api.get(f"RelationshipDefinitions/{CRM}.OneToManyRelationshipMetadata",
                     params={"$filter": "ReferencedEntity eq 'lead'", "$select": "SchemaName"}).json()["value"]
    assert {"opportunity_originating_lead", "contact_originating_lead"} <= {r["SchemaName"] for r in casted}
    keys = api.get("EntityDefinitions(LogicalName='account')/Keys").json()["value"]
    assert keys[0]["KeyAttributes"] == ["accountnumber"]


def test_sdkmessagefilters_tell_bulk_support(api: httpx.Client) -> None:
    def supported(message: str, table: str) -> bool:
        r = api.get("sdkmessagefilters", params={
            "$select": "sdkmessagefilterid",
            "$filter": "sdkmessageid/name eq @message and primaryobjecttypecode eq @table",
            "@message": f"'{message}'", "@table": f"'{table}'"})
        assert r.status_code == 200, r.text
        return bool(r.json()["value"])
    assert supported("CreateMultiple", "account") and supported("UpsertMultiple", "contact")
    assert not supported("CreateMultiple", "systemuser")
    expanded = api.get("sdkmessagefilters", params={"$select": "primaryobjecttypecode", "$top": "1",
                                                    "$expand": "sdkmessageid($select=name)"}).json()["value"][0]
    assert expanded["sdkmessageid"]["name"]


def test_post_entity_attribute_relationship_then_use_them(api: httpx.Client) -> None:
    label = {"LocalizedLabels": [{"Label": "Bank Account", "LanguageCode": 1033}]}
    r = api.post("EntityDefinitions", json={
        "@odata.type": f"{CRM}.EntityMetadata", "SchemaName": "new_BankAccount", "DisplayName": label,
        "DisplayCollectionName": label, "OwnershipType": "UserOwned", "HasActivities": False, "HasNotes": False,
        "IsActivity": False, "ChangeTrackingEnabled": True,
        "Attributes": [{"@odata.type": f"{CRM}.StringAttributeMetadata", "IsPrimaryName": True,
                        "SchemaName": "new_AccountName", "MaxLength": 100, "FormatName": {"Value": "Text"},
                        "DisplayName": {"LocalizedLabels": [{"Label": "Account Name", "LanguageCode": 1033}]}}]})
    assert r.status_code == 204, r.text
    assert "EntityDefinitions(" in r.headers["OData-EntityId"]
    r = api.post("EntityDefinitions(LogicalName='new_bankaccount')/Attributes", json={
        "@odata.type": f"{CRM}.MoneyAttributeMetadata", "AttributeType": "Money", "SchemaName": "new_Balance",
        "Precision": 2, "RequiredLevel": {"Value": "None"}})
    assert r.status_code == 204, r.text
    r = api.post("EntityDefinitions(LogicalName='new_bankaccount')/Attributes", json={
        "@odata.type": f"{CRM}.PicklistAttributeMetadata", "SchemaName": "new_Kind",
        "OptionSet": {"Options": [{"Value": 727000000, "Label": {"LocalizedLabels": [{"Label": "Checking"}]}},
                                  {"Value": 727000001, "Label": {"LocalizedLabels": [{"Label": "Savings"}]}}]}})
    assert r.status_code == 204, r.text
    r = api.post("RelationshipDefinitions", json={
        "@odata.type": f"{CRM}.OneToManyRelationshipMetadata", "SchemaName": "new_contact_new_bankaccount",
        "ReferencedEntity": "contact", "ReferencedAttribute": "contactid", "ReferencingEntity": "new_bankaccount",
        "Lookup": {"@odata.type": f"{CRM}.LookupAttributeMetadata", "SchemaName": "new_ContactId"}})
    assert r.status_code == 204, r.text
    r = api.post("RelationshipDefinitions", json={
        "@odata.type": f"{CRM}.ManyToManyRelationshipMetadata", "SchemaName": "new_bankaccount_account",
        "Entity1LogicalName": "new_bankaccount", "Entity2LogicalName": "account",
        "IntersectEntityName": "new_bankaccount_account"})
    assert r.status_code == 204, r.text
    meta = api.get("EntityDefinitions(LogicalName='new_bankaccount')",
                   params={"$select": "EntitySetName,ChangeTrackingEnabled,IsCustomEntity"}).json()
    assert meta["EntitySetName"] == "new_bankaccounts" and meta["IsCustomEntity"] is True
    contact = api.post("contacts", json={"lastname": "Owner"})
    cid = contact.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    row = api.post("new_bankaccounts", headers={"Prefer": "return=representation"}, json={
        "new_accountname": "Main", "new_balance": 12.5, "new_kind": 727000001,
        "new_ContactId@odata.bind": f"/contacts({cid})"}).json()
    assert row["_new_contactid_value"] == cid and row["new_balance"] == 12.5
    acc = api.post("accounts", json={"name": "Bank"}).headers["OData-EntityId"]
    assert api.post(f"new_bankaccounts({row['new_bankaccountid']})/new_bankaccount_account/$ref",
                    json={"@odata.id": acc}).status_code == 204
    assert api.get("sdkmessagefilters", params={
        "$filter": "sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq 'new_bankaccount'"}).json()["value"]
