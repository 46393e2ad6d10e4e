"""A console rig for view tests: a SyncEngine over a real SQLite store and two in-memory organizations.

Used by the Connection dialog, entity grid and main window tests; coroutines run on the test's
qasync loop (``qloop.run_until_complete``), waits are ``await asyncio.sleep`` (never ``qtbot.wait``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmsync_desktop.auth.credentials import CredentialStore
from crmsync_desktop.domain import ConnectionProfile
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.connectors.types import LookupValue, Product
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.events import EventBus
from crmsync_desktop.ui.bridge import EngineBridge
from tests.fakes.memory_org import MemoryOrg, sales_org
from tests.sync.engine.conftest import PairFactory

PROFILE = "Contoso"
PROFILE_SETTINGS = ConnectionProfile(
    name=PROFILE,
    server_url="https://contoso.crm.dynamics.com",
    client_id="11111111-2222-3333-4444-555555555555",
    client_url="https://contoso.rescocrm.com",
    client_user="admin@contoso.com",
)


@dataclass
class GuiRig:
    db: Database
    server: MemoryOrg
    client: MemoryOrg
    factory: PairFactory
    engine: SyncEngine
    bridge: EngineBridge
    events: list[object]

    def close(self) -> None:
        self.bridge.detach()
        self.db.close()


def make_rig(tmp_path: Path) -> GuiRig:
    db = open_store(tmp_path / "store.sqlite3", tmp_path / "backups")
    server = sales_org(Product.DATAVERSE, name="Contoso Dynamics")
    client = MemoryOrg(Product.RESCO, name="Contoso Resco")
    factory = PairFactory(server, client)
    bus = EventBus()
    events: list[object] = []
    bus.subscribe(events.append)
    engine = SyncEngine(db, factory, bus, credentials=CredentialStore())
    return GuiRig(db, server, client, factory, engine, EngineBridge(bus), events)


def seed_accounts(rig: GuiRig, n: int) -> None:
    owner = LookupValue("systemuser", rig.server.user_id)
    for i in range(n):
        rig.server.put("account", {"accountid": f"00000000-0000-0000-0000-{i:012d}", "name": f"Account {i}",
                                   "statecode": 0, "ownerid": owner})


async def quiesce(timeout: float = 10.0) -> None:
    """Wait until no other task is pending on the loop.

    Views start follow-up tasks from done-callbacks (a save reloads the grid, a run reloads the
    counts). A task still in flight when ``run_until_complete`` returns would take its next step
    in qasync's final ``processEvents`` with no running loop (stack-recipes §4.4), so every wait
    in these tests ends only when the loop is idle.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    me = asyncio.current_task()
    quiet = 0
    while quiet < 3:
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        quiet = 0 if pending else quiet + 1
        if pending and loop.time() > deadline:
            raise AssertionError(f"tasks still pending: {pending}")
        await asyncio.sleep(0 if not pending else 0.005)


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Await (never block) until ``predicate()`` holds and the loop is idle."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)
    await quiesce(timeout)


async def settle(task: asyncio.Future[Any] | None) -> None:
    """Wait for a task started by a view, then for everything it set off."""
    if task is not None:
        await asyncio.wait([task])
    await quiesce()
