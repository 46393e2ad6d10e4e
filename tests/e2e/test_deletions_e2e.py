"""Deletions end to end: each strategy removes deleted and reassigned-out-of-filter records; off keeps them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from crmsync_desktop.domain import DeletionStrategy, RunStatus
from crmsync_desktop.sync.connectors.types import LookupValue
from tests.e2e.harness import PROFILE, diff_summary, server_set_change_tracking

MINE = """<fetch><entity name="contact"><filter>
  <condition attribute="ownerid" operator="eq-userid"/>
</filter></entity></fetch>"""


@pytest.mark.parametrize("strategy", [DeletionStrategy.SWEEP, DeletionStrategy.TRACKING,
                                      DeletionStrategy.CHANGE_TRACKING, DeletionStrategy.OFF])
def test_deletion_strategies(rig_factory: Callable[..., Any], strategy: DeletionStrategy) -> None:
    with rig_factory(seed_records=800) as rig:
        if strategy in (DeletionStrategy.SWEEP, DeletionStrategy.TRACKING):
            # Without change tracking the change feed cannot see deletions: only the strategy can.
            server_set_change_tracking(rig.pair, "contact", False)
        if strategy is DeletionStrategy.TRACKING:
            rig.pair.dataverse_org.configure_tracking("contact", delete=True, owner=True)

        async def body() -> None:
            async with rig.session() as s:
                result, report = await s.connect(["account", "contact", "resco_mobiletracking"])
                assert result.status is RunStatus.SUCCEEDED, report.problems()
                await s.enable("account", "contact")
                await s.configure("contact", sync_filter=MINE, sync_deletion=strategy is not DeletionStrategy.OFF,
                                  deletion_strategy=strategy)
                statuses = {st.config.logical_name: st for st in await s.engine.entity_statuses(PROFILE)}
                assert statuses["contact"].resolved_deletion is strategy
                me = (await s.server.whoami()).user_id.lower()
                rng = random.Random(6)
                mine = rng.sample(sorted(await s.ids("server", "contact")), 30)
                for rid in mine:
                    await s.server.assign("contact", rid, LookupValue("systemuser", me))
                result = await s.engine.sync(PROFILE, full=True)
                assert result.status is RunStatus.SUCCEEDED, result
                assert set(await s.ids("client", "contact")) == set(mine)

                deleted, reassigned = mine[:5], mine[5:10]
                await s.server.delete_many("contact", deleted)
                someone = next(r for r in await s.records("server", "systemuser", ["systemuserid"]) if r != me)
                for rid in reassigned:
                    await s.server.assign("contact", rid, LookupValue("systemuser", someone))
                result = await s.engine.sync(PROFILE)
                assert result.status is RunStatus.SUCCEEDED, result
                on_client = set(await s.ids("client", "contact"))
                report = await s.verify()
                contact = next(e for e in report.entities if e.entity == "contact")
                if strategy is DeletionStrategy.OFF:
                    assert on_client == set(mine)  # off: nothing is removed
                    assert contact.extra_on_client == 10 and contact.missing_on_client == 0
                else:
                    assert on_client == set(mine[10:])
                    assert report.in_sync, diff_summary(report)

        asyncio.run(body())
