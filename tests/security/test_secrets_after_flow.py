"""No secret (client secret, passwords, access tokens) is written anywhere after a real flow.

Against the emulated organizations over HTTPS: save the connection, Connect, Sync All, one client
change uploaded to the server, an export; logging at DEBUG. Then every file under the app's home
(SQLite store + WAL, logs, token cache, backups), the export, the in-memory log ring buffer (the
Logs screen) and what ``sys.excepthook`` prints for a failed sign-in (crmsync has no crash-report
file: an uncaught exception goes to the default hook on stderr and to the log) are scanned for
every secret in plain text, UTF-16 and base64 (HTTP Basic) form.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.domain import AuthKind, ConnectionProfile
from crmsync_desktop.emulator.runner import EmulatorPair
from crmsync_desktop.logs import setup_logging
from crmsync_desktop.paths import resolve_paths
from crmsync_desktop.store import repos
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.organizations import ProfileConnectorFactory
from crmsync_desktop.sync.profiles import ProfileService

PROFILE = "Contoso"


def _forms(secret: str) -> list[bytes]:
    return [secret.encode(), secret.encode("utf-16-le")]


def _scan(blobs: dict[str, bytes], secrets: dict[str, str], extra: dict[str, bytes]) -> list[str]:
    leaks = []
    for where, data in blobs.items():
        for name, secret in secrets.items():
            if any(form in data for form in _forms(secret)):
                leaks.append(f"{name} in {where}")
        for name, form in extra.items():
            if form in data:
                leaks.append(f"{name} in {where}")
    return leaks


def test_no_secret_anywhere_after_connect_sync_upload_export(tmp_path: Path, app_home: Path) -> None:
    paths = resolve_paths(app_home).ensure()
    setup = setup_logging(paths.log_file, level=logging.DEBUG)
    export = tmp_path / "export.crmsync.json"
    hook_output = io.StringIO()
    with EmulatorPair(tmp_path / "emu", seed_records=120, seed=3) as emu:
        credentials = CredentialStore()
        db = open_store(paths.database, paths.backups_dir)
        factory = ProfileConnectorFactory(credentials, token_cache_path=paths.token_cache, ca_bundle=str(emu.ca_path))
        engine = SyncEngine(db, factory, credentials=credentials)
        profile = ConnectionProfile(
            name=PROFILE, server_url=emu.dataverse_url, server_auth_kind=AuthKind.CLIENT_SECRET,
            client_id=emu.client_id, client_url=f"{emu.resco_url}/{emu.resco_org}", client_user=emu.resco_username,
        )
        token_holder: list[str] = []

        async def flow() -> None:
            await engine.save_connection(profile, {SecretKind.SERVER_CLIENT_SECRET: emu.client_secret,
                                                   SecretKind.CLIENT_PASSWORD: emu.resco_password})
            result, _ = await engine.connect(PROFILE, ["account"])
            assert result.run_id
            configs = {c.logical_name: c for c in await repos.list_entity_configs(db, PROFILE)}
            await engine.save_entity_configs(PROFILE, [replace(configs["account"], enabled=True)])
            synced = await engine.sync(PROFILE, full=True)
            assert synced.counts["account"]["created"] > 0, synced.summary
            # One client change, uploaded to the server.
            uploads = engine.uploads(PROFILE)
            await uploads.capture_once()
            resco = emu.resco_cloud.get(emu.resco_org)
            user = resco.check_password(emu.resco_username, emu.resco_password)
            resco.create("account", {"name": "Security check"}, user, "5ec0a11e-0000-4000-8000-000000000001")
            assert await uploads.capture_once() >= 1
            drained = await uploads.drain_once()
            assert drained.delivered >= 1
            await ProfileService(db).export_to_file(PROFILE, export)
            provider = await factory.token_provider(await engine.get_profile(PROFILE))
            token_holder.append(await provider.get_token([f"{emu.dataverse_url}/.default"]))
            await engine.aclose()

        try:
            asyncio.run(flow())
            # A failed sign-in that nobody catches: what the default excepthook prints.
            wrong = "Wr0ng-Secret~" + emu.client_secret[:6]
            asyncio.run(credentials.aset_secret(PROFILE, SecretKind.SERVER_CLIENT_SECRET, wrong))
            fresh_factory = ProfileConnectorFactory(credentials, ca_bundle=str(emu.ca_path))
            fresh = SyncEngine(db, fresh_factory, credentials=credentials)
            server_error, _ = asyncio.run(fresh.test_connection(PROFILE))
            fresh_factory.close()
            assert isinstance(server_error, Exception), server_error
            stderr = sys.stderr
            sys.stderr = hook_output
            try:
                try:
                    raise RuntimeError("sync failed") from server_error
                except RuntimeError:
                    sys.__excepthook__(*sys.exc_info())  # crmsync installs no hook of its own
            finally:
                sys.stderr = stderr
            logging.getLogger("crmsync_desktop.test").exception("uncaught", exc_info=server_error)
        finally:
            factory.close()
            db.close()
            ring = "\n".join(line.message for line in setup.ring.lines()).encode()
            setup.close()
        secrets = {"client secret": emu.client_secret, "wrong client secret": wrong,
                   "Resco password": emu.resco_password, "Entra user password": emu.user_password,
                   "access token": token_holder[0]}
        basic = base64.b64encode(f"{emu.resco_username}:{emu.resco_password}".encode())
        # The emulator's own folder holds its credentials.json by design: only the app's files count.
    blobs = {str(p.relative_to(app_home)): p.read_bytes() for p in app_home.rglob("*") if p.is_file()}
    assert any(name.endswith(".sqlite3") for name in blobs) and paths.log_file.exists()
    blobs["export"] = export.read_bytes()
    blobs["log ring buffer"] = ring
    blobs["sys.excepthook output"] = hook_output.getvalue().encode()
    assert "RuntimeError: sync failed" in hook_output.getvalue()
    leaks = _scan(blobs, secrets, {"Resco Basic credentials": basic})
    assert not leaks, leaks
    assert len(blobs) >= 4


@pytest.mark.parametrize("kind", [SecretKind.SERVER_CLIENT_SECRET, SecretKind.CLIENT_PASSWORD])
def test_profiles_never_store_secrets_in_the_database_columns(tmp_path: Path, app_home: Path, kind: SecretKind) -> None:
    """The secret goes to the keyring only; the profile row has no column that could hold it."""
    paths = resolve_paths(app_home).ensure()
    db = open_store(paths.database, paths.backups_dir)
    credentials = CredentialStore()
    engine = SyncEngine(db, ProfileConnectorFactory(credentials), credentials=credentials)
    secret = f"S3cret-{kind.value}-value"

    async def go() -> None:
        await engine.save_connection(ConnectionProfile(name="P", server_url="https://x.crm.dynamics.com",
                                                       client_url="https://rescocrm.com/x", client_user="u"),
                                     {kind: secret})
        assert await engine.stored_secrets("P") == {kind}

    try:
        asyncio.run(go())
    finally:
        db.close()
    for p in app_home.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p
