"""Connect creates the client schema; Update Server follows added, changed and removed server columns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from crmsync_desktop.domain import RunStatus
from crmsync_desktop.sync import metadata as metadata_sync
from crmsync_desktop.sync.connectors.types import FieldType
from tests.e2e.harness import PROFILE, diff_summary, server_relabel_attribute, server_remove_attribute

ENTITIES = ["account", "contact", "lead", "opportunity", "competitor"]


def test_connect_then_update_server_follows_the_server_schema(rig_factory: Callable[..., Any]) -> None:
    with rig_factory(seed_records=600) as rig:

        async def body() -> None:
            async with rig.session() as s:
                result, report = await s.connect(ENTITIES)
                assert result.status is RunStatus.SUCCEEDED, (result, report.problems())
                assert report.ok, report.problems()
                server = await metadata_sync.read_schema(s.server, ENTITIES)
                for se in server.entities:
                    ce = await s.client.get_entity(se.logical_name)
                    names = {f.logical_name for f in ce.fields}
                    wanted = {f.logical_name for f in se.fields if f.type is not FieldType.OTHER
                              and not f.is_primary_id and f.type not in (FieldType.ROWVERSION,)
                              and f.valid_for_create}
                    missing = wanted - names - _not_replicated(report, se.logical_name)
                    assert not missing, (se.logical_name, sorted(missing))

                # Connect again: nothing left to do.
                result, report = await s.connect(ENTITIES)
                assert result.status is RunStatus.SUCCEEDED and report.ok and not report.applied, report.lines()

                # The server gains a column, loses one and relabels one.
                await s.server_web_api("POST", "EntityDefinitions(LogicalName='account')/Attributes", {
                    "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                    "SchemaName": "new_region", "AttributeType": "String", "MaxLength": 120,
                    "DisplayName": {"LocalizedLabels": [{"Label": "Sales region", "LanguageCode": 1033}]},
                })
                server_remove_attribute(rig.pair, "account", "telephone1")
                server_relabel_attribute(rig.pair, "contact", "jobtitle", "Position held")
                result, report = await s.engine.update_server(PROFILE)
                assert result.status is RunStatus.SUCCEEDED, (result, report.problems())
                await s.reopen()
                account = await s.client.get_entity("account")
                contact = await s.client.get_entity("contact")
                added = account.field("new_region")
                assert added is not None and added.type is FieldType.STRING and added.max_length == 120
                assert added.label == "Sales region"
                assert contact.field("jobtitle").label == "Position held"
                removed = [i for i in report.issues if i.field == "telephone1"]
                assert removed and "deleted on the server" in removed[0].message
                # The removed column is no longer synchronized; the new one is.
                snapshot = await s.engine.server_schema(PROFILE)
                assert snapshot.field("account", "telephone1") is None
                assert snapshot.field("account", "new_region") is not None

                # Data follows the new schema: a value in the new column reaches the client.
                await s.enable("account", "contact")
                some = (await s.ids("server", "account"))[:3]
                await s.server.upsert_many("account", [{"accountid": i, "new_region": f"EMEA {n}"}
                                                       for n, i in enumerate(some)])
                result = await s.engine.sync(PROFILE, full=True)
                assert result.status is RunStatus.SUCCEEDED, result
                on_client = await s.records("client", "account", ["id", "new_region"], some)
                assert sorted(str(r.get("new_region")) for r in on_client.values()) == ["EMEA 0", "EMEA 1", "EMEA 2"]
                report_v = await s.verify()
                assert report_v.in_sync, diff_summary(report_v)
                # Update Server again: nothing to apply.
                result, report = await s.engine.update_server(PROFILE)
                assert result.status is RunStatus.SUCCEEDED and not report.applied, report.lines()

        asyncio.run(body())


def _not_replicated(report: Any, entity: str) -> set[str]:
    """Columns the plan reported as not replicated (lookups to tables that are not synchronized)."""
    return {i.field for i in report.issues if i.entity == entity and i.field}

