"""Fixtures for the store tests: a migrated database in the test's own folder, and a profile."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmsync_desktop.domain import AuthKind, ConnectionProfile, ServerKind
from crmsync_desktop.store import Database, open_database, upgrade
from crmsync_desktop.store.repos import save_profile

PROFILE = "Contoso"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "crmsync.sqlite3"


@pytest.fixture
def backups_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "backups"


@pytest.fixture
def db(db_path: Path, backups_dir: Path) -> Iterator[Database]:
    upgrade(db_path, backups_dir)
    database = open_database(db_path)
    try:
        yield database
    finally:
        database.close()


def sample_profile(name: str = PROFILE) -> ConnectionProfile:
    return ConnectionProfile(
        name=name,
        server_kind=ServerKind.DATAVERSE,
        server_url="https://contoso.crm4.dynamics.com",
        server_auth_kind=AuthKind.CLIENT_SECRET,
        tenant_id="11111111-1111-1111-1111-111111111111",
        client_id="22222222-2222-2222-2222-222222222222",
        client_url="https://contoso.rescocrm.com",
        client_user="admin@contoso.com",
    )


@pytest.fixture
def profile(db: Database) -> str:
    """A saved profile; its name."""
    asyncio.run(save_profile(db, sample_profile()))
    return PROFILE
