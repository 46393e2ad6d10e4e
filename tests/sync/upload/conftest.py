from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from crmsync_desktop.domain import EntityConfig
from tests.sync.upload.harness import Env, make_env

SALES = (EntityConfig("account"), EntityConfig("contact"))


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = await make_env(tmp_path, SALES)
    try:
        yield e
    finally:
        e.close()
