"""The embedded demo: emulated Dataverse and Resco Cloud organizations with sample data and a ready profile.

``crmsync-desktop --demo`` starts the emulators in-process (HTTPS on loopback, their own CA), seeds a
sales organization on the server side, and stores a "Demo" connection profile pointing at them, so
a newcomer can Connect, choose entities, Sync All and watch client changes arrive as offline
transactions without any other setup. The emulators' credentials are test credentials: they live
in the demo's own folder and in an in-memory keyring for this process, never in the OS keyring.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.domain import AuthKind, ConnectionProfile, ServerKind

log = logging.getLogger(__name__)

DEMO_PROFILE = "Demo"
DEFAULT_DEMO_RECORDS = 2000


class _DemoKeyring(KeyringBackend):
    """Holds the emulators' test credentials for this process only."""

    priority = 0  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self._entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@dataclass
class DemoEnvironment:
    """Emulated organizations for the demo, started and stopped by the composition root."""

    root: Path
    seed_records: int = DEFAULT_DEMO_RECORDS

    def __post_init__(self) -> None:
        self.credentials = CredentialStore(backend=_DemoKeyring())
        self._pair = None

    @property
    def ca_bundle(self) -> str:
        assert self._pair is not None
        return str(self._pair.ca_path)

    def start(self) -> None:
        """Start the emulators (blocking: seeding takes a few seconds; call it from a worker thread)."""
        from crmsync_desktop.emulator.runner import EmulatorPair

        self.root.mkdir(parents=True, exist_ok=True)
        self._pair = EmulatorPair(self.root / "emulator", seed_records=self.seed_records, seed=2026)
        self._pair.__enter__()
        log.info("Demo organizations started: server %s, client %s/%s",
                 self._pair.dataverse_url, self._pair.resco_url, self._pair.resco_org)

    def stop(self) -> None:
        if self._pair is not None:
            self._pair.__exit__(None, None, None)
            self._pair = None

    def profile(self, existing: ConnectionProfile | None = None) -> ConnectionProfile:
        """The Demo profile pointing at the running emulators (their ports change on every start)."""
        pair = self._pair
        assert pair is not None
        base = existing or ConnectionProfile(name=DEMO_PROFILE)
        return replace(
            base,
            server_kind=ServerKind.DATAVERSE,
            server_url=pair.dataverse_url,
            server_auth_kind=AuthKind.CLIENT_SECRET,
            tenant_id="",  # discovered from the organization's sign-in challenge, as with a real one
            client_id=pair.client_id,
            client_url=f"{pair.resco_url}/{pair.resco_org}",
            client_user=pair.resco_username,
        )

    def secrets(self) -> dict[SecretKind, str]:
        pair = self._pair
        assert pair is not None
        return {SecretKind.SERVER_CLIENT_SECRET: pair.client_secret, SecretKind.CLIENT_PASSWORD: pair.resco_password}

    # -- what a newcomer can do to see the sync work (Demo menu) -----------------------------------

    def _client_org(self):  # type: ignore[no-untyped-def]
        assert self._pair is not None and self._pair.resco_cloud is not None
        return self._pair.resco_cloud.get(self._pair.resco_org)

    def _client_user(self, org) -> str:  # type: ignore[no-untyped-def]
        import sqlalchemy as sa

        users = org.tables["systemuser"]
        return str(org.scalar(sa.select(users.c.id).limit(1)))

    def simulate_client_edit(self) -> str:
        """A mobile user edits an account in the client organization (as if on a device)."""
        import random

        import sqlalchemy as sa

        org = self._client_org()
        if "account" not in org.tables:
            return "The client organization has no accounts yet: Connect, enable Account and Sync All first."
        accounts = org.tables["account"]
        rows = org.execute(sa.select(accounts.c.id, accounts.c.name).limit(200))
        if not rows:
            return "The client organization has no accounts yet: enable Account and Sync All first."
        row = random.choice(rows)
        name = f"{(row['name'] or 'Account').split(' (edited')[0]} (edited on the client {random.randint(100, 999)})"
        org.update("account", str(row["id"]), {"name": name}, user_id=self._client_user(org))
        return f"Renamed a client account to '{name}'. Watch Offline Transactions: it is uploaded within seconds."

    def simulate_client_create(self) -> str:
        """A mobile user creates a contact in the client organization."""
        import random

        org = self._client_org()
        if "contact" not in org.tables:
            return "The client organization has no Contact table yet: Connect first."
        last = random.choice(["Novak", "Svoboda", "Dvorak", "Horvath", "Kowalski"])
        org.create("contact", {"firstname": "Demo", "lastname": last}, user_id=self._client_user(org))
        return f"Created contact 'Demo {last}' on the client; it is uploaded if Contact is enabled."

    def set_server_offline(self, offline: bool) -> str:
        """Take the emulated server organization off the network (client changes then queue as Pending)."""
        assert self._pair is not None
        self._pair.dataverse_org.set_offline(offline)
        return ("The server organization is offline: client changes wait as Pending transactions."
                if offline else "The server organization is back: the Pending transactions drain in order.")

    def __enter__(self) -> DemoEnvironment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
