"""The replicated metadata snapshot: replace as a whole, load back, per profile."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crmsync_desktop.store import (
    Database,
    MetadataEntity,
    MetadataField,
    MetadataRelationship,
    MetadataSnapshot,
    RelationshipKind,
)
from crmsync_desktop.store.repos import (
    get_profile,
    load_metadata_snapshot,
    replace_metadata_snapshot,
    save_profile,
)
from tests.store.conftest import sample_profile

WHEN = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)

ACCOUNT = MetadataEntity(
    logical_name="account",
    display_name="Account",
    primary_id_attribute="accountid",
    primary_name_attribute="name",
    entity_set_name="accounts",
    change_tracking=True,
    fields=(
        MetadataField("accountid", "Uniqueidentifier", "Account", {"IsPrimaryId": True}),
        MetadataField("name", "String", "Account Name", {"MaxLength": 160}),
        MetadataField("primarycontactid", "Lookup", "Primary Contact", {"Targets": ["contact"]}),
    ),
    raw={"ObjectTypeCode": 1},
)
CONTACT = MetadataEntity(
    logical_name="contact",
    display_name="Contact",
    primary_id_attribute="contactid",
    primary_name_attribute="fullname",
    entity_set_name="contacts",
    fields=(MetadataField("contactid", "Uniqueidentifier", "Contact"),),
)
INTERSECT = MetadataEntity(logical_name="accountleads", is_intersect=True)
ONE_TO_MANY = MetadataRelationship(
    schema_name="account_primary_contact",
    kind=RelationshipKind.ONE_TO_MANY,
    entity1="contact",
    attribute1="contactid",
    entity2="account",
    attribute2="primarycontactid",
)
MANY_TO_MANY = MetadataRelationship(
    schema_name="accountleads_association",
    kind=RelationshipKind.MANY_TO_MANY,
    entity1="account",
    attribute1="accountid",
    entity2="lead",
    attribute2="leadid",
    intersect_entity="accountleads",
    raw={"IsCustomizable": False},
)


@pytest.mark.asyncio
async def test_replace_and_load_a_snapshot(db: Database, profile: str) -> None:
    assert await load_metadata_snapshot(db, profile) == MetadataSnapshot()
    snapshot = MetadataSnapshot(
        entities=(CONTACT, ACCOUNT, INTERSECT), relationships=(ONE_TO_MANY, MANY_TO_MANY)
    )
    assert await replace_metadata_snapshot(db, profile, snapshot, replicated_at=WHEN) == WHEN

    loaded = await load_metadata_snapshot(db, profile)
    assert loaded.updated_at == WHEN
    assert loaded.entities == (ACCOUNT, INTERSECT, CONTACT)  # by logical name: account, accountleads, contact
    assert loaded.relationships == (ONE_TO_MANY, MANY_TO_MANY)
    assert (await get_profile(db, profile)).metadata_updated_at == WHEN


@pytest.mark.asyncio
async def test_a_new_snapshot_replaces_the_old_one_entirely(db: Database, profile: str) -> None:
    await replace_metadata_snapshot(
        db, profile, MetadataSnapshot(entities=(ACCOUNT, CONTACT), relationships=(ONE_TO_MANY,))
    )
    await replace_metadata_snapshot(db, profile, MetadataSnapshot(entities=(CONTACT,)))
    loaded = await load_metadata_snapshot(db, profile)
    assert loaded.entities == (CONTACT,) and loaded.relationships == ()
    assert loaded.updated_at is not None

    field_rows = await db.read(
        lambda s: s.connection().exec_driver_sql("SELECT count(*) FROM metadata_field").scalar()
    )
    assert field_rows == len(CONTACT.fields)  # the old entities' fields went with them


@pytest.mark.asyncio
async def test_snapshots_are_per_profile(db: Database, profile: str) -> None:
    await save_profile(db, sample_profile("Other"))
    await replace_metadata_snapshot(db, profile, MetadataSnapshot(entities=(ACCOUNT,)))
    await replace_metadata_snapshot(db, "Other", MetadataSnapshot(entities=(CONTACT,)))
    assert (await load_metadata_snapshot(db, profile)).entities == (ACCOUNT,)
    assert (await load_metadata_snapshot(db, "Other")).entities == (CONTACT,)
