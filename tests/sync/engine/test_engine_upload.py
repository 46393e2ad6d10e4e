"""Uploads through the engine facade: a client change reaches the server, and is not echoed back."""

from __future__ import annotations

from dataclasses import replace

from crmsync_desktop.domain import EntityConfig, RunStatus, TransactionStatus
from crmsync_desktop.store import repos
from tests.sync.engine.conftest import PROFILE, Rig
from tests.sync.engine.test_engine_download import _id, connect_and_enable, seed_accounts


def client_key(rig: Rig) -> str:
    """The client organization's name for the account key (matched to the server's by role)."""
    return rig.run(rig.client.get_entity("account")).primary_id


def test_client_change_goes_up_and_the_next_download_skips_its_echo(rig: Rig) -> None:
    ids = seed_accounts(rig, 5)
    connect_and_enable(rig, EntityConfig("account"))
    assert rig.run(rig.engine.sync(PROFILE, full=True)).status is RunStatus.SUCCEEDED
    uploads = rig.engine.uploads(PROFILE)
    assert rig.run(uploads.capture_once()) == 0  # the download's own writes are not changes

    rig.client.put("account", {client_key(rig): ids[1], "name": "edited on the client"})
    assert rig.run(uploads.capture_once()) == 1
    result = rig.run(uploads.drain_once())
    assert result.delivered == 1
    assert rig.server.get("account", ids[1])["name"] == "edited on the client"
    counts = rig.run(repos.count_transactions(rig.db, PROFILE))
    assert counts[TransactionStatus.PROCESSED] == 1 and counts[TransactionStatus.PENDING] == 0

    rig.client.reset_requests()
    after = rig.run(rig.engine.sync(PROFILE))
    assert after.status is RunStatus.SUCCEEDED, after.error
    assert after.counts.get("account", {}).get("updated", 0) == 0  # the server's echo is not written back
    assert rig.client.requests["upsert_many"] == 0
    assert rig.run(uploads.capture_once()) == 0
    rig.run(rig.engine.aclose())


def test_pending_change_is_uploaded_before_the_download_overwrites_it(rig: Rig) -> None:
    ids = seed_accounts(rig, 3)
    connect_and_enable(rig, EntityConfig("account"))
    rig.run(rig.engine.sync(PROFILE, full=True))
    uploads = rig.engine.uploads(PROFILE)
    rig.client.put("account", {client_key(rig): ids[0], "name": "client version"})
    rig.run(uploads.capture_once())  # queued, not yet delivered
    result = rig.run(rig.engine.sync(PROFILE))  # drains first, then downloads
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert rig.server.get("account", ids[0])["name"] == "client version"
    assert rig.client.get("account", ids[0])["name"] == "client version"
    _, report = rig.run(rig.engine.verify(PROFILE))
    assert report.in_sync
    assert _id(0) == ids[0]
    rig.run(rig.engine.aclose())


def test_background_uploads_start_for_a_profile_connected_later(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from crmsync_desktop.domain import ConnectionProfile
    from crmsync_desktop.store.migrate import open_store
    from crmsync_desktop.sync.connectors.types import Product
    from crmsync_desktop.sync.engine import SyncEngine
    from crmsync_desktop.sync.upload.service import UploadSettings
    from tests.fakes.memory_org import MemoryOrg, sales_org
    from tests.sync.engine.conftest import PairFactory

    db = open_store(tmp_path / "s.sqlite3", tmp_path / "b")
    server, client = sales_org(Product.DATAVERSE), MemoryOrg(Product.RESCO)
    engine = SyncEngine(db, PairFactory(server, client), upload_settings=UploadSettings(probe_interval_s=0.02),
                        lock_dir=tmp_path / "locks")

    async def scenario() -> str:
        await repos.save_profile(db, ConnectionProfile(name=PROFILE))
        assert await engine.start_uploads() == []  # nothing connected yet
        rig = Rig(db, server, client, engine, [])
        ids = seed_accounts(rig, 3)
        await engine.connect(PROFILE)
        configs = {c.logical_name: c for c in await repos.list_entity_configs(db, PROFILE)}
        from dataclasses import replace

        await engine.save_entity_configs(PROFILE, [replace(configs["account"], enabled=True)])
        await engine.sync(PROFILE, full=True)
        key = (await client.get_entity("account")).primary_id
        client.put("account", {key: ids[2], "name": "edited while the console runs"})
        for _ in range(500):  # the loop probes every 20 ms here (2 s by default)
            if server.get("account", ids[2])["name"] == "edited while the console runs":
                break
            await asyncio.sleep(0.02)
        await engine.aclose()
        return server.get("account", ids[2])["name"]

    try:
        assert asyncio.run(scenario()) == "edited while the console runs"
    finally:
        db.close()


def test_download_never_overwrites_a_client_edit_capture_has_not_seen_yet(rig: Rig) -> None:
    ids = seed_accounts(rig, 4)
    connect_and_enable(rig, EntityConfig("account"))
    rig.run(rig.engine.sync(PROFILE, full=True))
    uploads = rig.engine.uploads(PROFILE)
    assert rig.run(uploads.capture_once()) == 0  # capture runs for this profile (learns the client token)
    # A user edits on the client; before the upload loop's next probe, the server changes the record.
    rig.client.put("account", {client_key(rig): ids[1], "telephone1": "+1 555 0100 (client)"})
    rig.server.put("account", {"accountid": ids[1], "name": "renamed on the server"})
    result = rig.run(rig.engine.sync(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert rig.client.get("account", ids[1])["telephone1"] == "+1 555 0100 (client)"  # not overwritten
    assert rig.run(repos.count_download_retries(rig.db, PROFILE)) == {"account": 1}  # fetched again later
    # The edit is captured and uploaded (conflict rules apply there), then the record is fetched again.
    assert rig.run(uploads.capture_once()) == 1
    rig.run(uploads.drain_once())
    rig.run(rig.engine.sync(PROFILE))
    assert rig.run(repos.count_download_retries(rig.db, PROFILE)) == {}
    _, report = rig.run(rig.engine.verify(PROFILE))
    assert report is not None and report.in_sync
    rig.run(rig.engine.aclose())


def test_a_client_copy_already_at_the_new_server_version_is_not_held_back(rig: Rig) -> None:
    """A crash after the client write but before its state was recorded leaves the client ahead of
    ``record_state``; that is the engine's own write, not a user's edit, and must not be held forever."""
    ids = seed_accounts(rig, 3)
    connect_and_enable(rig, EntityConfig("account"))
    rig.run(rig.engine.sync(PROFILE, full=True))
    assert rig.run(rig.engine.uploads(PROFILE).capture_once()) == 0
    rig.server.put("account", {"accountid": ids[0], "name": "renamed on the server"})
    rig.client.put("account", {client_key(rig): ids[0], "name": "renamed on the server"})  # the write that landed
    result = rig.run(rig.engine.sync(PROFILE))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert rig.run(repos.count_download_retries(rig.db, PROFILE)) == {}
    assert rig.run(rig.engine.uploads(PROFILE).capture_once()) == 0  # and it is no client change either
    _, report = rig.run(rig.engine.verify(PROFILE))
    assert report is not None and report.in_sync
    rig.run(rig.engine.aclose())


def test_a_client_edit_capture_saw_and_left_out_does_not_block_server_changes(rig: Rig) -> None:
    """An edit outside the upload filter is captured but not queued; the server's next change to
    that record must still reach the client (server is master), not wait forever."""
    ids = seed_accounts(rig, 3)
    connect_and_enable(rig, EntityConfig("account"))
    config = next(c for c in rig.run(repos.list_entity_configs(rig.db, PROFILE)) if c.logical_name == "account")
    rig.run(rig.engine.save_entity_configs(PROFILE, [replace(config, upload_filter=(
        '<fetch><entity name="account"><filter><condition attribute="name" operator="eq" '
        'value="never matches"/></filter></entity></fetch>'))]))
    rig.run(rig.engine.sync(PROFILE, full=True))
    uploads = rig.engine.uploads(PROFILE)
    assert rig.run(uploads.capture_once()) == 0
    rig.client.put("account", {client_key(rig): ids[2], "telephone1": "not uploaded"})
    assert rig.run(uploads.capture_once()) == 0  # seen, but outside the upload filter
    rig.server.put("account", {"accountid": ids[2], "telephone1": "from the server"})
    rig.run(rig.engine.sync(PROFILE))
    assert rig.client.get("account", ids[2])["telephone1"] == "from the server"
    assert rig.run(repos.count_download_retries(rig.db, PROFILE)) == {}
    rig.run(rig.engine.aclose())


def test_without_capture_the_server_version_is_written(rig: Rig) -> None:
    """A profile nobody uploads for (no capture token): the server is master, its version is written."""
    ids = seed_accounts(rig, 3)
    connect_and_enable(rig, EntityConfig("account"))
    rig.run(rig.engine.sync(PROFILE, full=True))
    rig.server.put("account", {"accountid": ids[0], "name": "renamed on the server"})
    rig.client.put("account", {client_key(rig): ids[0], "telephone1": "edited, never captured"})
    rig.run(rig.engine.sync(PROFILE))
    assert rig.client.get("account", ids[0])["name"] == "renamed on the server"
    assert rig.run(repos.count_download_retries(rig.db, PROFILE)) == {}
    rig.run(rig.engine.aclose())
