"""Deletions and ownership changes that an incremental "changed since" read cannot see.

Two strategies besides change-tracking tombstones (handled in ``download``):

* **Sync Deletion (sweep)**: read only the ids of the server's filtered set and remove from the
  client every record this profile brought there that is no longer in it: deleted, reassigned out
  of the filter, or no longer matching. Records the engine never saw (created in the client
  organization and not uploaded) are never touched. Memory: one set of 128-bit ids (about 100 MB
  per million records).
* **Tracking records** (Advanced sync deletion): Resco's server plugins write a
  ``resco_mobiletracking`` row per deletion, owner change and N:N removal; they are read
  incrementally, so the cost follows the number of events, not the size of the table.

The tracking table's shape is documented in docs/emulator.md ("Resco tracking"); this module is the
one place in the engine that knows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from crmsync_desktop.domain import DeletionStrategy
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.values import SyncState
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import ChangePage, FieldValue
from crmsync_desktop.sync.download import (
    ID_CHUNK,
    EntityDownloader,
    EntityPlan,
    state_to_token,
    token_to_state,
    with_ids,
)
from crmsync_desktop.sync.filters import FetchFilter
from crmsync_desktop.sync.run_recorder import RunRecorder

TRACKING_ENTITY = "resco_mobiletracking"
TRACKING_FIELDS = (
    "resco_mobiletrackingid",
    "resco_action",
    "resco_entityname",
    "resco_objectid",
    "resco_relationshipname",
    "resco_relatedentityname",
    "resco_relatedobjectid",
)
ACTION_DELETE = 1
ACTION_OWNER_CHANGE = 2
ACTION_DISASSOCIATE = 3
# The tracking cursor is kept like an entity's, under this pseudo-entity name.
TRACKING_STATE = "$tracking"


def _key(record_id: str) -> int:
    return uuid.UUID(record_id).int


async def sweep(
    db: Database, profile: str, server: Connector, client: Connector, plan: EntityPlan, recorder: RunRecorder,
    fetch_filter: str, *, dry_run: bool = False,
) -> int:
    """Remove from the client what this profile holds and the server's filtered set no longer has."""
    on_server: set[int] = set()
    async for ids in server.read_ids(plan.entity, fetch_filter=fetch_filter):
        on_server.update(_key(i) for i in ids)
        recorder.progress(plan.entity, "deletion sweep", len(on_server))
    gone: list[str] = []
    removed = 0
    after: str | None = None
    while True:
        held = await repos.list_record_states(db, profile, plan.entity, after_record_id=after, limit=5000)
        if not held:
            break
        after = held[-1].record_id
        gone.extend(s.record_id for s in held if _key(s.record_id) not in on_server)
        if dry_run:
            removed += len(gone)
            recorder.count(plan.entity, "deleted", len(gone))
            gone.clear()
        while len(gone) >= ID_CHUNK:
            removed += await _remove(db, profile, client, plan, recorder, gone[:ID_CHUNK])
            del gone[:ID_CHUNK]
    if gone:
        removed += await _remove(db, profile, client, plan, recorder, gone)
    verb = "would be removed" if dry_run else "removed"
    recorder.info(f"Deletion sweep: {len(on_server)} record(s) on the server, {removed} {verb} from the client",
                  plan.entity)
    return removed


async def _remove(
    db: Database, profile: str, client: Connector, plan: EntityPlan, recorder: RunRecorder, ids: Sequence[str]
) -> int:
    results = await client.delete_many(plan.entity, list(ids))
    ok = [r.id.lower() for r in results if r.ok]
    await repos.delete_record_states(db, profile, plan.entity, ok)
    recorder.count(plan.entity, "deleted", len(ok))
    for r in results:
        if not r.ok:
            recorder.count(plan.entity, "failed")
            recorder.error(f"Could not remove {r.id} from the client: {r.error}", plan.entity)
    return len(ok)


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    action: int
    entity: str
    object_id: str
    relationship: str | None = None
    related_entity: str | None = None
    related_id: str | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, FieldValue]) -> TrackingEvent | None:
        try:
            action = int(record.get("resco_action"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        entity, object_id = record.get("resco_entityname"), record.get("resco_objectid")
        if not isinstance(entity, str) or not isinstance(object_id, str):
            return None
        rel, rel_entity, rel_id = (record.get(k) for k in (
            "resco_relationshipname", "resco_relatedentityname", "resco_relatedobjectid"))
        return cls(action, entity, object_id.lower(), rel if isinstance(rel, str) else None,
                   rel_entity if isinstance(rel_entity, str) else None,
                   rel_id.lower() if isinstance(rel_id, str) else None)


async def apply_tracking(
    db: Database,
    profile: str,
    server: Connector,
    client: Connector,
    plans: Mapping[str, EntityPlan],
    downloader: EntityDownloader,
    recorder: RunRecorder,
) -> int:
    """Read new tracking records and apply them to the entities that use the tracking strategy.

    Deletions remove the record from the client; an owner change re-reads the record under the
    sync filter (it may have left or entered it); an N:N removal unlinks the pair. Returns the
    number of events applied.
    """
    state = await repos.get_sync_state(db, profile, TRACKING_STATE) or SyncState(entity=TRACKING_STATE)
    token = state_to_token(state)
    applied = 0
    async for page in server.read_changes(TRACKING_ENTITY, TRACKING_FIELDS, token):
        events = [e for e in (TrackingEvent.from_record(r) for r in page.upserts) if e is not None]
        applied += await _apply_events(db, profile, server, client, plans, downloader, recorder, events)
        if page.token is not None:
            value, kind = token_to_state(page.token)
            state = replace(state, token=value, strategy=kind, last_sync_at=datetime.now(UTC))
            await repos.put_sync_state(db, profile, state)
        await recorder.flush()
    if applied:
        recorder.info(f"Applied {applied} tracking record(s) (deletions, owner changes, N:N removals)")
    return applied


async def _apply_events(
    db: Database,
    profile: str,
    server: Connector,
    client: Connector,
    plans: Mapping[str, EntityPlan],
    downloader: EntityDownloader,
    recorder: RunRecorder,
    events: Sequence[TrackingEvent],
) -> int:
    applied = 0
    deletes: dict[str, list[str]] = {}
    owner_changes: dict[str, list[str]] = {}
    for event in events:
        plan = plans.get(event.entity)
        if event.action == ACTION_DISASSOCIATE and event.relationship and event.related_id:
            await client.disassociate(event.relationship, event.object_id, event.related_id)
            recorder.count(event.entity, "deleted")
            applied += 1
        elif plan is None or plan.deletion is not DeletionStrategy.TRACKING:
            continue
        elif event.action == ACTION_DELETE:
            deletes.setdefault(event.entity, []).append(event.object_id)
        elif event.action == ACTION_OWNER_CHANGE:
            owner_changes.setdefault(event.entity, []).append(event.object_id)
    for entity, ids in deletes.items():
        plan = plans[entity]
        held = await repos.get_record_states(db, profile, entity, ids)
        if held:
            applied += await _remove(db, profile, client, plan, recorder, sorted(held))
    for entity, ids in owner_changes.items():
        plan = plans[entity]
        unique = sorted(set(ids))
        for start in range(0, len(unique), ID_CHUNK):
            chunk = unique[start : start + ID_CHUNK]
            # Read by id with no filter: apply_page re-checks the sync filter and removes what left it.
            xml = with_ids(FetchFilter(entity=entity), entity, plan.fields.primary_id, chunk)
            async for page in server.read_pages(entity, plan.read_fields, fetch_filter=xml):
                await downloader.apply_page(plan, ChangePage(upserts=page.records, etags=page.etags))
            applied += len(chunk)
    return applied
