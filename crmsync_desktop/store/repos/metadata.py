"""The server organization's metadata for a profile, as last replicated.

A snapshot is replaced as a whole in one transaction (entities, their fields, relationships), so
readers see either the previous snapshot or the new one, never a mix; the profile's
``metadata_updated_at`` is set in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from crmsync_desktop.store.coltypes import utcnow
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.models import (
    ConnectionProfileModel,
    MetadataEntityModel,
    MetadataFieldModel,
    MetadataRelationshipModel,
)
from crmsync_desktop.store.repos._common import WRITE_CHUNK, chunked, profile_id
from crmsync_desktop.store.values import (
    MetadataEntity,
    MetadataField,
    MetadataRelationship,
    MetadataSnapshot,
    RelationshipKind,
)

__all__ = ["load_metadata_snapshot", "replace_metadata_snapshot"]

_E = MetadataEntityModel.__table__
_F = MetadataFieldModel.__table__
_R = MetadataRelationshipModel.__table__
_P = ConnectionProfileModel.__table__


async def replace_metadata_snapshot(
    db: Database, profile: str, snapshot: MetadataSnapshot, *, replicated_at: datetime | None = None
) -> datetime:
    """Replace the stored metadata of ``profile`` with ``snapshot``; returns the time recorded."""

    def work(session: Session) -> datetime:
        pid = profile_id(session, profile)
        now = replicated_at or utcnow()
        session.execute(delete(_E).where(_E.c.profile_id == pid))  # fields go with their entity
        session.execute(delete(_R).where(_R.c.profile_id == pid))
        if snapshot.entities:
            entity_rows = [
                {
                    "profile_id": pid,
                    "logical_name": e.logical_name,
                    "display_name": e.display_name,
                    "primary_id_attribute": e.primary_id_attribute,
                    "primary_name_attribute": e.primary_name_attribute,
                    "entity_set_name": e.entity_set_name,
                    "change_tracking": e.change_tracking,
                    "is_intersect": e.is_intersect,
                    "raw": dict(e.raw),
                    "created_at": now,
                    "updated_at": now,
                }
                for e in snapshot.entities
            ]
            ids = session.execute(
                insert(_E).returning(_E.c.id, sort_by_parameter_order=True), entity_rows
            ).scalars()
            field_rows = [
                {
                    "entity_id": entity_id,
                    "logical_name": f.logical_name,
                    "type": f.type,
                    "label": f.label,
                    "raw": dict(f.raw),
                }
                for entity_id, e in zip(ids, snapshot.entities, strict=True)
                for f in e.fields
            ]
            for batch in chunked(field_rows, WRITE_CHUNK):
                session.execute(insert(_F), batch)
        if snapshot.relationships:
            session.execute(
                insert(_R),
                [
                    {
                        "profile_id": pid,
                        "schema_name": r.schema_name,
                        "kind": RelationshipKind(r.kind).value,
                        "entity1": r.entity1,
                        "attribute1": r.attribute1,
                        "entity2": r.entity2,
                        "attribute2": r.attribute2,
                        "intersect_entity": r.intersect_entity,
                        "raw": dict(r.raw),
                    }
                    for r in snapshot.relationships
                ],
            )
        session.execute(update(_P).where(_P.c.id == pid).values(metadata_updated_at=now, updated_at=utcnow()))
        return now

    return await db.run(work)


async def load_metadata_snapshot(db: Database, profile: str) -> MetadataSnapshot:
    """The stored metadata of ``profile`` (entities by logical name, fields by logical name)."""

    def work(session: Session) -> MetadataSnapshot:
        pid = profile_id(session, profile)
        updated_at = session.execute(select(_P.c.metadata_updated_at).where(_P.c.id == pid)).scalar_one()
        fields: dict[int, list[MetadataField]] = {}
        field_rows = session.execute(
            select(_F)
            .join(_E, _E.c.id == _F.c.entity_id)
            .where(_E.c.profile_id == pid)
            .order_by(_F.c.logical_name)
        )
        for row in field_rows:
            fields.setdefault(row.entity_id, []).append(
                MetadataField(logical_name=row.logical_name, type=row.type, label=row.label, raw=row.raw)
            )
        entities = tuple(
            MetadataEntity(
                logical_name=row.logical_name,
                display_name=row.display_name,
                primary_id_attribute=row.primary_id_attribute,
                primary_name_attribute=row.primary_name_attribute,
                entity_set_name=row.entity_set_name,
                change_tracking=row.change_tracking,
                is_intersect=row.is_intersect,
                fields=tuple(fields.get(row.id, ())),
                raw=row.raw,
            )
            for row in session.execute(select(_E).where(_E.c.profile_id == pid).order_by(_E.c.logical_name))
        )
        relationships = tuple(
            MetadataRelationship(
                schema_name=row.schema_name,
                kind=RelationshipKind(row.kind),
                entity1=row.entity1,
                entity2=row.entity2,
                attribute1=row.attribute1,
                attribute2=row.attribute2,
                intersect_entity=row.intersect_entity,
                raw=row.raw,
            )
            for row in session.execute(select(_R).where(_R.c.profile_id == pid).order_by(_R.c.schema_name))
        )
        return MetadataSnapshot(entities=entities, relationships=relationships, updated_at=updated_at)

    return await db.read(work)
