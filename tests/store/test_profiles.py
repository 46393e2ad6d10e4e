"""Connection profiles, entity configs, schedule state and the Export/Import profile config."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import StatementError

from crmsync_desktop.domain import (
    AuthKind,
    ConflictPolicy,
    ConnectionState,
    DeletionStrategy,
    EntityConfig,
    ProfileConfig,
    ScheduleConfig,
    ServerKind,
    TransactionOperation,
    TransactionStatus,
)
from crmsync_desktop.errors import ConfigError, ProfileNotFoundError, StoreError
from crmsync_desktop.store import Database, NewTransaction, ScheduleState, SyncState
from crmsync_desktop.store.models import ConnectionProfileModel
from crmsync_desktop.store.repos import (
    delete_entity_config,
    delete_profile,
    enqueue_transaction,
    get_profile,
    get_schedule_state,
    get_sync_state,
    list_entity_configs,
    list_profiles,
    load_profile_config,
    mark_processed,
    put_schedule_state,
    put_sync_state,
    rename_profile,
    replace_profile_config,
    save_entity_config,
    save_entity_configs,
    save_profile,
    save_schedule_config,
    set_transaction_status,
)
from tests.store.conftest import PROFILE, sample_profile

ACCOUNT = EntityConfig(
    logical_name="account",
    sync_filter='<fetch><entity name="account"><filter><condition attribute="statecode" operator="eq" '
    'value="0"/></filter></entity></fetch>',
    sync_deletion=True,
    deletion_strategy=DeletionStrategy.CHANGE_TRACKING,
    conflict_policy=ConflictPolicy.NEWER_WINS,
    fields=("name", "accountnumber"),
)
CONTACT = EntityConfig(logical_name="contact", enabled=False)


def test_the_profile_table_has_no_place_for_a_secret() -> None:
    columns = {c.name for c in ConnectionProfileModel.__table__.columns}
    # The one exception is the certificate file's *path*; its key and passphrase are never stored here.
    suspicious = {c for c in columns if any(w in c for w in ("secret", "password", "token", "key", "cert"))}
    assert suspicious == {"certificate_path"}


@pytest.mark.asyncio
async def test_the_certificate_path_round_trips_through_save_and_the_profile_config(db: Database) -> None:
    profile = dataclasses.replace(
        sample_profile(), server_auth_kind=AuthKind.CERTIFICATE, certificate_path=r"C:\certs\contoso sync.pfx"
    )
    assert await save_profile(db, profile) == profile
    assert (await get_profile(db, PROFILE)).certificate_path == r"C:\certs\contoso sync.pfx"
    await replace_profile_config(db, ProfileConfig(dataclasses.replace(profile, certificate_path="/etc/c.pem")))
    assert (await load_profile_config(db, PROFILE)).profile.certificate_path == "/etc/c.pem"
    assert (await get_profile(db, "Contoso")).server_auth_kind is AuthKind.CERTIFICATE


@pytest.mark.asyncio
async def test_save_get_list_and_update(db: Database) -> None:
    assert await list_profiles(db) == []
    stamp = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    saved = await save_profile(db, dataclasses.replace(sample_profile("B"), metadata_updated_at=stamp))
    await save_profile(db, sample_profile("A"))
    assert saved == dataclasses.replace(sample_profile("B"), metadata_updated_at=stamp)
    assert [p.name for p in await list_profiles(db)] == ["A", "B"]

    changed = dataclasses.replace(
        sample_profile("B"), server_kind=ServerKind.RESCO, state=ConnectionState.CONNECTED, verify_tls=False
    )
    await save_profile(db, changed)
    assert await get_profile(db, "B") == changed
    assert len(await list_profiles(db)) == 2


@pytest.mark.asyncio
async def test_timestamps_come_back_as_aware_utc(db: Database) -> None:
    paris = timezone(timedelta(hours=2))
    await save_profile(
        db,
        dataclasses.replace(sample_profile(), metadata_updated_at=datetime(2024, 6, 1, 14, 0, tzinfo=paris)),
    )
    stored = (await get_profile(db, PROFILE)).metadata_updated_at
    assert stored == datetime(2024, 6, 1, 12, 0, tzinfo=UTC) and stored.tzinfo is UTC


@pytest.mark.asyncio
async def test_an_unknown_profile_raises_a_helpful_error(db: Database) -> None:
    with pytest.raises(ProfileNotFoundError) as caught:
        await get_profile(db, "Nope")
    assert "'Nope'" in str(caught.value) and "create or import" in str(caught.value)
    assert caught.value.profile == "Nope"
    with pytest.raises(ProfileNotFoundError):
        await list_entity_configs(db, "Nope")


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["", " padded", "padded "])
async def test_invalid_names_are_refused(db: Database, name: str) -> None:
    with pytest.raises(ConfigError):
        await save_profile(db, sample_profile(name))


@pytest.mark.asyncio
async def test_rename_keeps_everything_attached(db: Database, profile: str) -> None:
    await save_entity_config(db, profile, ACCOUNT)
    await put_sync_state(db, profile, SyncState(entity="account", token="delta-1"))
    tx = await enqueue_transaction(db, profile, NewTransaction("account", TransactionOperation.UPDATE))

    renamed = await rename_profile(db, profile, "Fabrikam")
    assert renamed.name == "Fabrikam" and renamed.server_url == sample_profile().server_url
    assert await list_entity_configs(db, "Fabrikam") == [ACCOUNT]
    assert (await get_sync_state(db, "Fabrikam", "account")) == SyncState(entity="account", token="delta-1")
    assert await mark_processed(db, [tx]) == 1
    with pytest.raises(ProfileNotFoundError):
        await get_profile(db, profile)


@pytest.mark.asyncio
async def test_rename_to_a_taken_name_is_refused(db: Database, profile: str) -> None:
    await save_profile(db, sample_profile("Other"))
    with pytest.raises(ConfigError, match="already exists"):
        await rename_profile(db, profile, "Other")
    assert (await rename_profile(db, profile, profile)).name == profile  # same name: nothing to do


@pytest.mark.asyncio
async def test_delete_refuses_while_changes_are_undelivered(db: Database, profile: str) -> None:
    tx = await enqueue_transaction(db, profile, NewTransaction("account", TransactionOperation.CREATE))
    with pytest.raises(StoreError, match="1 offline transactions") as caught:
        await delete_profile(db, profile)
    assert caught.value.title == "Undelivered changes"
    assert await get_profile(db, profile)

    await set_transaction_status(db, profile, [tx], TransactionStatus.ARCHIVED)
    await delete_profile(db, profile)
    assert await list_profiles(db) == []


@pytest.mark.asyncio
async def test_delete_can_discard_undelivered_changes_and_cascades(db: Database, profile: str) -> None:
    await save_entity_config(db, profile, ACCOUNT)
    await enqueue_transaction(db, profile, NewTransaction("account", TransactionOperation.CREATE))
    await delete_profile(db, profile, discard_undelivered=True)
    await save_profile(db, sample_profile())  # same name again starts from nothing
    assert await list_entity_configs(db, profile) == []
    with pytest.raises(ProfileNotFoundError):
        await delete_profile(db, "Nope")


@pytest.mark.asyncio
async def test_entity_configs_upsert_and_delete(db: Database, profile: str) -> None:
    await save_entity_configs(db, profile, [CONTACT, ACCOUNT])
    assert await list_entity_configs(db, profile) == [ACCOUNT, CONTACT]
    edited = dataclasses.replace(ACCOUNT, enabled=False, fields=())
    await save_entity_config(db, profile, edited)
    assert await list_entity_configs(db, profile) == [edited, CONTACT]
    assert await delete_entity_config(db, profile, "contact") is True
    assert await delete_entity_config(db, profile, "contact") is False
    assert await list_entity_configs(db, profile) == [edited]


@pytest.mark.asyncio
async def test_profile_config_round_trip(db: Database) -> None:
    config = ProfileConfig(
        profile=sample_profile(),
        entities=(ACCOUNT, CONTACT),
        schedule=ScheduleConfig(enabled=False, interval_minutes=15),
    )
    await replace_profile_config(db, config)
    assert await load_profile_config(db, PROFILE) == config


@pytest.mark.asyncio
async def test_replace_profile_config_replaces_entities_and_keeps_schedule_progress(
    db: Database, profile: str
) -> None:
    await save_entity_configs(db, profile, [ACCOUNT, CONTACT])
    started = datetime(2024, 1, 1, tzinfo=UTC)
    await put_schedule_state(db, profile, ScheduleState(last_started_at=started, consecutive_failures=2))

    lead = EntityConfig(logical_name="lead")
    config = ProfileConfig(
        profile=dataclasses.replace(sample_profile(), server_url="https://new.crm.dynamics.com"),
        entities=(lead, dataclasses.replace(ACCOUNT, enabled=False)),
        schedule=ScheduleConfig(interval_minutes=5),
    )
    await replace_profile_config(db, config)

    loaded = await load_profile_config(db, profile)
    assert loaded.profile.server_url == "https://new.crm.dynamics.com"
    assert loaded.entities == (dataclasses.replace(ACCOUNT, enabled=False), lead)
    state = await get_schedule_state(db, profile)
    assert (state.interval_minutes, state.last_started_at, state.consecutive_failures) == (5, started, 2)


@pytest.mark.asyncio
async def test_replace_profile_config_is_all_or_nothing(db: Database, profile: str) -> None:
    before = await load_profile_config(db, profile)
    broken = EntityConfig(logical_name="account", deletion_strategy="bogus")  # type: ignore[arg-type]
    config = ProfileConfig(
        profile=dataclasses.replace(sample_profile(), server_url="https://changed"),
        entities=(CONTACT, broken),
        schedule=ScheduleConfig(interval_minutes=1),
    )
    with pytest.raises(StatementError, match="bogus"):
        await replace_profile_config(db, config)
    assert await load_profile_config(db, profile) == before


@pytest.mark.asyncio
async def test_schedule_state_defaults_put_and_config_only_save(db: Database, profile: str) -> None:
    assert await get_schedule_state(db, profile) == ScheduleState()
    state = ScheduleState(
        enabled=True,
        interval_minutes=30,
        last_started_at=datetime(2024, 5, 1, 8, tzinfo=UTC),
        last_success_at=datetime(2024, 5, 1, 7, tzinfo=UTC),
        consecutive_failures=1,
        paused_until=datetime(2024, 5, 2, tzinfo=UTC),
    )
    await put_schedule_state(db, profile, state)
    assert await get_schedule_state(db, profile) == state
    await save_schedule_config(db, profile, ScheduleConfig(enabled=False, interval_minutes=120))
    assert await get_schedule_state(db, profile) == dataclasses.replace(
        state, enabled=False, interval_minutes=120
    )
    assert (await get_schedule_state(db, profile)).config == ScheduleConfig(
        enabled=False, interval_minutes=120
    )


@pytest.mark.asyncio
async def test_a_daily_schedule_round_trips_and_switching_modes_keeps_progress(
    db: Database, profile: str
) -> None:
    success = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
    state = ScheduleState(interval_minutes=45, last_success_at=success, consecutive_failures=1, daily_at="06:30")
    await put_schedule_state(db, profile, state)
    assert await get_schedule_state(db, profile) == state
    assert (await load_profile_config(db, profile)).schedule == ScheduleConfig(interval_minutes=45, daily_at="06:30")

    await save_schedule_config(db, profile, ScheduleConfig(interval_minutes=45))  # back to every 45 min
    assert await get_schedule_state(db, profile) == dataclasses.replace(state, daily_at=None)
    await save_schedule_config(db, profile, ScheduleConfig(enabled=False, interval_minutes=45, daily_at="23:59"))
    assert await get_schedule_state(db, profile) == dataclasses.replace(state, enabled=False, daily_at="23:59")

    imported = ProfileConfig(profile=sample_profile(), schedule=ScheduleConfig(interval_minutes=10, daily_at="07:00"))
    await replace_profile_config(db, imported)
    assert (await load_profile_config(db, profile)).schedule == imported.schedule
    assert (await get_schedule_state(db, profile)).last_success_at == success
