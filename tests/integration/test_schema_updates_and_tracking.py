"""Update Server's column/table changes (Resco Cloud) and server-side tracking (Dataverse) over HTTPS.

Both sides were written from docs/emulator.md: the metadata PATCH (Resco "Wire assumptions", item 9),
the metadata PUT that switches on change tracking (dataverse-web-api.md §3.2/§5) and the
``resco_mobiletrackingconfig`` records that drive the emulated Resco plugin ("Resco tracking").
"""

from __future__ import annotations

import uuid

import pytest

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.dataverse import DataverseConnector
from crmsync_desktop.sync.connectors.resco import RescoConnector
from crmsync_desktop.sync.connectors.types import EntityMeta, FieldMeta, FieldType, OptionMeta
from crmsync_desktop.sync.tracking_config import CONFIG_ENTITY

pytestmark = pytest.mark.asyncio
ENTITY = "it_upd"


async def test_resco_columns_and_tables_change_in_place(rc: RescoConnector) -> None:
    await rc.create_entity(EntityMeta(ENTITY, label="Update", primary_name="name"))
    await rc.create_field(ENTITY, FieldMeta("code", FieldType.STRING, label="Code", max_length=5))
    await rc.create_field(ENTITY, FieldMeta("size", FieldType.PICKLIST, label="Size", options=(OptionMeta(1, "S"),)))
    rid = str(uuid.uuid4())
    (too_long,) = await rc.upsert_many(ENTITY, [{"id": rid, "name": "x", "code": "ABCDEFGH"}])
    assert not too_long.ok

    code = (await rc.get_entity(ENTITY)).field("code")
    assert code is not None
    for _ in range(2):  # idempotent
        await rc.update_field(ENTITY, FieldMeta("code", FieldType.STRING, label="Product code", max_length=20))
    await rc.update_field(ENTITY, FieldMeta("size", FieldType.PICKLIST, label="Size",
                                            options=(OptionMeta(1, "Small"), OptionMeta(2, "Large"))))
    await rc.update_entity(EntityMeta(ENTITY, label="Updated item", collection_label="Updated items"))

    meta = await rc.get_entity(ENTITY)
    code = meta.field("code")
    assert code is not None and (code.label, code.max_length, code.type) == ("Product code", 20, FieldType.STRING)
    assert meta.field("size").options == (OptionMeta(1, "Small"), OptionMeta(2, "Large"))  # type: ignore[union-attr]
    assert meta.label == "Updated item"
    (written,) = await rc.upsert_many(ENTITY, [{"id": rid, "name": "x", "code": "ABCDEFGH", "size": 2}])
    assert written.ok, written.error
    with pytest.raises(errors.CrmSyncError):
        await rc.update_field(ENTITY, FieldMeta("code", FieldType.STRING, max_length=3))  # never narrower
    with pytest.raises(errors.NotFoundError):
        await rc.update_field(ENTITY, FieldMeta("nosuch", FieldType.STRING, label="x"))
    await rc.enable_change_tracking(ENTITY)  # Resco Cloud: always on


async def test_dataverse_change_tracking_is_switched_on_by_a_metadata_put(dv: DataverseConnector) -> None:
    name = f"new_ct{uuid.uuid4().hex[:6]}"
    await dv.http.request("POST", "EntityDefinitions", json_body={
        "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata", "SchemaName": name, "OwnershipType": "UserOwned",
        "DisplayName": {"LocalizedLabels": [{"Label": "CT test", "LanguageCode": 1033}]},
        "Attributes": [{"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": f"{name}_name",
                        "IsPrimaryName": True, "MaxLength": 100}]})
    meta = await dv.get_entity(name)
    assert not meta.change_tracking
    (kept,) = await dv.upsert_many(name, [{meta.primary_id: str(uuid.uuid4()), meta.primary_name: "kept"}])
    assert kept.ok

    await dv.enable_change_tracking(name)
    await dv.enable_change_tracking(name)  # on already: nothing happens

    assert (await dv.get_entity(name)).change_tracking
    assert (await dv.capabilities([name])).change_tracking[name]
    token = None
    async for page in dv.read_changes(name, [meta.primary_name], None):
        token = page.token or token
    assert token is not None and token.kind.value == "delta"
    doomed = str(uuid.uuid4())
    await dv.upsert_many(name, [{meta.primary_id: doomed, meta.primary_name: "doomed"}])
    await dv.delete_many(name, [doomed])
    deleted = [i async for page in dv.read_changes(name, [meta.primary_name], token) for i in page.deleted_ids]
    assert doomed in deleted
    with pytest.raises(errors.ValidationError):
        await dv.enable_change_tracking("organization")


async def test_tracking_configuration_records_drive_the_plugin(dv: DataverseConnector) -> None:
    """The engine writes resco_mobiletrackingconfig through the ordinary record API; the plugin follows it."""
    config_id = str(uuid.uuid4())
    (saved,) = await dv.upsert_many(CONFIG_ENTITY, [{
        "resco_mobiletrackingconfigid": config_id, "resco_name": "competitor", "resco_entityname": "competitor",
        "resco_trackdelete": True, "resco_trackowner": False, "resco_trackdisassociate": False}])
    assert saved.ok, saved.error
    try:
        tracked = str(uuid.uuid4())
        await dv.upsert_many("competitor", [{"competitorid": tracked, "name": "Tracked Ltd"}])
        await dv.delete_many("competitor", [tracked])
        events = [r async for page in dv.read_pages(
            "resco_mobiletracking", ["resco_action", "resco_entityname", "resco_objectid"],
            fetch_filter=f'<fetch><entity name="resco_mobiletracking"><filter><condition attribute="resco_objectid" '
                         f'operator="eq" value="{tracked}"/></filter></entity></fetch>') for r in page.records]
        assert [(e["resco_action"], e["resco_entityname"]) for e in events] == [(1, "competitor")]
    finally:
        (off,) = await dv.upsert_many(CONFIG_ENTITY, [{"resco_mobiletrackingconfigid": config_id,
                                                        "resco_trackdelete": False}])
        assert off.ok
    untracked = str(uuid.uuid4())
    await dv.upsert_many("competitor", [{"competitorid": untracked, "name": "Untracked Ltd"}])
    await dv.delete_many("competitor", [untracked])
    async for page in dv.read_pages("resco_mobiletracking", ["resco_objectid"]):
        assert all(r["resco_objectid"] != untracked for r in page.records)
