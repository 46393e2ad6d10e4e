"""Databases as released versions left them upgrade to head and keep their data (style F).

Each ``data/schema-<revision>.db`` was written by ``data/make_golden.py`` at the commit that shipped
that revision; a new schema revision adds a file and this test covers it automatically.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from crmsync_desktop.domain import AuthKind, TransactionStatus
from crmsync_desktop.store import migrate, open_database
from crmsync_desktop.store.repos import (
    count_transactions,
    get_sync_state,
    list_runs,
    load_profile_config,
)
from tests.store.conftest import PROFILE
from tests.store.data.make_golden import GOLDEN_CERTIFICATE

GOLDEN = sorted(Path(__file__).with_name("data").glob("schema-*.db"))


def test_there_is_a_golden_database_for_the_current_schema() -> None:
    assert f"schema-{migrate.head_revision()}.db" in {p.name for p in GOLDEN}


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.stem)
def test_a_released_database_upgrades_and_keeps_its_data(golden: Path, tmp_path: Path) -> None:
    path = tmp_path / "crmsync.sqlite3"
    shutil.copyfile(golden, path)
    backup = migrate.upgrade(path, tmp_path / "backups")
    at_head = golden.stem == f"schema-{migrate.head_revision()}"
    assert (backup is None) == at_head
    assert migrate.current_revision(path) == migrate.head_revision()

    async def check() -> None:
        with open_database(path) as db:
            config = await load_profile_config(db, PROFILE)
            assert [e.logical_name for e in config.entities] == ["account", "contact"]
            assert config.schedule.interval_minutes == 30
            assert config.schedule.daily_at == ("06:30" if golden.stem >= "schema-0004" else None)
            if golden.stem >= "schema-0005":
                assert config.profile.server_auth_kind is AuthKind.CERTIFICATE
                assert config.profile.certificate_path == GOLDEN_CERTIFICATE
            else:  # profiles from before certificate sign-in keep theirs, with no certificate file
                assert config.profile.server_auth_kind is AuthKind.CLIENT_SECRET
                assert config.profile.certificate_path == ""
            counts = await count_transactions(db, PROFILE)
            assert (counts[TransactionStatus.PENDING], counts[TransactionStatus.ERROR]) == (2, 1)
            state = await get_sync_state(db, PROFILE, "account")
            assert state is not None and state.token == "delta-42"
            assert [r.counts for r in await list_runs(db, PROFILE)] == [{"account": {"uploaded": 2}}]

    asyncio.run(check())
