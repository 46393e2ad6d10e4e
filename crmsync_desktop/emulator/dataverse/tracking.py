"""Resco tracking plugins: the ``resco_mobiletracking`` table and what gets written to it.

Resco's Dynamics plugins record three events that an incremental "modified since" sync cannot see:
deletions, ownership changes and N:N disassociations. Their real schema is not public, so this
module is the one place that defines the emulated table and the event rows (see docs/emulator.md,
section "Dataverse / Resco tracking"). Which tables and relationships are tracked is per-org
configuration (``DataverseOrg.configure_tracking``), off by default like in Woodford.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .standard import SchemaBuilder

ENTITY = "resco_mobiletracking"
ENTITY_SET = "resco_mobiletrackings"
OBJECT_TYPE_CODE = 10001

ACTION_DELETE = 1
ACTION_OWNER_CHANGE = 2
ACTION_DISASSOCIATE = 3
ACTIONS = {ACTION_DELETE: "Delete", ACTION_OWNER_CHANGE: "Owner Change", ACTION_DISASSOCIATE: "Disassociate"}


def add_schema(b: SchemaBuilder) -> None:
    b.table(ENTITY, otc=OBJECT_TYPE_CODE, primary_name="resco_name", ownership="OrganizationOwned",
            set_name=ENTITY_SET, name_length=200, schema="resco_MobileTracking", display="Mobile Tracking")
    b.attr(ENTITY, "resco_action", "Picklist", options=ACTIONS, schema="resco_Action", required="SystemRequired")
    b.attr(ENTITY, "resco_entityname", "String", max_length=64, schema="resco_EntityName")
    b.attr(ENTITY, "resco_objectid", "Uniqueidentifier", schema="resco_ObjectId")
    b.attr(ENTITY, "resco_relationshipname", "String", max_length=128, schema="resco_RelationshipName")
    b.attr(ENTITY, "resco_relatedentityname", "String", max_length=64, schema="resco_RelatedEntityName")
    b.attr(ENTITY, "resco_relatedobjectid", "Uniqueidentifier", schema="resco_RelatedObjectId")
    b.attr(ENTITY, "resco_previousownerid", "Uniqueidentifier", schema="resco_PreviousOwnerId")
    b.attr(ENTITY, "resco_previousowneridtype", "String", max_length=64, schema="resco_PreviousOwnerIdType")
    b.attr(ENTITY, "resco_newownerid", "Uniqueidentifier", schema="resco_NewOwnerId")
    b.attr(ENTITY, "resco_newowneridtype", "String", max_length=64, schema="resco_NewOwnerIdType")


def default_config() -> dict[str, Any]:
    """``{"entities": {logical: {"delete": bool, "owner": bool}}, "relationships": {schema: bool}}``."""
    return {"entities": {}, "relationships": {}}


def tracks(config: dict[str, Any], entity_name: str, what: str) -> bool:
    return bool(config.get("entities", {}).get(entity_name, {}).get(what, False))


def tracks_relationship(config: dict[str, Any], schema_name: str) -> bool:
    return bool(config.get("relationships", {}).get(schema_name, False))


def delete_event(entity_name: str, record_id: str) -> dict[str, Any]:
    return {"resco_name": f"Delete {entity_name} {record_id}", "resco_action": ACTION_DELETE,
            "resco_entityname": entity_name, "resco_objectid": record_id}


def owner_event(entity_name: str, record_id: str, old: tuple[str | None, str | None],
                new: tuple[str | None, str | None]) -> dict[str, Any]:
    return {"resco_name": f"Owner change {entity_name} {record_id}", "resco_action": ACTION_OWNER_CHANGE,
            "resco_entityname": entity_name, "resco_objectid": record_id,
            "resco_previousownerid": old[0], "resco_previousowneridtype": old[1],
            "resco_newownerid": new[0], "resco_newowneridtype": new[1]}


def disassociate_event(relationship: str, entity1: str, id1: str, entity2: str, id2: str) -> dict[str, Any]:
    return {"resco_name": f"Disassociate {relationship}", "resco_action": ACTION_DISASSOCIATE,
            "resco_entityname": entity1, "resco_objectid": id1, "resco_relationshipname": relationship,
            "resco_relatedentityname": entity2, "resco_relatedobjectid": id2}
