"""Sync state per entity and record state per record (bulk upsert, look-up, keyset listing)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from crmsync_desktop.errors import ProfileNotFoundError
from crmsync_desktop.store import Database, RecordState, SyncState
from crmsync_desktop.store.repos import (
    count_record_states,
    delete_profile,
    delete_record_states,
    get_record_states,
    get_sync_state,
    list_record_states,
    list_sync_states,
    put_sync_state,
    reset_entity_state,
    save_profile,
    upsert_record_states,
)
from tests.store.conftest import sample_profile

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _record(i: int, version: int = 1) -> RecordState:
    return RecordState(
        record_id=f"{i:08d}-0000-0000-0000-000000000000",
        last_synced_at=T0 + timedelta(seconds=i),
        server_row_version=str(1000 + i * version),
        client_row_version=str(version),
        content_hash=f"sha256:{i:x}-{version}",
    )


@pytest.mark.asyncio
async def test_sync_state_put_get_list_and_overwrite(db: Database, profile: str) -> None:
    assert await get_sync_state(db, profile, "account") is None
    state = SyncState(
        entity="account",
        token='W/"1234567"',
        strategy="change_tracking",
        last_full_sync_at=T0,
        last_sync_at=T0 + timedelta(hours=1),
        server_count=1200,
        client_count=1198,
        last_client_row_version="88231",
    )
    await put_sync_state(db, profile, state)
    await put_sync_state(
        db, profile, SyncState(entity="contact", strategy="watermark", token="2024-03-01T00:00:00Z")
    )
    assert await get_sync_state(db, profile, "account") == state

    newer = dataclasses.replace(state, token='W/"1234999"', server_count=1201, last_client_row_version=None)
    await put_sync_state(db, profile, newer)
    assert [s.entity for s in await list_sync_states(db, profile)] == ["account", "contact"]
    assert await get_sync_state(db, profile, "account") == newer


@pytest.mark.asyncio
async def test_record_states_bulk_upsert_get_update(db: Database, profile: str) -> None:
    assert await upsert_record_states(db, profile, "account", (_record(i) for i in range(25_000))) == 25_000
    await upsert_record_states(db, profile, "contact", [_record(i) for i in range(10)])
    assert await count_record_states(db, profile) == {"account": 25_000, "contact": 10}

    wanted = [_record(i).record_id for i in (0, 777, 24_999)] + ["unknown"]
    found = await get_record_states(db, profile, "account", wanted)
    assert found == {r.record_id: r for r in (_record(0), _record(777), _record(24_999))}

    # Update a slice and insert new ones in the same call.
    await upsert_record_states(db, profile, "account", [_record(i, version=2) for i in range(24_990, 25_010)])
    assert await count_record_states(db, profile) == {"account": 25_010, "contact": 10}
    found = await get_record_states(db, profile, "account", [_record(24_995).record_id, _record(1).record_id])
    assert found[_record(24_995).record_id] == _record(24_995, version=2)
    assert found[_record(1).record_id] == _record(1)

    many = await get_record_states(
        db, profile, "account", [_record(i).record_id for i in range(0, 25_010, 3)]
    )
    assert len(many) == len(range(0, 25_010, 3))  # more ids than one IN list holds


@pytest.mark.asyncio
async def test_record_states_keyset_listing_and_delete(db: Database, profile: str) -> None:
    records = [_record(i) for i in range(2_345)]
    await upsert_record_states(db, profile, "account", records)
    seen: list[RecordState] = []
    after: str | None = None
    while page := await list_record_states(db, profile, "account", after_record_id=after, limit=500):
        seen.extend(page)
        after = page[-1].record_id
    assert seen == sorted(records, key=lambda r: r.record_id)

    gone = [r.record_id for r in records[:1000]] + ["never-known"]
    assert await delete_record_states(db, profile, "account", gone) == 1000
    assert await count_record_states(db, profile) == {"account": 1_345}


@pytest.mark.asyncio
async def test_reset_entity_state_forgets_one_entity_only(db: Database, profile: str) -> None:
    for entity in ("account", "contact"):
        await put_sync_state(db, profile, SyncState(entity=entity, token="t"))
        await upsert_record_states(db, profile, entity, [_record(i) for i in range(5)])
    await reset_entity_state(db, profile, "account")
    assert await get_sync_state(db, profile, "account") is None
    assert await get_sync_state(db, profile, "contact") is not None
    assert await count_record_states(db, profile) == {"contact": 5}


@pytest.mark.asyncio
async def test_states_are_per_profile_and_go_with_the_profile(db: Database, profile: str) -> None:
    await save_profile(db, sample_profile("Other"))
    await upsert_record_states(db, profile, "account", [_record(1)])
    await upsert_record_states(db, "Other", "account", [_record(1, version=5)])
    await put_sync_state(db, "Other", SyncState(entity="account"))
    assert (await get_record_states(db, profile, "account", [_record(1).record_id])) == {
        _record(1).record_id: _record(1)
    }
    await delete_profile(db, "Other")
    await save_profile(db, sample_profile("Other"))
    assert await count_record_states(db, "Other") == {}
    assert await list_sync_states(db, "Other") == []
    with pytest.raises(ProfileNotFoundError):
        await upsert_record_states(db, "Nope", "account", [_record(1)])


@pytest.mark.asyncio
async def test_bulk_writes_store_what_sqlalchemy_core_stores(db: Database, profile: str) -> None:
    """Record states and upload baselines skip Core's per-row work (``_common.upsert_many``); the
    stored text (UTC timestamps, JSON) is still exactly what ``insert().values()`` writes."""
    from sqlalchemy import insert, text

    from crmsync_desktop.store import UploadBaseline
    from crmsync_desktop.store.models import RecordStateModel, UploadBaselineModel
    from crmsync_desktop.store.repos import record_client_writes

    moments = [T0, datetime(2024, 3, 1, 14, 0, 0, 123, tzinfo=timezone(timedelta(hours=2))),
               datetime(2024, 3, 1, 12, 0, 0, 999_999)]  # aware UTC, aware +02:00, naive (taken as UTC)
    states = [RecordState(f"r{i}", when, f"v{i}", None if i else "c", f"h{i}") for i, when in enumerate(moments)]
    baselines = [UploadBaseline(f"r{i}", f"h{i}", {"name": "abc", "\u00e9": i, "none": None}) for i in range(3)]
    await record_client_writes(db, profile, "fast", states, baselines)
    await upsert_record_states(db, profile, "fast", states[:1])  # an update of an existing row

    def core(session: Any) -> None:
        pid = session.execute(text("SELECT profile_id FROM record_state LIMIT 1")).scalar_one()
        updated = session.execute(text("SELECT updated_at FROM upload_baseline LIMIT 1")).scalar_one()
        session.execute(insert(RecordStateModel.__table__), [
            {"profile_id": pid, "entity": "core", "record_id": s.record_id, "server_row_version": s.server_row_version,
             "client_row_version": s.client_row_version, "content_hash": s.content_hash,
             "last_synced_at": s.last_synced_at} for s in states])
        session.execute(insert(UploadBaselineModel.__table__), [
            {"profile_id": pid, "entity": "core", "record_id": b.record_id, "content_hash": b.content_hash,
             "fields": dict(b.fields), "updated_at": datetime.fromisoformat(updated).replace(tzinfo=UTC)}
            for b in baselines])

    await db.run(core)

    def stored(session: Any, table: str) -> dict[str, list[tuple[Any, ...]]]:
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for row in session.execute(text(f"SELECT * FROM {table} ORDER BY entity, record_id")):
            rows.setdefault(row[1], []).append((row[0], *row[2:]))
        return rows

    for table in ("record_state", "upload_baseline"):
        rows = await db.read(lambda session, table=table: stored(session, table))
        assert rows["fast"] == rows["core"], table
    assert await get_record_states(db, profile, "fast", ["r0", "r1", "r2"]) == {
        s.record_id: dataclasses.replace(s, last_synced_at=s.last_synced_at.astimezone(UTC) if s.last_synced_at.tzinfo
                                         else s.last_synced_at.replace(tzinfo=UTC))
        for s in states
    }
