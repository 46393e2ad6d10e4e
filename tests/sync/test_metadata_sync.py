"""Metadata sync (crmsync_desktop.sync.metadata) against two in-memory organizations."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from crmsync_desktop import errors
from crmsync_desktop.domain import AuthKind, ConnectionProfile, ServerKind
from crmsync_desktop.store import open_database, upgrade
from crmsync_desktop.store.repos import save_profile
from crmsync_desktop.store.repos.metadata import load_metadata_snapshot, replace_metadata_snapshot
from crmsync_desktop.sync.connectors.types import (
    EntityMeta,
    FieldMeta,
    FieldType,
    LookupValue,
    OptionMeta,
    Ownership,
    Product,
    RelationshipKind,
    RelationshipMeta,
)
from crmsync_desktop.sync.metadata import (
    CreateEntity,
    CreateField,
    CreateRelationship,
    IssueCode,
    Schema,
    Severity,
    UpdateEntity,
    UpdateField,
    apply_plan,
    compatible,
    locked_fields,
    plan_connect,
    plan_update,
    read_schema,
    schema_to_snapshot,
    snapshot_to_schema,
    sync_order,
)
from tests.fakes.memory_org import MemoryOrg, sales_org

pytestmark = pytest.mark.asyncio

SELECTED = ["account", "contact", "opportunity", "lead", "competitor"]


async def connect(server: MemoryOrg, client: MemoryOrg, entities: list[str] | None = None) -> Schema:
    """Connect: replicate the server schema to the client; returns the server schema (the snapshot)."""
    server_schema = await read_schema(server, entities)
    plan = plan_connect(server_schema, await read_schema(client, list(server_schema.names)))
    report = await apply_plan(plan, client)
    assert report.ok, report
    return server_schema


async def replan(server_schema: Schema, client: MemoryOrg) -> Schema:
    return await read_schema(client, list(server_schema.names))


# --- read_schema ------------------------------------------------------------------------------------

async def test_read_schema_selection() -> None:
    server = sales_org()
    server.add_entity(EntityMeta("calendarrule", primary_id="calendarruleid"))
    everything = await read_schema(server)
    assert not everything.has("calendarrule") and everything.has("leadcompetitors")
    assert "calendarrule" in everything.catalog
    account = everything.entity("account")
    assert account is not None
    assert account.field("crawl_data") is None and account.field("name") is not None  # OTHER dropped
    some = await read_schema(server, ["lead", "competitor", "nope"])
    assert set(some.names) == {"lead", "competitor", "leadcompetitors", "businessunit", "systemuser", "team"}
    assert some.relationship("leadcompetitors_association") is not None
    assert some.relationship("lead_parent_account") is None  # account was not read
    assert all(
        some.has(r.referenced_entity) and some.has(r.referencing_entity)
        for r in some.relationships if r.kind is RelationshipKind.ONE_TO_MANY
    )


# --- connect ------------------------------------------------------------------------------------------

async def test_connect_creates_everything_and_rerun_is_a_noop() -> None:
    server, client = sales_org(), MemoryOrg(Product.RESCO)
    server_schema = await read_schema(server, SELECTED)
    plan = plan_connect(server_schema, await read_schema(client, list(server_schema.names)))
    kinds = [type(op) for op in plan.operations]
    assert kinds == sorted(kinds, key=[CreateEntity, CreateField, CreateRelationship].index)  # dependency order
    entity_ops = [op.entity.logical_name for op in plan.operations if isinstance(op, CreateEntity)]
    assert entity_ops[-1] == "leadcompetitors"  # intersect last
    progress: list[tuple[str, int, int]] = []
    report = await apply_plan(plan, client, lambda m, d, t: progress.append((m, d, t)))
    assert report.ok and len(report.applied) == len(plan.operations)
    assert progress[0][1:] == (0, len(plan.operations)) and progress[-1][1:] == (len(plan.operations),) * 2

    client_schema = await replan(server_schema, client)
    assert client_schema.names == server_schema.names
    for se in server_schema.entities:
        ce = client_schema.entity(se.logical_name)
        assert ce is not None
        assert ce.primary_id == "id" and ce.is_intersect == se.is_intersect  # Resco's key, matched by role
        for sf in se.fields:
            if sf.logical_name == se.primary_id:
                continue
            cf = ce.field(sf.logical_name)
            assert cf is not None, f"{se.logical_name}.{sf.logical_name}"
            assert compatible(sf.type, cf.type)
    assert client_schema.field("account", "description").type is FieldType.STRING  # type: ignore[union-attr]
    assert client_schema.field("account", "name").max_length == 160  # type: ignore[union-attr]
    assert client_schema.field("contact", "parentcustomerid").targets == ("account", "contact")  # type: ignore[union-attr]
    assert {r.schema_name for r in server_schema.relationships} <= {r.schema_name for r in client_schema.relationships}

    again = plan_connect(server_schema, client_schema)
    assert again.is_empty and not again.issues
    assert (await apply_plan(again, client)).applied == ()

    # the replicated client can hold the server's data
    server.put("account", {"accountid": "a0000000-0000-4000-8000-000000000001", "name": "Acme", "statecode": 0})
    [record] = [r for page in [p async for p in server.read_pages("account", ["name", "statecode"])]
                for r in page.records]
    record["id"] = record.pop("accountid")  # keys are matched by role: Resco calls every key "id"
    assert (await client.upsert_many("account", [record]))[0].ok


async def test_connect_a_subset_then_extend_the_selection() -> None:
    server, client = sales_org(), MemoryOrg(Product.RESCO)
    first = await connect(server, client, ["contact"])
    cs = await replan(first, client)
    assert set(cs.names) == {"contact", "businessunit", "systemuser", "team"}
    assert cs.field("contact", "parentcustomerid").targets == ("contact",)  # type: ignore[union-attr]
    # later account is selected too: the lookup gains its target, nothing is dropped
    second = await connect(server, client, ["contact", "account"])
    cs = await replan(second, client)
    assert set(cs.field("contact", "parentcustomerid").targets) == {"account", "contact"}  # type: ignore[union-attr]
    assert cs.relationship("contact_customer_accounts") is not None
    assert plan_connect(second, cs).is_empty


async def test_lookup_to_an_unsynchronized_table_is_reported() -> None:
    server = sales_org()
    server.add_entity(EntityMeta("territory", primary_id="territoryid", primary_name="name"))
    server.add_field("account", FieldMeta("territoryid", FieldType.LOOKUP, targets=("territory",)))
    plan = plan_connect(await read_schema(server, ["account"]), Schema())
    assert not any(isinstance(op, CreateField) and op.field.logical_name == "territoryid" for op in plan.operations)
    issues = {i.field: i for i in plan.issues if i.code is IssueCode.TARGET_NOT_SYNCED}
    assert set(issues) == {"territoryid", "primarycontactid"}  # contact is not selected either
    assert issues["territoryid"].severity is Severity.INFO and "territory" in issues["territoryid"].message


async def test_extending_an_existing_client_keeps_its_own_schema() -> None:
    server = sales_org()
    client = MemoryOrg(Product.RESCO)
    await client.create_entity(EntityMeta("resco_visit", label="Visit", primary_id="resco_visitid"))
    await client.create_entity(EntityMeta("account", label="Customer", primary_id="accountid", primary_name="name"))
    await client.create_field("account", FieldMeta("x_custom", FieldType.STRING, max_length=10))
    await client.create_field("account", FieldMeta("accountnumber", FieldType.INTEGER))  # clashes with the server
    await client.create_field("account", FieldMeta("telephone1", FieldType.STRING, label="Phone!", max_length=20))
    visit = client.put("resco_visit", {"name": "keep me"})

    server_schema = await read_schema(server, SELECTED)
    plan = plan_connect(server_schema, await read_schema(client, list(server_schema.names)))
    touched = {op.entity.logical_name for op in plan.operations if isinstance(op, CreateEntity)}
    assert "account" not in touched and "resco_visit" not in touched
    [conflict] = plan.errors
    assert (conflict.code, conflict.entity, conflict.field) == (IssueCode.TYPE_CONFLICT, "account", "accountnumber")
    assert plan.excluded_fields == {"account": frozenset({"accountnumber"})}
    widened = {op.field.logical_name: op for op in plan.operations if isinstance(op, UpdateField)}
    assert set(widened) == {"telephone1", "name"}  # name was created 100 long with the entity: too short
    widen = widened["telephone1"]
    assert widen.changes == ("max_length",)
    assert widen.field.label == "Phone!"  # the client's own label is kept on connect
    report = await apply_plan(plan, client)
    assert report.ok and report.issues == plan.issues

    cs = await read_schema(client)
    assert cs.has("resco_visit") and client.get("resco_visit", visit) is not None
    assert cs.field("account", "x_custom") is not None
    assert cs.field("account", "accountnumber").type is FieldType.INTEGER  # type: ignore[union-attr]
    assert cs.field("account", "telephone1").max_length == 50  # type: ignore[union-attr]
    assert cs.entity("account").label == "Customer"  # type: ignore[union-attr]
    rerun = plan_connect(server_schema, await replan(server_schema, client))
    assert rerun.is_empty and [i.code for i in rerun.issues] == [IssueCode.TYPE_CONFLICT]


# --- update server ------------------------------------------------------------------------------------

async def test_update_server_after_server_changes() -> None:
    server, client = sales_org(), MemoryOrg(Product.RESCO)
    snapshot = snapshot_to_schema(schema_to_snapshot(await connect(server, client, SELECTED)))
    opp = client.put("opportunity", {"name": "Big deal"})

    # an administrator changes the server
    server.add_field("account", FieldMeta("new_score", FieldType.INTEGER, label="Score", is_custom=True))
    account_name = server.schema_entity("account").field("name")
    assert account_name is not None
    server.add_field("account", replace(account_name, label="Company", max_length=250))
    industry = server.schema_entity("account").field("industrycode")
    assert industry is not None
    server.add_field("account", replace(industry, options=(OptionMeta(1, "Accountancy"), *industry.options[1:],
                                                           OptionMeta(4, "Retail"))))
    server.update_entity_meta("contact", label="Person", collection_label="People")
    server.remove_field("account", "websiteurl")
    server.remove_relationship("account_parent_account")
    server.remove_field("account", "parentaccountid")
    server.remove_entity("opportunity")
    server.add_entity(EntityMeta(
        "new_project", label="Project", primary_id="new_projectid", primary_name="new_name", is_custom=True,
        fields=(FieldMeta("new_name", FieldType.STRING, label="Name", max_length=100, is_primary_name=True),
                FieldMeta("new_accountid", FieldType.LOOKUP, label="Account", targets=("account",))),
    ))
    server.add_relationship(RelationshipMeta(
        "new_account_project", RelationshipKind.ONE_TO_MANY, referenced_entity="account",
        referenced_attribute="accountid", referencing_entity="new_project", referencing_attribute="new_accountid"))

    server_now = await read_schema(server, [*snapshot.names, "new_project"])
    plan = plan_update(snapshot, server_now, await replan(server_now, client))
    described = {op.describe() for op in plan.operations}
    assert {"Create table new_project", "Create column account.new_score", "Create column new_project.new_accountid",
            "Create relationship new_account_project", "Update column account.name (label, max_length)",
            "Update column account.industrycode (options)", "Update table contact (label, collection_label)",
            } == described
    removed = {(i.code, i.entity, i.field) for i in plan.issues}
    assert removed == {
        (IssueCode.REMOVED_ENTITY, "opportunity", ""),
        (IssueCode.REMOVED_FIELD, "account", "websiteurl"),
        (IssueCode.REMOVED_FIELD, "account", "parentaccountid"),
        (IssueCode.REMOVED_RELATIONSHIP, "account", ""),
    }
    assert all(i.severity is Severity.WARNING and "Woodford" in i.message for i in plan.issues)

    report = await apply_plan(plan, client)
    assert report.ok
    cs = await read_schema(client)
    assert cs.field("account", "name").label == "Company"  # type: ignore[union-attr]
    assert cs.field("account", "name").max_length == 250  # type: ignore[union-attr]
    options = cs.field("account", "industrycode").options  # type: ignore[union-attr]
    assert [(o.value, o.label) for o in options] == [(1, "Accountancy"), (2, "Agriculture"), (3, "Consulting"),
                                                     (4, "Retail")]
    assert cs.entity("contact").label == "Person"  # type: ignore[union-attr]
    assert cs.field("account", "websiteurl") is not None  # never deleted on the client
    assert client.get("opportunity", opp) is not None

    # idempotent: with the old snapshot (a crash before it was saved) and with the new one
    client_after = await replan(server_now, client)
    assert plan_update(snapshot, server_now, client_after).is_empty
    fresh = plan_update(server_now, server_now, client_after)
    assert fresh.is_empty and not fresh.issues


async def test_client_labels_survive_unless_the_server_changed_them() -> None:
    server, client = sales_org(), MemoryOrg(Product.RESCO)
    snapshot = await connect(server, client, ["account"])
    phone = client.schema_entity("account").field("telephone1")
    assert phone is not None
    await client.update_field("account", replace(phone, label="Tel."))
    plan = plan_update(snapshot, await read_schema(server, ["account"]), await replan(snapshot, client))
    assert plan.is_empty


async def test_type_change_on_the_server_is_reported_not_applied() -> None:
    server, client = sales_org(), MemoryOrg(Product.RESCO)
    snapshot = await connect(server, client, ["account"])
    number = server.schema_entity("account").field("accountnumber")
    desc = server.schema_entity("account").field("telephone1")
    assert number is not None and desc is not None
    server.add_field("account", replace(number, type=FieldType.INTEGER, max_length=None))
    server.add_field("account", replace(desc, type=FieldType.MEMO, max_length=4000))  # the client can hold it
    server_now = await read_schema(server, ["account"])
    plan = plan_update(snapshot, server_now, await replan(server_now, client))
    [error] = plan.errors
    assert (error.code, error.field) == (IssueCode.TYPE_CHANGED, "accountnumber")
    assert "string to integer" in error.message and "Woodford" in error.message
    assert plan.excluded_fields == {"account": frozenset({"accountnumber"})}
    assert [op.describe() for op in plan.operations] == ["Update column account.telephone1 (max_length)"]
    await apply_plan(plan, client)
    assert client.schema_entity("account").field("accountnumber").type is FieldType.STRING  # type: ignore[union-attr]


# --- apply: failures and re-runs ------------------------------------------------------------------------

async def test_partial_apply_then_rerun_finishes_the_job() -> None:
    server, client = sales_org(), MemoryOrg(Product.RESCO)
    server_schema = await read_schema(server, SELECTED)
    plan = plan_connect(server_schema, await replan(server_schema, client))
    client.fail_next(1, errors.ServerError("boom", status=500), method="create_field")
    client.fail_next(1, errors.ValidationError("no", status=400), method="create_entity")
    report = await apply_plan(plan, client)
    assert len(report.failed) == 2 and not report.ok and report.aborted is None
    [failed_entity] = [f.operation for f in report.failed if isinstance(f.operation, CreateEntity)]
    lost = failed_entity.entity.logical_name
    assert report.skipped and all(lost in f.operation.entities for f in report.skipped)
    assert "could not be created" in report.skipped[0].message
    assert "failed" in report.summary()

    retry = plan_connect(server_schema, await replan(server_schema, client))
    assert 0 < len(retry.operations) <= len(report.failed) + len(report.skipped)
    assert any(isinstance(op, CreateEntity) and op.entity.logical_name == lost for op in retry.operations)
    assert (await apply_plan(retry, client)).ok
    assert plan_connect(server_schema, await replan(server_schema, client)).is_empty


async def test_lost_connection_stops_and_sign_in_problems_raise() -> None:
    server, client = sales_org(), MemoryOrg(Product.RESCO)
    server_schema = await read_schema(server, ["account"])
    plan = plan_connect(server_schema, Schema())
    client.fail_next(1, errors.NetworkError("offline"), method="create_field")
    report = await apply_plan(plan, client)
    assert report.aborted is not None and "offline" in report.aborted
    assert len(report.applied) + len(report.failed) + len(report.skipped) == len(plan.operations)
    assert all(s.retryable for s in report.skipped)
    client.fail_next(1, errors.AuthRequiredError("sign in"))
    with pytest.raises(errors.AuthRequiredError):
        await apply_plan(plan_connect(server_schema, await replan(server_schema, client)), client)


class _NoSchemaUpdates(MemoryOrg):
    update_field = None  # type: ignore[assignment]
    update_entity = None  # type: ignore[assignment]


async def test_updates_fail_clearly_when_the_connector_cannot_update() -> None:
    server, client = sales_org(), _NoSchemaUpdates(Product.RESCO)
    await client.create_entity(EntityMeta("account", primary_id="accountid", primary_name="name"))
    await client.create_field("account", FieldMeta("telephone1", FieldType.STRING, max_length=5))
    server_schema = await read_schema(server, ["account"])
    plan = plan_connect(server_schema, await replan(server_schema, client))
    report = await apply_plan(plan, client)
    assert {f.operation.describe() for f in report.failed} == {
        "Update column account.telephone1 (max_length)", "Update column account.name (max_length)"}
    assert all("update_field" in f.message for f in report.failed)
    assert len(report.applied) == len(plan.operations) - 2


# --- snapshot codec -------------------------------------------------------------------------------------

async def test_snapshot_codec_is_lossless_through_the_store(tmp_path: Path) -> None:
    server = sales_org()
    schema = await read_schema(server)
    snapshot = schema_to_snapshot(schema)
    for e in snapshot.entities:  # raw is plain JSON
        assert json.loads(json.dumps(e.raw)) == e.raw
        assert all(json.loads(json.dumps(f.raw)) == f.raw for f in e.fields)
    assert snapshot_to_schema(snapshot) == schema

    db_path = tmp_path / "data" / "crmsync.sqlite3"
    upgrade(db_path, tmp_path / "data" / "backups")
    db = open_database(db_path)
    try:
        await save_profile(db, ConnectionProfile(
            name="P", server_kind=ServerKind.DATAVERSE, server_url="https://contoso.crm4.dynamics.com",
            server_auth_kind=AuthKind.CLIENT_SECRET, tenant_id="11111111-1111-1111-1111-111111111111",
            client_id="22222222-2222-2222-2222-222222222222", client_url="https://contoso.rescocrm.com",
            client_user="admin@contoso.com",
        ))
        await replace_metadata_snapshot(db, "P", snapshot)
        loaded = snapshot_to_schema(await load_metadata_snapshot(db, "P"))
    finally:
        db.close()
    assert loaded == schema
    assert loaded.field("contact", "parentcustomerid") == schema.field("contact", "parentcustomerid")


async def test_snapshot_decodes_rows_without_raw_and_unknown_types() -> None:
    schema = Schema.of([EntityMeta("thing", primary_id="thingid", ownership=Ownership.NONE,
                                   fields=(FieldMeta("x", FieldType.STRING),))])
    snap = schema_to_snapshot(schema)
    bare = replace(snap, entities=tuple(
        replace(e, raw={}, fields=tuple(replace(f, raw={}, type="futuretype") for f in e.fields))
        for e in snap.entities
    ))
    decoded = snapshot_to_schema(bare)
    assert decoded.entity("thing").primary_id == "thingid"  # type: ignore[union-attr]
    assert decoded.field("thing", "x").type is FieldType.OTHER  # type: ignore[union-attr]
    broken = replace(snap, entities=tuple(replace(e, raw={"ownership": "weird"}) for e in snap.entities))
    with pytest.raises(errors.StoreCorruptError):
        snapshot_to_schema(broken)


# --- order and locked fields ----------------------------------------------------------------------------

async def test_sync_order_parents_first_cycles_deferred() -> None:
    schema = await read_schema(sales_org())
    order = sync_order(schema, ["opportunity", "leadcompetitors", "contact", "account", "lead", "competitor"])
    assert order.levels[:3] == (("businessunit",), ("systemuser",), ("team",))
    assert order.levels[-1] == ("leadcompetitors",)
    flat = order.flat
    assert flat.index("account") < flat.index("contact") < flat.index("lead") < flat.index("opportunity")
    assert ("account", "contact") in order.cycles and ("businessunit", "systemuser") in order.cycles
    deferred = {(d.entity, d.field, d.target, d.reason) for d in order.deferred}
    assert ("account", "primarycontactid", "contact", "cycle") in deferred
    assert ("account", "parentaccountid", "account", "self") in deferred
    assert ("contact", "parentcustomerid", "contact", "self") in deferred
    assert ("businessunit", "createdby", "systemuser", "cycle") in deferred
    assert not any(d.entity == "contact" and d.target == "account" for d in order.deferred)
    assert order.deferred_fields("account") == {"primarycontactid", "parentaccountid"}
    # every lookup not deferred points to an entity synced in an earlier level
    level_of = {e: i for i, level in enumerate(order.levels) for e in level}
    for name in flat:
        meta = schema.entity(name)
        assert meta is not None
        for f in meta.fields:
            if f.type.is_lookup and name not in ("leadcompetitors",):
                for t in f.targets:
                    if t in level_of and f.logical_name not in order.deferred_fields(name):
                        assert level_of[t] < level_of[name], (name, f.logical_name, t)


async def test_sync_order_prefers_deferring_optional_lookups() -> None:
    schema = await read_schema(sales_org())
    account = schema.entity("account")
    assert account is not None
    pcid = account.field("primarycontactid")
    assert pcid is not None
    required = replace(account, fields=tuple(replace(f, required=True) if f is pcid else f for f in account.fields))
    tweaked = Schema.of([required, *(e for e in schema.entities if e.logical_name != "account")],
                        schema.relationships)
    order = sync_order(tweaked, ["account", "contact"])
    assert order.flat.index("contact") < order.flat.index("account")
    assert {(d.entity, d.field) for d in order.deferred if d.reason == "cycle"} >= {("contact", "parentcustomerid")}
    assert sync_order(tweaked, ["unknown"]).flat[-1] == "unknown"


async def test_security_entities_pointing_at_business_tables_are_deferred() -> None:
    org = sales_org()
    org.add_entity(EntityMeta("territory", primary_id="territoryid", primary_name="name"))
    org.add_field("systemuser", FieldMeta("territoryid", FieldType.LOOKUP, targets=("territory",)))
    order = sync_order(await read_schema(org), ["territory"])
    assert order.flat == ("businessunit", "systemuser", "team", "territory")
    assert ("systemuser", "territoryid", "territory", "security") in {
        (d.entity, d.field, d.target, d.reason) for d in order.deferred
    }


async def test_locked_fields() -> None:
    schema = await read_schema(sales_org())
    account, contact = schema.entity("account"), schema.entity("contact")
    assert account is not None and contact is not None
    assert set(locked_fields(account, [])) == {"accountid", "name", "ownerid"}
    own = ('<fetch><entity name="account"><filter type="or"><condition attribute="address1_city" operator="eq" '
           'value="Prague"/><condition attribute="revenue" operator="gt" valueof="numberofemployees"/></filter>'
           '</entity></fetch>')
    contact_filter = ('<fetch><entity name="contact"><filter><condition attribute="statecode" operator="eq" '
                      'value="0"/><condition entityname="acc" attribute="creditonhold" operator="eq" value="0"/>'
                      '</filter><link-entity name="account" from="accountid" to="parentcustomerid" alias="acc">'
                      '<filter><condition attribute="industrycode" operator="eq" value="1"/></filter>'
                      '</link-entity></entity></fetch>')
    locked = locked_fields(account, [own, contact_filter])
    assert set(locked) == {"accountid", "name", "ownerid", "address1_city", "revenue", "numberofemployees",
                           "industrycode", "creditonhold"}
    assert "primary key" in locked["accountid"] and "account sync filter" in locked["address1_city"]
    assert "contact sync filter" in locked["industrycode"]
    locked_contact = locked_fields(contact, [contact_filter])
    assert {"contactid", "fullname", "ownerid", "statecode", "parentcustomerid"} == set(locked_contact)
    assert "links account" in locked_contact["parentcustomerid"]
    with pytest.raises(errors.FilterError):
        locked_fields(account, ["<fetch><entity"])


async def test_plan_issues_and_ops_for_hand_built_schemas() -> None:
    server = Schema.of(
        [EntityMeta("a", primary_id="aid", primary_name="name", label="A",
                    fields=(FieldMeta("aid", FieldType.UNIQUEIDENTIFIER, is_primary_id=True),
                            FieldMeta("name", FieldType.STRING, max_length=10, is_primary_name=True),
                            FieldMeta("b_id", FieldType.LOOKUP, targets=("b",)))),
         EntityMeta("b", primary_id="bid")],
        [RelationshipMeta("a_b", RelationshipKind.ONE_TO_MANY, referenced_entity="b", referencing_entity="a",
                          referencing_attribute="b_id")],
    )
    client = Schema.of(
        [EntityMeta("a", primary_id="id", primary_name="name",
                    fields=(FieldMeta("name", FieldType.STRING, max_length=10),)),
         EntityMeta("b", primary_id="bid")],
        [RelationshipMeta("a_b", RelationshipKind.ONE_TO_MANY, referenced_entity="b", referencing_entity="a",
                          referencing_attribute="other")],
    )
    plan = plan_connect(server, client)
    assert [op.describe() for op in plan.operations] == ["Create column a.b_id"]
    codes = {i.code for i in plan.issues}
    assert codes == {IssueCode.RELATIONSHIP_CONFLICT}  # a differently named key is expected, not an issue
    assert UpdateEntity(EntityMeta("a"), ("label",)).entities == ("a",)
    assert LookupValue("a", "1").entity == "a"


# --- what the engine facade uses ------------------------------------------------------------------------

async def test_facade_module_filter_metadata_and_report_lines() -> None:
    from crmsync_desktop.sync import metadata as metadata_sync
    from crmsync_desktop.sync.filters import parse_filter, validate_filter

    assert metadata_sync.plan_connect is plan_connect and set(metadata_sync.__all__) >= {"read_schema", "sync_order"}
    schema = await read_schema(sales_org())
    meta = metadata_sync.filter_metadata(schema)
    good = parse_filter('<fetch><entity name="contact"><filter><condition attribute="ownerid" operator="eq-userid"/>'
                        '</filter><link-entity name="account" from="accountid" to="parentcustomerid"><filter>'
                        '<condition attribute="revenue" operator="gt" value="1000"/></filter></link-entity>'
                        '</entity></fetch>')
    assert validate_filter(good, meta) == []
    bad = parse_filter('<fetch><entity name="contact"><filter><condition attribute="lastnam" operator="eq" '
                       'value="x"/></filter></entity></fetch>')
    assert validate_filter(bad, meta)

    client = MemoryOrg(Product.RESCO)
    await client.create_entity(EntityMeta("account", primary_id="accountid", primary_name="name"))
    await client.create_field("account", FieldMeta("accountnumber", FieldType.INTEGER))
    server_schema = await read_schema(sales_org(), ["account"])
    plan = plan_connect(server_schema, await replan(server_schema, client))
    client.fail_next(1, errors.ServerError("boom", status=500), method="create_field")
    report = await apply_plan(plan, client)
    lines, problems = report.lines(), report.problems()
    assert lines[0] == report.summary() and "Create column account.telephone1" in lines
    assert any("failed: boom" in p for p in problems) and any("accountnumber" in p for p in problems)
    assert any("is not replicated" in line for line in lines)  # info issues are lines, not problems


async def test_sync_order_iterates_and_can_leave_security_out() -> None:
    schema = await read_schema(sales_org())
    order = sync_order(schema, ["contact", "account"], include_security=False)
    assert list(order) == ["account", "contact"] and len(order) == 2
    assert list(sync_order(schema, ["team", "account"], include_security=False)) == ["team", "account"]
