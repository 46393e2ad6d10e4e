"""Connection profiles and the whole per-profile configuration (Export/Import).

Profiles are found by name, but every other table points at the profile's id, so renaming is one
``UPDATE``. Deleting a profile removes everything under it; it refuses while offline transactions
are still undelivered unless told to discard them, because the queue may be the only copy of a
user's changes. Secrets are never stored here (see ``crmsync_desktop.auth``).
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from crmsync_desktop.domain import ConnectionProfile, ProfileConfig, TransactionStatus
from crmsync_desktop.errors import ConfigError, StoreError
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.models import ConnectionProfileModel, EntityConfigModel, OfflineTransactionModel
from crmsync_desktop.store.repos._common import profile_id, profile_not_found
from crmsync_desktop.store.repos.entity_configs import load_entity_configs, upsert_entity_configs
from crmsync_desktop.store.repos.schedule import load_schedule_state, schedule_config_values, upsert_schedule

__all__ = [
    "delete_profile",
    "get_profile",
    "list_profiles",
    "load_profile_config",
    "rename_profile",
    "replace_profile_config",
    "save_profile",
]

_FIELDS = (
    "server_kind",
    "server_url",
    "server_auth_kind",
    "tenant_id",
    "client_id",
    "server_user",
    "client_url",
    "client_user",
    "state",
    "metadata_updated_at",
    "verify_tls",
    "certificate_path",
)


def _to_profile(row: ConnectionProfileModel) -> ConnectionProfile:
    return ConnectionProfile(name=row.name, **{name: getattr(row, name) for name in _FIELDS})


def _checked_name(name: str) -> str:
    if not name or name != name.strip():
        raise ConfigError(
            f"{name!r} is not a valid profile name: it must not be empty or start or end with spaces."
        )
    return name


def _row(session: Session, name: str) -> ConnectionProfileModel:
    row = session.scalars(select(ConnectionProfileModel).where(ConnectionProfileModel.name == name)).first()
    if row is None:
        raise profile_not_found(name)
    return row


def _upsert_profile(session: Session, profile: ConnectionProfile) -> int:
    _checked_name(profile.name)
    row = session.scalars(
        select(ConnectionProfileModel).where(ConnectionProfileModel.name == profile.name)
    ).first()
    if row is None:
        row = ConnectionProfileModel(name=profile.name)
        session.add(row)
    for name in _FIELDS:
        setattr(row, name, getattr(profile, name))
    session.flush()
    return row.id


async def list_profiles(db: Database) -> list[ConnectionProfile]:
    """Every profile, sorted by name."""

    def work(session: Session) -> list[ConnectionProfile]:
        rows = session.scalars(select(ConnectionProfileModel).order_by(ConnectionProfileModel.name))
        return [_to_profile(row) for row in rows]

    return await db.read(work)


async def get_profile(db: Database, name: str) -> ConnectionProfile:
    """The profile named ``name``; raises ``ProfileNotFoundError``."""
    return await db.read(lambda s: _to_profile(_row(s, name)))


async def save_profile(db: Database, profile: ConnectionProfile) -> ConnectionProfile:
    """Insert the profile, or update the one with the same name; returns what was stored."""

    def work(session: Session) -> ConnectionProfile:
        pid = _upsert_profile(session, profile)
        return _to_profile(session.get_one(ConnectionProfileModel, pid))

    return await db.run(work)


async def rename_profile(db: Database, old_name: str, new_name: str) -> ConnectionProfile:
    """Rename a profile, keeping all its configuration, state, queue and history.

    Raises:
        ProfileNotFoundError: no profile is named ``old_name``.
        ConfigError: ``new_name`` is invalid or already taken.
    """
    _checked_name(new_name)

    def work(session: Session) -> ConnectionProfile:
        row = _row(session, old_name)
        if new_name != old_name:
            taken = session.scalar(
                select(ConnectionProfileModel.id).where(ConnectionProfileModel.name == new_name)
            )
            if taken is not None:
                raise ConfigError(
                    f"A connection profile named {new_name!r} already exists. Choose another name.",
                    profile=old_name,
                )
            row.name = new_name
            session.flush()
        return _to_profile(row)

    return await db.run(work)


async def delete_profile(db: Database, name: str, *, discard_undelivered: bool = False) -> None:
    """Delete a profile with its configuration, state, queue and history.

    Raises:
        ProfileNotFoundError: no profile is named ``name``.
        StoreError: offline transactions are still Pending or in Error and
            ``discard_undelivered`` is false; nothing was deleted.
    """

    def work(session: Session) -> None:
        pid = profile_id(session, name)
        if not discard_undelivered:
            undelivered = session.scalar(
                select(func.count())
                .select_from(OfflineTransactionModel)
                .where(
                    OfflineTransactionModel.profile_id == pid,
                    OfflineTransactionModel.status.in_([TransactionStatus.PENDING, TransactionStatus.ERROR]),
                )
            )
            if undelivered:
                raise StoreError(
                    f"The profile {name!r} still has {undelivered} offline transactions that were not "
                    "delivered to the server. Deliver or archive them first, or confirm deleting them "
                    "with the profile.",
                    title="Undelivered changes",
                    profile=name,
                )
        session.execute(delete(ConnectionProfileModel).where(ConnectionProfileModel.id == pid))

    await db.run(work)


async def replace_profile_config(db: Database, config: ProfileConfig) -> None:
    """Make the stored profile exactly ``config`` (Import), all or nothing.

    The profile is created or overwritten field by field, its entity configs become exactly
    ``config.entities`` (others are removed) and its schedule settings are replaced; where the
    schedule stands (last run, failures) is kept. Sync state, queue and history are untouched.
    """

    def work(session: Session) -> None:
        pid = _upsert_profile(session, config.profile)
        keep = [entity.logical_name for entity in config.entities]
        session.execute(
            delete(EntityConfigModel).where(
                EntityConfigModel.profile_id == pid, EntityConfigModel.logical_name.not_in(keep)
            )
        )
        upsert_entity_configs(session, pid, config.entities)
        upsert_schedule(session, pid, schedule_config_values(config.schedule))

    await db.run(work)


async def load_profile_config(db: Database, name: str) -> ProfileConfig:
    """Everything Export writes for one profile: the profile, its entity configs, its schedule."""

    def work(session: Session) -> ProfileConfig:
        row = _row(session, name)
        return ProfileConfig(
            profile=_to_profile(row),
            entities=tuple(load_entity_configs(session, row.id)),
            schedule=load_schedule_state(session, row.id).config,
        )

    return await db.read(work)
