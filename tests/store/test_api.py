"""The store's public surface: what ``__all__`` promises exists, repositories are coroutines."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync_desktop import store
from crmsync_desktop.store import Database, repos
from crmsync_desktop.store.models import ConnectionProfileModel
from crmsync_desktop.store.repos import list_profiles, save_profile
from tests.store.conftest import sample_profile


@pytest.mark.parametrize("module", [store, repos])
def test_all_names_exist(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        assert hasattr(module, name), name


def test_every_repository_module_is_re_exported_and_async() -> None:
    for info in pkgutil.iter_modules(repos.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{repos.__name__}.{info.name}")
        for name in module.__all__:
            assert name in repos.__all__, f"{info.name}.{name} is not re-exported"
            assert inspect.iscoroutinefunction(getattr(repos, name)), name


@pytest.mark.asyncio
async def test_readers_are_not_blocked_by_a_long_write_and_see_the_last_commit(db: Database) -> None:
    """WAL: a reader runs while the writer holds its transaction open, on the committed snapshot."""
    await save_profile(db, sample_profile("Committed"))
    writing = threading.Event()
    release = threading.Event()

    def slow_write(session: Session) -> None:
        session.add(
            ConnectionProfileModel(
                name="Uncommitted", server_kind="dataverse", server_auth_kind="password", state="disconnected"
            )
        )
        session.flush()
        writing.set()
        assert release.wait(10)

    write = asyncio.ensure_future(db.run(slow_write))
    try:
        assert await asyncio.to_thread(writing.wait, 10)
        assert [p.name for p in await list_profiles(db)] == ["Committed"]
        names = await db.read(lambda s: list(s.scalars(select(ConnectionProfileModel.name))))
        assert names == ["Committed"]
    finally:
        release.set()
        await write
    assert [p.name for p in await list_profiles(db)] == ["Committed", "Uncommitted"]
