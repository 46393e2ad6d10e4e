"""The download retry set: failed server records kept durably until they land."""

from __future__ import annotations

import asyncio

from crmsync_desktop.store.db import Database
from crmsync_desktop.store.repos import (
    add_download_retries,
    clear_download_retries,
    count_download_retries,
    list_download_retries,
)
from crmsync_desktop.store.repos import save_profile
from tests.store.conftest import PROFILE, sample_profile


def test_add_list_clear(db: Database) -> None:
    async def scenario() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        await save_profile(db, sample_profile())
        await add_download_retries(db, PROFILE, "account", {"a1": "bad value", "a2": "timeout"})
        await add_download_retries(db, PROFILE, "account", {"a1": "bad value again"})
        await add_download_retries(db, PROFILE, "contact", {"c1": "x"})
        first = await list_download_retries(db, PROFILE, "account")
        await clear_download_retries(db, PROFILE, "account", ["a1"])
        second = await list_download_retries(db, PROFILE, "account")
        return first, second, await count_download_retries(db, PROFILE)

    first, second, counts = asyncio.run(scenario())
    assert first == {"a1": 2, "a2": 1}
    assert second == {"a2": 1}
    assert counts == {"account": 1, "contact": 1}
