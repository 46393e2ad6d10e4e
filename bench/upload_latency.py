"""Client change -> server visible latency with the real upload loop (``UploadService.run_forever``).

Starts an EmulatorPair (Entra ID + Dataverse + Resco Cloud on loopback HTTPS), connects a profile,
runs Sync All, starts the engine's background upload loop (probe every ``--probe`` seconds), then
makes ``--changes`` client edits one at a time at random moments and polls the Dataverse emulator
until each is visible. Prints p50/p95/max of the latency.

    python bench/upload_latency.py                  # 100 changes, probe 2 s (about 2-4 minutes)
    python bench/upload_latency.py --changes 20 --probe 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keyring

from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.domain import AuthKind, ConnectionProfile
from crmsync_desktop.emulator.runner import EmulatorPair
from crmsync_desktop.store import repos
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.organizations import ProfileConnectorFactory
from crmsync_desktop.sync.upload.service import UploadSettings

PROFILE = "Bench"


def _memory_keyring() -> None:
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            self.data: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.data.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.data[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.data.pop((service, username), None)

    keyring.set_keyring(Memory())


def _server_name(pair: EmulatorPair, rid: str) -> str | None:
    org = pair.dataverse_org
    with org.lock:
        row = org.conn.execute("SELECT name FROM account WHERE accountid = ?", (rid,)).fetchone()
    return row[0] if row else None


async def run(args: argparse.Namespace) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="crmsync-upload-latency-"))
    rng = random.Random(args.seed)
    with EmulatorPair(tmp / "emulator", seed_records=args.records, seed=1) as pair:
        db = open_store(tmp / "store.sqlite3", tmp / "backups")
        credentials = CredentialStore()
        factory = ProfileConnectorFactory(credentials, ca_bundle=str(pair.ca_path))
        engine = SyncEngine(db, factory, credentials=credentials)
        profile = ConnectionProfile(
            name=PROFILE, server_url=pair.dataverse_url, server_auth_kind=AuthKind.CLIENT_SECRET, tenant_id="",
            client_id=pair.client_id, client_url=f"{pair.resco_url}/{pair.resco_org}", client_user=pair.resco_username)
        await engine.save_connection(profile, {SecretKind.SERVER_CLIENT_SECRET: pair.client_secret,
                                               SecretKind.CLIENT_PASSWORD: pair.resco_password})
        await engine.connect(PROFILE, ["account", "contact"])
        configs = {c.logical_name: c for c in await repos.list_entity_configs(db, PROFILE)}
        await engine.save_entity_configs(PROFILE, [replace(configs["account"], enabled=True)])
        result = await engine.sync(PROFILE, full=True)
        assert result.error is None, result
        uploads = engine.uploads(PROFILE)
        uploads.probe_interval_s = args.probe
        uploads.settings = UploadSettings(probe_interval_s=args.probe)
        await uploads.capture_once()  # primed, as after the app's first tick
        loop_task = asyncio.create_task(uploads.run_forever())
        editor = await factory.open(await repos.get_profile(db, PROFILE))
        ids = [i for page in [p async for p in editor.client.read_ids("account")] for i in page]
        latencies: list[float] = []
        try:
            for n in range(args.changes):
                await asyncio.sleep(rng.uniform(0, args.probe))  # changes land anywhere in the probe cycle
                rid, name = rng.choice(ids), f"Latency {n}"
                await editor.client.upsert_many("account", [{"id": rid, "name": name}])
                started = time.perf_counter()
                while _server_name(pair, rid) != name:
                    await asyncio.sleep(0.01)
                latencies.append(time.perf_counter() - started)
                if args.verbose:
                    print(f"{n + 1:>4}: {latencies[-1]:.3f} s", flush=True)
        finally:
            uploads.stop()
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
            await editor.aclose()
            await engine.aclose()
            db.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--probe", type=float, default=2.0, help="upload loop probe interval (s)")
    parser.add_argument("--records", type=int, default=1000, help="seeded server records")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    _memory_keyring()
    lat = sorted(asyncio.run(run(args)))
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    print(f"client change -> server visible, {len(lat)} changes, probe {args.probe:g} s:")
    print(f"  p50 {q[49]:.3f} s   p95 {q[94]:.3f} s   max {lat[-1]:.3f} s   mean {statistics.fmean(lat):.3f} s")


if __name__ == "__main__":
    main()
