"""The Resco Cloud connector against the emulated Resco Cloud organization, over HTTPS.

The wire format the two sides share is mostly an assumption (docs/emulator.md, "Resco Cloud");
these tests pin that both sides implement the same one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from crmsync_desktop import errors
from crmsync_desktop.emulator.runner import EmulatorPair
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.resco import RescoConnector
from crmsync_desktop.sync.connectors.types import (
    ChangeToken,
    EntityMeta,
    FieldMeta,
    FieldType,
    LookupValue,
    OptionMeta,
    RelationshipKind,
    RelationshipMeta,
    TokenKind,
)
from tests.integration.conftest import resco

pytestmark = pytest.mark.asyncio
ENTITY = "it_item"
FIELDS = ["name", "num", "amount", "flag", "kind", "due", "parent", "code"]
BULK = 2500


def item(n: int, rid: str, parent: str | None = None) -> dict[str, Any]:
    return {"id": rid, "name": f"Item {n}", "num": n, "amount": n / 4, "flag": n % 2 == 0, "kind": 1 + n % 2,
            "due": "2026-01-02T03:04:05Z", "parent": LookupValue(ENTITY, parent) if parent else None, "code": f"C{n % 100}"}


async def provision(conn: RescoConnector) -> None:
    await conn.create_entity(EntityMeta(ENTITY, label="Item", primary_name="name"))
    for f in (
        FieldMeta("num", FieldType.INTEGER, label="Number"),
        FieldMeta("amount", FieldType.MONEY),
        FieldMeta("flag", FieldType.BOOLEAN),
        FieldMeta("kind", FieldType.PICKLIST, options=(OptionMeta(1, "Small"), OptionMeta(2, "Large"))),
        FieldMeta("due", FieldType.DATETIME),
        FieldMeta("parent", FieldType.LOOKUP, targets=(ENTITY,)),
        FieldMeta("code", FieldType.STRING, max_length=10),
    ):
        await conn.create_field(ENTITY, f)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bulk_ids(emu: EmulatorPair) -> AsyncIterator[list[str]]:
    """The test entity, provisioned once, with BULK records written through UpdateMultiple."""
    async with resco(emu) as conn:
        await provision(conn)
        await provision(conn)  # re-runnable: "already exists" counts as done
        ids = [str(uuid.uuid4()) for _ in range(BULK)]
        results = await conn.upsert_many(ENTITY, [item(n, i, ids[0] if n else None) for n, i in enumerate(ids)])
        assert all(r.ok for r in results)
        yield ids


async def read_all(conn: Connector, **kw: Any) -> tuple[list[dict[str, Any]], list[int]]:
    records: list[dict[str, Any]] = []
    sizes: list[int] = []
    async for page in conn.read_pages(ENTITY, FIELDS, **kw):
        records.extend(page.records)
        sizes.append(len(page.records))
    return records, sizes


async def drain(conn: RescoConnector, token: ChangeToken | None) -> tuple[list[Any], ChangeToken]:
    pages = [p async for p in conn.read_changes(ENTITY, ["name"], token)]
    assert pages and pages[-1].token is not None
    return pages, pages[-1].token


async def test_basic_auth_whoami_and_bad_password(rc: RescoConnector, emu: EmulatorPair) -> None:
    assert isinstance(rc, Connector)
    me = await rc.whoami()
    assert me.organization_name == emu.resco_org and me.user_id and me.organization_id
    async with resco(emu, password="wrong") as bad:
        with pytest.raises(errors.AuthError):
            await bad.whoami()


async def test_metadata_create_and_list(rc: RescoConnector, bulk_ids: list[str]) -> None:
    assert ENTITY in {e.logical_name for e in await rc.list_entities()}
    meta = await rc.get_entity(ENTITY)
    assert (meta.primary_id, meta.primary_name, meta.entity_set_name) == ("id", "name", ENTITY)
    types = {f.logical_name: f.type for f in meta.fields}
    assert types["num"] is FieldType.INTEGER and types["amount"] is FieldType.MONEY and types["flag"] is FieldType.BOOLEAN
    assert types["due"] is FieldType.DATETIME and types["versionnumber"] is FieldType.ROWVERSION
    assert types["ownerid"] is FieldType.OWNER
    assert meta.field("parent").targets == (ENTITY,)  # type: ignore[union-attr]
    assert [o.label for o in meta.field("kind").options] == ["Small", "Large"]  # type: ignore[union-attr]
    assert meta.field("code").max_length == 10  # type: ignore[union-attr]
    rels = await rc.list_relationships(ENTITY)
    assert any(r.kind is RelationshipKind.ONE_TO_MANY and r.referencing_attribute == "parent" and r.referenced_entity == ENTITY
               for r in rels)
    await rc.create_relationship(RelationshipMeta("it_item_owner2", RelationshipKind.ONE_TO_MANY, referenced_entity="systemuser",
                                                  referencing_entity=ENTITY, referencing_attribute="reviewer"))
    reviewer = (await rc.get_entity(ENTITY)).field("reviewer")
    assert reviewer is not None and reviewer.type is FieldType.LOOKUP and reviewer.targets == ("systemuser",)


async def test_read_pages_at_1000_and_values_round_trip(rc: RescoConnector, bulk_ids: list[str]) -> None:
    records, sizes = await read_all(rc)
    assert sizes == [1000, 1000, 500] and len({r["id"] for r in records}) == BULK
    got = {r["id"]: r for r in records}
    sample = got[bulk_ids[7]]
    assert sample == {"id": bulk_ids[7], "name": "Item 7", "num": 7, "amount": 1.75, "flag": False, "kind": 2,
                      "due": "2026-01-02T03:04:05Z", "parent": LookupValue(ENTITY, bulk_ids[0]), "code": "C7"}
    ids = [i async for page in rc.read_ids(ENTITY, page_size=600) for i in page]
    assert len(ids) == BULK


async def test_fetchxml_filter_through_rest_fetch(rc: RescoConnector, bulk_ids: list[str]) -> None:
    fetch = (f'<fetch><entity name="{ENTITY}"><filter type="and"><condition attribute="num" operator="lt" value="300"/>'
             '<condition attribute="flag" operator="eq" value="1"/></filter></entity></fetch>')
    records, sizes = await read_all(rc, fetch_filter=fetch, page_size=40)
    assert len(records) == 150 and sizes[0] == 40 and len(sizes) == 4
    assert all(r["num"] < 300 and r["flag"] is True for r in records)
    by_id = {r["id"]: r for r in records}
    assert by_id[bulk_ids[8]] == {"id": bulk_ids[8], "name": "Item 8", "num": 8, "amount": 2.0, "flag": True, "kind": 1,
                                  "due": "2026-01-02T03:04:05Z", "parent": LookupValue(ENTITY, bulk_ids[0]), "code": "C8"}
    ids = [i async for page in rc.read_ids(ENTITY, fetch_filter=fetch, page_size=100) for i in page]
    assert sorted(ids) == sorted(by_id)


async def test_changes_by_row_version_with_deletions_and_probe(rc: RescoConnector, bulk_ids: list[str]) -> None:
    pages, token = await drain(rc, None)
    assert token.kind is TokenKind.ROW_VERSION and sum(len(p.upserts) for p in pages) >= BULK
    assert await rc.has_changes(ENTITY, token) is False

    fresh = [str(uuid.uuid4()) for _ in range(3)]
    assert all(r.ok for r in await rc.upsert_many(ENTITY, [item(9000 + n, i) for n, i in enumerate(fresh)]))
    assert all(r.ok for r in await rc.upsert_many(ENTITY, [{"id": bulk_ids[3], "name": "renamed"}]))
    assert all(r.ok for r in await rc.delete_many(ENTITY, [fresh[2], str(uuid.uuid4())]))  # a missing id counts as deleted
    assert await rc.has_changes(ENTITY, token) is True

    pages, token2 = await drain(rc, token)
    upserts = {r["id"]: r for p in pages for r in p.upserts}
    deleted = {i for p in pages for i in p.deleted_ids}
    assert upserts[bulk_ids[3]]["name"] == "renamed" and set(fresh[:2]) <= set(upserts)
    assert deleted == {fresh[2]}
    assert int(token2.value) > int(token.value) and await rc.has_changes(ENTITY, token2) is False
    pages, token3 = await drain(rc, token2)
    assert token3 == token2 and not any(p.upserts or p.deleted_ids for p in pages)
    await rc.delete_many(ENTITY, fresh[:2])
    with pytest.raises(errors.FullResyncRequired):
        await drain(rc, ChangeToken(TokenKind.DELTA_LINK, "https://elsewhere"))


async def test_bulk_write_with_one_bad_record(rc: RescoConnector, bulk_ids: list[str]) -> None:
    ids = [str(uuid.uuid4()) for _ in range(20)]
    records = [item(n, i) for n, i in enumerate(ids)]
    records[4]["code"] = "far too long for ten"
    records[9]["kind"] = 99  # not an option
    results = await rc.upsert_many(ENTITY, records)
    assert [r.ok for r in results] == [n not in (4, 9) for n in range(20)]
    assert results[4].status == 400 and "code" in (results[4].error or "") and not results[4].retryable
    fetch = f'<fetch><entity name="{ENTITY}"><filter><condition attribute="id" operator="in">{"".join(f"<value>{i}</value>" for i in ids)}</condition></filter></entity></fetch>'
    landed = [i async for page in rc.read_ids(ENTITY, fetch_filter=fetch) for i in page]
    assert sorted(landed) == sorted(i for n, i in enumerate(ids) if n not in (4, 9))
    assert all(r.ok for r in await rc.delete_many(ENTITY, ids))


async def test_bulk_writes_use_few_requests(rc: RescoConnector, emu: EmulatorPair, bulk_ids: list[str]) -> None:
    app = emu.resco_app
    assert app is not None
    before = app.counts.get("requests", 0)
    ids = [str(uuid.uuid4()) for _ in range(1200)]
    assert all(r.ok for r in await rc.upsert_many(ENTITY, [item(n, i) for n, i in enumerate(ids)]))
    assert all(r.ok for r in await rc.delete_many(ENTITY, ids))
    assert app.counts.get("requests", 0) - before <= 8  # 3 + 3 chunks of 500, plus metadata


async def test_conditional_update_conflict_and_assign(rc: RescoConnector, bulk_ids: list[str]) -> None:
    etags: dict[str, str] = {}
    async for page in rc.read_pages(ENTITY, ["name"]):
        etags.update({k: v for k, v in page.etags.items() if k in (bulk_ids[20], bulk_ids[21])})
    assert len(etags) == 2
    await rc.upsert_many(ENTITY, [{"id": bulk_ids[20], "name": "someone else"}])
    results = await rc.upsert_many(ENTITY, [{"id": bulk_ids[20], "name": "mine"}, {"id": bulk_ids[21], "name": "mine"}], if_match=etags)
    assert results[0].conflict and not results[0].ok and results[1].ok
    me = await rc.whoami()
    await rc.assign(ENTITY, bulk_ids[21], LookupValue("systemuser", me.user_id))
    with pytest.raises(errors.ConfigError):
        await rc.associate("it_links", bulk_ids[0], bulk_ids[1])


async def test_faults_are_retried(emu: EmulatorPair, resco_faults: Any, bulk_ids: list[str]) -> None:
    async with resco(emu, bulk_chunk=10) as rc:
        await rc.get_entity(ENTITY)
        resco_faults(error_rate=0.3, error_status=502, drop_rate=0.1, seed=5)
        records, _ = await read_all(rc, page_size=500)
        assert len({r["id"] for r in records}) >= BULK
        ids = [str(uuid.uuid4()) for _ in range(40)]
        assert all(r.ok for r in await rc.upsert_many(ENTITY, [item(n, i) for n, i in enumerate(ids)]))
        resco_faults(throttle_burst=2, retry_after=1, error_rate=0, drop_rate=0)
        assert (await rc.whoami()).user_id
        assert rc.throttle_state().throttle_events >= 1
        resco_faults(error_rate=0, drop_rate=0, throttle_burst=0)
        assert all(r.ok for r in await rc.delete_many(ENTITY, ids))
