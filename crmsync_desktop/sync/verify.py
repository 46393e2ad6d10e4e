"""Verify: are the two organizations really in sync? Compares ids and field values, entity by entity.

For each enabled entity it streams the server's filtered set and the client's records, hashing
the fields that travel (``records.content_hash``), and reports records missing on the client,
records the client still holds that the server's set no longer has, and records whose values
differ, with a few examples of each. Records the client organization created itself and the
engine never saw are counted apart: they are not differences. A lookup to a record of a synchronized
entity that the client does not hold (outside that entity's sync filter) is not compared, on either
side: the download cannot write it (the target is not there), and a client record may still point
at a target that left the filter. A target that should be there is reported as missing under its
own entity.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import LookupValue, Record
from crmsync_desktop.sync.download import EntityPlan
from crmsync_desktop.sync.owner_mapping import USER_ENTITY, load_stored_mapping
from crmsync_desktop.sync.records import content_hash, project
from crmsync_desktop.sync.run_recorder import RunRecorder

EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class EntityDifferences:
    entity: str
    server_count: int
    client_count: int
    missing_on_client: int
    extra_on_client: int
    different: int
    client_only: int  # created in the client organization, never seen by the engine: not a difference
    examples: tuple[str, ...] = ()

    @property
    def in_sync(self) -> bool:
        return not (self.missing_on_client or self.extra_on_client or self.different)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    entities: tuple[EntityDifferences, ...]

    @property
    def in_sync(self) -> bool:
        return all(e.in_sync for e in self.entities)

    @property
    def differences(self) -> int:
        return sum(e.missing_on_client + e.extra_on_client + e.different for e in self.entities)


async def verify_entity(
    db: Database, profile: str, server: Connector, client: Connector, plan: EntityPlan, fetch_filter: str,
    recorder: RunRecorder,
) -> EntityDifferences:
    fields = plan.fields.fields
    pid = plan.fields.primary_id
    # Owner mapping (sync/owner_mapping.py): client users mapped from server users compare as those
    # server users; a mapped server user and its client user are one person, not a difference.
    users = await load_stored_mapping(db, profile)
    same_person = (set(users.to_client), set(users.to_server)) if plan.entity == USER_ENTITY else (set(), set())
    expected: dict[int, str] = {}
    async for page in server.read_pages(plan.entity, fields, fetch_filter=fetch_filter):
        projected_page = [project(record, plan.fields) for record in page.records]
        for projected in await _as_writable(db, profile, plan, projected_page):
            if str(projected[pid]).lower() in same_person[0]:
                continue
            expected[uuid.UUID(str(projected[pid])).int] = content_hash(projected, fields)
        recorder.progress(plan.entity, "verify", len(expected))
    server_count = len(expected)
    examples: list[str] = []
    client_count = different = extra = client_only = 0
    unmatched_extra: list[str] = []
    async for page in client.read_pages(plan.entity, plan.fields.client_fields):
        projected_page = [project(users.server_record(plan.fields.from_client(record)), plan.fields)
                          for record in page.records
                          if str(plan.fields.from_client(record).get(pid, "")).lower() not in same_person[1]]
        for projected in await _as_writable(db, profile, plan, projected_page):
            client_count += 1
            rid = str(projected[pid]).lower()
            key = uuid.UUID(rid).int
            want = expected.pop(key, None)
            if want is None:
                unmatched_extra.append(rid)
            elif want != content_hash(projected, fields):
                different += 1
                if len(examples) < EXAMPLES:
                    examples.append(f"{rid}: field values differ")
    for start in range(0, len(unmatched_extra), 500):
        chunk = unmatched_extra[start : start + 500]
        held = await repos.get_record_states(db, profile, plan.entity, chunk)
        for rid in chunk:
            if rid in held:
                extra += 1
                if len(examples) < 2 * EXAMPLES:
                    examples.append(f"{rid}: on the client, not in the server's filtered set")
            else:
                client_only += 1
    missing = len(expected)
    for key in list(expected)[:EXAMPLES]:
        examples.append(f"{uuid.UUID(int=key)}: on the server, missing on the client")
    return EntityDifferences(
        entity=plan.entity,
        server_count=server_count,
        client_count=client_count,
        missing_on_client=missing,
        extra_on_client=extra,
        different=different,
        client_only=client_only,
        examples=tuple(examples),
    )


async def _as_writable(db: Database, profile: str, plan: EntityPlan, records: list[Record]) -> list[Record]:
    """The records without their lookups to synchronized records the client does not hold (not compared)."""
    wanted: dict[str, set[str]] = {}
    for record in records:
        for value in record.values():
            if isinstance(value, LookupValue) and value.entity in plan.synced_entities:
                wanted.setdefault(value.entity, set()).add(value.id.lower())
    if not wanted:
        return records
    held = {target: set(await repos.get_record_states(db, profile, target, sorted(ids)))
            for target, ids in wanted.items()}
    pid = plan.fields.primary_id
    out: list[Record] = []
    for record in records:
        rid = str(record[pid]).lower()
        out.append({
            name: value for name, value in record.items()
            if not (isinstance(value, LookupValue) and value.entity in plan.synced_entities
                    and value.id.lower() != rid and value.id.lower() not in held[value.entity])
        })
    return out


async def verify(
    db: Database, profile: str, server: Connector, client: Connector, plans: Sequence[tuple[EntityPlan, str]],
    recorder: RunRecorder,
) -> VerifyReport:
    results = []
    for plan, fetch_filter in plans:
        diff = await verify_entity(db, profile, server, client, plan, fetch_filter, recorder)
        results.append(diff)
        level = "INFO" if diff.in_sync else "WARNING"
        recorder.line(
            level,
            f"Verify: {diff.server_count} on the server, {diff.client_count} on the client; "
            f"{diff.missing_on_client} missing, {diff.extra_on_client} extra, {diff.different} different"
            + (f", {diff.client_only} created on the client" if diff.client_only else ""),
            plan.entity,
        )
        for example in diff.examples:
            recorder.line("INFO", f"  {example}", plan.entity)
    return VerifyReport(tuple(results))
