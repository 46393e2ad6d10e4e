"""Per-entity sync settings of a profile: enabled, filters, deletions, conflict policy, fields.

Configs are returned sorted by entity logical name. Saving is an upsert keyed on
(profile, logical name), so saving the same entity twice never duplicates it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session

from crmsync_desktop.domain import EntityConfig
from crmsync_desktop.store.coltypes import utcnow
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.models import EntityConfigModel
from crmsync_desktop.store.repos._common import profile_id

__all__ = ["delete_entity_config", "list_entity_configs", "save_entity_config", "save_entity_configs"]

_T = EntityConfigModel.__table__


def to_entity_config(row: EntityConfigModel) -> EntityConfig:
    return EntityConfig(
        logical_name=row.logical_name,
        enabled=row.enabled,
        sync_filter=row.sync_filter,
        upload_filter=row.upload_filter,
        sync_deletion=row.sync_deletion,
        deletion_strategy=row.deletion_strategy,
        conflict_policy=row.conflict_policy,
        fields=tuple(row.fields),
    )


def load_entity_configs(session: Session, pid: int) -> list[EntityConfig]:
    rows = session.scalars(
        select(EntityConfigModel)
        .where(EntityConfigModel.profile_id == pid)
        .order_by(EntityConfigModel.logical_name)
    )
    return [to_entity_config(row) for row in rows]


def upsert_entity_configs(session: Session, pid: int, configs: Iterable[EntityConfig]) -> None:
    now = utcnow()
    rows = [
        {
            "profile_id": pid,
            "logical_name": c.logical_name,
            "enabled": c.enabled,
            "sync_filter": c.sync_filter,
            "upload_filter": c.upload_filter,
            "sync_deletion": c.sync_deletion,
            "deletion_strategy": c.deletion_strategy,
            "conflict_policy": c.conflict_policy,
            "fields": list(c.fields),
            "created_at": now,
            "updated_at": now,
        }
        for c in configs
    ]
    if not rows:
        return
    stmt = insert(_T)
    updated = {
        name: stmt.excluded[name]
        for name in (
            "enabled",
            "sync_filter",
            "upload_filter",
            "sync_deletion",
            "deletion_strategy",
            "conflict_policy",
            "fields",
            "updated_at",
        )
    }
    session.execute(
        stmt.on_conflict_do_update(index_elements=[_T.c.profile_id, _T.c.logical_name], set_=updated), rows
    )


async def list_entity_configs(db: Database, profile: str) -> list[EntityConfig]:
    """The entity configs of ``profile``, sorted by logical name."""
    return await db.read(lambda s: load_entity_configs(s, profile_id(s, profile)))


async def save_entity_config(db: Database, profile: str, config: EntityConfig) -> None:
    """Insert or update one entity config of ``profile``."""
    await save_entity_configs(db, profile, [config])


async def save_entity_configs(db: Database, profile: str, configs: Iterable[EntityConfig]) -> None:
    """Insert or update several entity configs of ``profile`` in one transaction."""
    items = list(configs)
    await db.run(lambda s: upsert_entity_configs(s, profile_id(s, profile), items))


async def delete_entity_config(db: Database, profile: str, logical_name: str) -> bool:
    """Forget the config of one entity; False if there was none."""

    def work(session: Session) -> bool:
        result = session.execute(
            delete(EntityConfigModel).where(
                EntityConfigModel.profile_id == profile_id(session, profile),
                EntityConfigModel.logical_name == logical_name,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    return await db.run(work)
