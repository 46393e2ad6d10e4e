"""A secret written through CredentialStore appears nowhere on disk: not the SQLite file, the log, or an export."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.domain import AuthKind, ConnectionProfile, EntityConfig, ProfileConfig
from crmsync_desktop.logs import setup_logging
from crmsync_desktop.paths import resolve_paths
from crmsync_desktop.store import repos
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.profiles import ProfileService
from tests.fakes.keyring_backend import InMemoryKeyring

CLIENT_SECRET = "Qx8~vS3cr3t-ClientSecret-Value.42"
RESCO_PASSWORD = "R3sco!Passw0rd#2026"


def test_secrets_reach_only_the_keyring(tmp_path: Path, memory_keyring: InMemoryKeyring) -> None:
    paths = resolve_paths(tmp_path / "home").ensure()
    setup = setup_logging(paths.log_file, level=logging.DEBUG)
    credentials = CredentialStore()
    db = open_store(paths.database, paths.backups_dir)
    export = tmp_path / "export.json"
    try:
        credentials.set_secret("Contoso", SecretKind.SERVER_CLIENT_SECRET, CLIENT_SECRET)
        credentials.set_secret("Contoso", SecretKind.CLIENT_PASSWORD, RESCO_PASSWORD)
        profile = ConnectionProfile(
            name="Contoso", server_url="https://contoso.crm.dynamics.com", server_auth_kind=AuthKind.CLIENT_SECRET,
            client_url="https://eu.rescocrm.com", client_user="admin@contoso.com",
        )

        async def flow() -> None:
            await repos.replace_profile_config(db, ProfileConfig(profile=profile, entities=(EntityConfig("account"),)))
            service = ProfileService(db)
            await service.export_to_file("Contoso", export)
            secret = await credentials.aget_secret("Contoso", SecretKind.SERVER_CLIENT_SECRET)
            # A careless log line with the secret in it, as a bug elsewhere might write.
            logging.getLogger("crmsync_desktop.flow").debug("signing in with %s / %s", secret, RESCO_PASSWORD)
            logging.getLogger("crmsync_desktop.flow").info("POST body client_secret=%s", secret)

        asyncio.run(flow())
    finally:
        db.close()
        setup.close()

    assert memory_keyring.entries  # they are in the keyring...
    files = [p for p in paths.data_dir.rglob("*") if p.is_file()] + [p for p in paths.log_dir.rglob("*") if p.is_file()]
    files.append(export)
    assert any(p.suffix == ".sqlite3" for p in files) and paths.log_file in files
    for path in files:  # ...and nowhere else (the SQLite file, its WAL, the log, the export)
        data = path.read_bytes()
        for secret in (CLIENT_SECRET, RESCO_PASSWORD):
            assert secret.encode() not in data, f"{secret!r} leaked into {path}"
            assert secret.encode("utf-16-le") not in data
    assert "signing in with" in paths.log_file.read_text()
