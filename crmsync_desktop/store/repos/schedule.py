"""The periodic sync job of each profile: its settings and where it stands.

A profile without a stored row has the default schedule (``ScheduleState()``), so callers never
have to create one first.
"""

from __future__ import annotations

from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session

from crmsync_desktop.domain import ScheduleConfig
from crmsync_desktop.store.coltypes import utcnow
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.models import ScheduleStateModel
from crmsync_desktop.store.repos._common import profile_id
from crmsync_desktop.store.values import ScheduleState

__all__ = ["get_schedule_state", "put_schedule_state", "save_schedule_config"]

_T = ScheduleStateModel.__table__
_STATE_COLUMNS = (
    "enabled",
    "interval_minutes",
    "last_started_at",
    "last_success_at",
    "consecutive_failures",
    "paused_until",
    "daily_at",
)


def load_schedule_state(session: Session, pid: int) -> ScheduleState:
    row = session.get(ScheduleStateModel, pid)
    if row is None:
        return ScheduleState()
    return ScheduleState(**{name: getattr(row, name) for name in _STATE_COLUMNS})


def upsert_schedule(session: Session, pid: int, values: dict[str, object]) -> None:
    """Insert the schedule row with defaults plus ``values``, or update just ``values``."""
    now = utcnow()
    defaults = ScheduleState()
    row = {name: getattr(defaults, name) for name in _STATE_COLUMNS} | values
    stmt = insert(_T).values(profile_id=pid, created_at=now, updated_at=now, **row)
    session.execute(
        stmt.on_conflict_do_update(index_elements=[_T.c.profile_id], set_={**values, "updated_at": now})
    )


async def get_schedule_state(db: Database, profile: str) -> ScheduleState:
    """The schedule of ``profile`` (the default one if never saved)."""
    return await db.read(lambda s: load_schedule_state(s, profile_id(s, profile)))


async def put_schedule_state(db: Database, profile: str, state: ScheduleState) -> None:
    """Store the whole schedule state of ``profile``."""
    values: dict[str, object] = {name: getattr(state, name) for name in _STATE_COLUMNS}
    await db.run(lambda s: upsert_schedule(s, profile_id(s, profile), values))


def schedule_config_values(config: ScheduleConfig) -> dict[str, object]:
    """The columns that hold the settings (enabled, interval, daily time) of a schedule."""
    return {
        "enabled": config.enabled,
        "interval_minutes": config.interval_minutes,
        "daily_at": config.daily_at,
    }


async def save_schedule_config(db: Database, profile: str, config: ScheduleConfig) -> None:
    """Change only the settings (enabled, interval, daily time) and keep where the schedule stands."""
    values = schedule_config_values(config)
    await db.run(lambda s: upsert_schedule(s, profile_id(s, profile), values))
