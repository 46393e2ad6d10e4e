"""Resco tracking plugins: the ``resco_mobiletracking`` table and what gets written to it.

Resco's Dynamics plugins record three events that an incremental "modified since" sync cannot see:
deletions, ownership changes and N:N disassociations. Their real schema is not public, so this
module is the one place that defines the emulated tables and the event rows (see docs/emulator.md,
section "Dataverse / Resco tracking").

Which tables and relationships are tracked is data: rows of ``resco_mobiletrackingconfig`` (one per
table or N:N relationship, with flags), which anyone with the Web API can read and write (Woodford's
Plugins screen, crmsync's Tracking dialog, or ``DataverseOrg.configure_tracking`` / the admin API,
which write the same rows). Nothing is tracked by default, like in Woodford. The plugin reads the
rows at the moment of each event, so a change applies to the next event.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .standard import SchemaBuilder

ENTITY = "resco_mobiletracking"
ENTITY_SET = "resco_mobiletrackings"
OBJECT_TYPE_CODE = 10001

CONFIG_ENTITY = "resco_mobiletrackingconfig"
CONFIG_ENTITY_SET = "resco_mobiletrackingconfigs"
CONFIG_OBJECT_TYPE_CODE = 10002
CONFIG_FLAGS = {"delete": "resco_trackdelete", "owner": "resco_trackowner", "disassociate": "resco_trackdisassociate"}

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


    add_config_schema(b)


def add_config_schema(b: SchemaBuilder) -> None:
    """``resco_mobiletrackingconfig``: one row per tracked table (delete/owner) or N:N relationship."""
    b.table(CONFIG_ENTITY, otc=CONFIG_OBJECT_TYPE_CODE, primary_name="resco_name", ownership="OrganizationOwned",
            set_name=CONFIG_ENTITY_SET, name_length=200, schema="resco_MobileTrackingConfig",
            display="Mobile Tracking Configuration")
    b.attr(CONFIG_ENTITY, "resco_entityname", "String", max_length=64, schema="resco_EntityName")
    b.attr(CONFIG_ENTITY, "resco_relationshipname", "String", max_length=128, schema="resco_RelationshipName")
    b.attr(CONFIG_ENTITY, "resco_trackdelete", "Boolean", schema="resco_TrackDelete")
    b.attr(CONFIG_ENTITY, "resco_trackowner", "Boolean", schema="resco_TrackOwner")
    b.attr(CONFIG_ENTITY, "resco_trackdisassociate", "Boolean", schema="resco_TrackDisassociate")


def default_config() -> dict[str, Any]:
    """The old JSON configuration (kept empty; the configuration now lives in ``resco_mobiletrackingconfig``)."""
    return {"entities": {}, "relationships": {}}


def tracks(conn: sqlite3.Connection, entity_name: str, what: str) -> bool:
    """Whether a configuration row asks to track ``what`` ("delete" / "owner") of ``entity_name``."""
    column = CONFIG_FLAGS[what]
    row = conn.execute(f'SELECT 1 FROM "{CONFIG_ENTITY}" WHERE resco_entityname = ? COLLATE NOCASE '
                       f'AND "{column}" = 1 LIMIT 1', (entity_name,)).fetchone()
    return row is not None


def tracks_relationship(conn: sqlite3.Connection, schema_name: str) -> bool:
    row = conn.execute(f'SELECT 1 FROM "{CONFIG_ENTITY}" WHERE resco_relationshipname = ? COLLATE NOCASE '
                       'AND resco_trackdisassociate = 1 LIMIT 1', (schema_name,)).fetchone()
    return row is not None


def config_rows(conn: sqlite3.Connection) -> dict[str, Any]:
    """``{"entities": {logical: {"delete", "owner"}}, "relationships": {schema: bool}}`` from the rows."""
    out: dict[str, Any] = {"entities": {}, "relationships": {}}
    for entity, relationship, delete, owner, nn in conn.execute(
            f'SELECT resco_entityname, resco_relationshipname, resco_trackdelete, resco_trackowner, '
            f'resco_trackdisassociate FROM "{CONFIG_ENTITY}"'):
        if relationship:
            out["relationships"][relationship] = out["relationships"].get(relationship, False) or bool(nn)
        elif entity:
            flags = out["entities"].setdefault(entity, {"delete": False, "owner": False})
            flags["delete"] = flags["delete"] or bool(delete)
            flags["owner"] = flags["owner"] or bool(owner)
    return out


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
