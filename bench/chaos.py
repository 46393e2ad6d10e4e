"""Chaos soak: both organizations change while the network misbehaves and the sync process is killed.

Usage: ``python -m bench.chaos [--minutes 10] [--seed 1] [--records 1500] [--work-dir D]``

The emulated organizations (``EmulatorPair``) run in this process; the sync runs as ``crmsync run``
(service mode: uploads probe the client every 2 s, the scheduled download every minute) in a
subprocess with the test file keyring. For ``--minutes`` this process:

* changes both organizations at random (seeded): creates, updates, deletes and owner changes of
  accounts and contacts on the server; creates, updates, owner changes and deletes of accounts on
  the client; N:N associate/disassociate (lead <-> competitor) on the server;
* injects faults: 429 bursts (Dataverse and Resco Cloud), windows of 5xx answers, of dropped
  connections and of 8-second responses, and the server offline for a minute (scaled with the
  duration: ``minutes / 10``);
* kills the sync process with SIGKILL at random moments (at least 10 times when ``--minutes`` >= 3)
  and restarts it.

Client changes only touch records created on the client and server changes only records the
server holds, so the expected end state is exact (no conflict decides it). At the end (faults off)
it waits for the queue to drain, stops the service, runs ``crmsync sync`` and ``crmsync verify``,
and checks: Verify reports both organizations equal; every client-created record is on the server
exactly once with the client's last values (or gone, if the client deleted it); no transaction is
left Pending (or in Error). Prints what was changed and injected; exit code 0 only if every check
passed. Seeded: the same ``--seed`` replays the same decisions (timing still varies).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROFILE = "Chaos"
ENTITIES = ("account", "contact")


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Expected:
    """What the server must hold for one client-created account at the end."""

    record_id: str
    telephone: str
    owner: str | None = None
    deleted: bool = False


@dataclass
class Soak:
    work: Path
    minutes: float
    seed: int
    records: int
    rng: random.Random = field(init=False)
    changes: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    client_records: dict[str, Expected] = field(default_factory=dict)
    server_ids: list[str] = field(default_factory=list)
    server_contacts: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    proc_log: Any = None
    incarnation: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"crmsync-chaos-{self.seed}")  # not the seeder's stream (same ids!)
        self.home = self.work / "crmsync-home"
        self.keyring_file = self.work / "keyring.json"
        self.env = {**os.environ, "PYTHON_KEYRING_BACKEND": "tests.fakes.file_keyring.FileKeyring",
                    "CRMSYNC_TEST_KEYRING_FILE": str(self.keyring_file), "PYTHONPATH": str(ROOT),
                    "PYTHONUNBUFFERED": "1"}

    # -- set-up ------------------------------------------------------------------------------------------
    def start_emulator(self) -> None:
        from crmsync_desktop.emulator.runner import EmulatorPair

        self.emu = EmulatorPair(self.work / "emu", seed_records=self.records, seed=self.seed).start()
        self.dv = self.emu.dataverse_org
        self.dv.set_performance(latency_ms=20, cost_per_record_ms=0.02)
        self.dv.set_limits(enabled=True)
        self.resco = self.emu.resco_cloud.get(self.emu.resco_org)
        self.resco_user = self.resco.check_password(self.emu.resco_username, self.emu.resco_password)
        self.users = [r[0] for r in self.dv.conn.execute("SELECT systemuserid FROM systemuser WHERE isdisabled = 0")]
        self.server_ids = [r[0] for r in self.dv.conn.execute("SELECT accountid FROM account")]
        self.server_contacts = [r[0] for r in self.dv.conn.execute("SELECT contactid FROM contact")]

    def prepare_profile(self) -> None:
        """Profile, Connect, entities, a first full sync and a 1-minute schedule, as an admin would (CLI store)."""
        import keyring

        from tests.fakes.file_keyring import FileKeyring

        os.environ["CRMSYNC_TEST_KEYRING_FILE"] = str(self.keyring_file)
        keyring.set_keyring(FileKeyring())
        from dataclasses import replace

        from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
        from crmsync_desktop.domain import AuthKind, ConnectionProfile, ScheduleConfig
        from crmsync_desktop.paths import resolve_paths
        from crmsync_desktop.store import repos
        from crmsync_desktop.store.migrate import open_store
        from crmsync_desktop.sync.engine import SyncEngine
        from crmsync_desktop.sync.organizations import ProfileConnectorFactory

        paths = resolve_paths(self.home).ensure()
        db = open_store(paths.database, paths.backups_dir)
        credentials = CredentialStore()
        factory = ProfileConnectorFactory(credentials, ca_bundle=str(self.emu.ca_path))
        engine = SyncEngine(db, factory, credentials=credentials)
        profile = ConnectionProfile(
            name=PROFILE, server_url=self.emu.dataverse_url, server_auth_kind=AuthKind.CLIENT_SECRET,
            client_id=self.emu.client_id, client_url=f"{self.emu.resco_url}/{self.emu.resco_org}",
            client_user=self.emu.resco_username)

        async def go() -> None:
            await engine.save_connection(profile, {SecretKind.SERVER_CLIENT_SECRET: self.emu.client_secret,
                                                   SecretKind.CLIENT_PASSWORD: self.emu.resco_password})
            result, _ = await engine.connect(PROFILE, list(ENTITIES))
            log(f"connect: {result.status.value} {result.summary}")
            configs = {c.logical_name: c for c in await repos.list_entity_configs(db, PROFILE)}
            await engine.save_entity_configs(PROFILE, [replace(configs[n], enabled=True, sync_deletion=True)
                                                       for n in ENTITIES])
            result = await engine.sync(PROFILE, full=True)
            log(f"first full sync: {result.status.value} {result.summary}")
            await repos.save_schedule_config(db, PROFILE, ScheduleConfig(enabled=True, interval_minutes=1))
            await engine.aclose()

        try:
            asyncio.run(go())
        finally:
            factory.close()
            db.close()

    # -- the service process -----------------------------------------------------------------------------
    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "crmsync_desktop.cli", "--data-dir", str(self.home),
                "--ca-bundle", str(self.emu.ca_path), *args]

    def start_service(self) -> None:
        self.incarnation += 1
        self._close_log()
        self.proc_log = open(self.work / f"service-{self.incarnation:02d}.log", "wb")  # noqa: SIM115 - see _close_log
        self.proc = subprocess.Popen(self.cli("run"), cwd=ROOT, env=self.env, stdout=self.proc_log,
                                     stderr=subprocess.STDOUT)

    def _close_log(self) -> None:
        if self.proc_log is not None:
            self.proc_log.close()
            self.proc_log = None

    def kill_service(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.injected["sync process killed (SIGKILL)"] += 1
        self.start_service()

    def stop_service(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.returncode not in (0, -signal.SIGTERM):
            log(f"service exited with {self.proc.returncode}")
        self._close_log()

    # -- changes -------------------------------------------------------------------------------------------
    def _dv(self, action: str, entity: str, rid: str | None, body: dict[str, Any] | None = None) -> None:
        from crmsync_desktop.emulator.dataverse import records
        from crmsync_desktop.emulator.dataverse.org import Caller

        org = self.dv
        caller = Caller(org.system_user_id, org.root_business_unit_id, "", "SYSTEM")
        ent = org.md.entities[entity]
        with org.lock, org.transaction():
            if action == "create":
                records.create(org, caller, ent, body, record_id=rid)
            elif action == "update":
                records.update(org, caller, ent, rid, body)
            elif action == "delete":
                records.delete(org, caller, ent, rid)

    def server_change(self, n: int) -> None:
        kind = self.rng.choices(["create", "update", "delete", "owner", "contact", "nn"], [3, 5, 1, 2, 3, 2])[0]
        try:
            if kind == "create":
                rid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
                self._dv("create", "account", rid, {"name": f"chaos-s-{n}", "telephone1": f"s{n}"})
                self.server_ids.append(rid)
            elif kind == "update" and self.server_ids:
                self._dv("update", "account", self.rng.choice(self.server_ids), {"telephone1": f"s{n}"})
            elif kind == "delete" and len(self.server_ids) > 50:
                rid = self.server_ids.pop(self.rng.randrange(len(self.server_ids)))
                self._dv("delete", "account", rid)
            elif kind == "owner" and self.server_ids:
                self._dv("update", "account", self.rng.choice(self.server_ids),
                         {"ownerid@odata.bind": f"/systemusers({self.rng.choice(self.users)})"})
            elif kind == "contact" and self.server_contacts:
                if self.rng.random() < 0.3:
                    rid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
                    self._dv("create", "contact", rid, {"firstname": "Chaos", "lastname": f"s{n}"})
                    self.server_contacts.append(rid)
                else:
                    self._dv("update", "contact", self.rng.choice(self.server_contacts), {"jobtitle": f"s{n}"})
            elif kind == "nn":
                kind = self.nn_change()
            else:
                return
            self.changes[f"server {kind}"] += 1
        except Exception as exc:  # noqa: BLE001 - e.g. the record went with a cascade delete
            self.changes[f"server {kind} skipped ({type(exc).__name__})"] += 1

    def nn_change(self) -> str:
        from crmsync_desktop.emulator.dataverse import records
        from crmsync_desktop.emulator.dataverse.org import Caller

        org = self.dv
        caller = Caller(org.system_user_id, org.root_business_unit_id, "", "SYSTEM")
        lead_ent = org.md.entities["lead"]
        nav = next(n for n in lead_ent.collection_navs.values() if n.kind == "nn" and n.other == "competitor")
        with org.lock, org.transaction():
            lead = org.conn.execute("SELECT leadid FROM lead ORDER BY leadid LIMIT 1 OFFSET ?",
                                    (self.rng.randrange(50),)).fetchone()[0]
            comp = org.conn.execute("SELECT competitorid FROM competitor ORDER BY competitorid LIMIT 1 OFFSET ?",
                                    (self.rng.randrange(5),)).fetchone()[0]
            linked = org.conn.execute(f"SELECT 1 FROM {nav.intersect} WHERE {nav.self_attr} = ? AND {nav.other_attr} = ?",
                                      (lead, comp)).fetchone()
            if linked:
                records.disassociate(org, caller, lead_ent, lead, nav, comp)
                return "N:N disassociate"
            records.associate(org, caller, lead_ent, lead, nav, org.md.entities["competitor"], comp)
            return "N:N associate"

    def client_change(self, n: int) -> None:
        live = [e for e in self.client_records.values() if not e.deleted]
        kind = self.rng.choices(["create", "update", "owner", "delete"], [4, 4, 2, 1])[0]
        if kind != "create" and not live:
            kind = "create"
        if kind == "create":
            rid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            name = f"chaos-c-{n}"
            self.resco.create("account", {"name": name, "telephone1": f"c{n}"}, self.resco_user, rid)
            self.client_records[name] = Expected(rid, f"c{n}", owner=self.resco_user)
        else:
            target = self.rng.choice(live)
            if kind == "update":
                self.resco.update("account", target.record_id, {"telephone1": f"c{n}"}, self.resco_user)
                target.telephone = f"c{n}"
            elif kind == "owner":
                owner = self.rng.choice(self.users)
                self.resco.update("account", target.record_id, {"ownerid": {"id": owner, "logicalname": "systemuser"}},
                                  self.resco_user)
                target.owner = owner
            else:
                self.resco.delete("account", target.record_id)
                target.deleted = True
        self.changes[f"client {kind}"] += 1

    # -- faults --------------------------------------------------------------------------------------------
    def plan_faults(self, seconds: float) -> list[tuple[float, str]]:
        """(offset in seconds, fault) events, seeded."""
        scale = max(self.minutes / 10, 0.1)
        kills = max(10, round(self.minutes * 1.5)) if self.minutes >= 3 else max(3, round(self.minutes * 4))
        events: list[tuple[float, str]] = [(self.rng.uniform(0.05, 0.95) * seconds, "kill") for _ in range(kills)]
        kinds = ["dv_429", "rs_429", "dv_5xx", "rs_5xx", "dv_drop", "rs_drop", "dv_slow", "rs_slow"]
        for _ in range(max(8, round(20 * scale))):
            events.append((self.rng.uniform(0.05, 0.85) * seconds, self.rng.choice(kinds)))
        events.append((self.rng.uniform(0.3, 0.6) * seconds, f"offline:{60 * scale:.0f}"))
        return sorted(events)

    def inject(self, fault: str, now: float, windows: list[tuple[float, Any]]) -> None:
        faults = self.emu.resco_app
        assert faults is not None
        window = self.rng.uniform(8, 20)
        if fault == "kill":
            self.kill_service()
            return
        if fault == "dv_429":
            self.dv.throttle_burst(self.rng.randint(5, 30), retry_after_s=self.rng.randint(1, 5))
            self.injected["Dataverse 429 bursts"] += 1
        elif fault == "rs_429":
            faults.configure({"throttle_burst": self.rng.randint(5, 30), "retry_after": self.rng.randint(1, 5)})
            self.injected["Resco 429 bursts"] += 1
        elif fault == "dv_5xx":
            self.dv.set_faults(error_rate=0.3, error_status=self.rng.choice([500, 502, 503, 504]))
            windows.append((now + window, lambda: self.dv.set_faults(error_rate=0.0)))
            self.injected["Dataverse 5xx windows"] += 1
        elif fault == "rs_5xx":
            faults.configure({"error_rate": 0.3, "error_status": self.rng.choice([500, 502, 503])})
            windows.append((now + window, lambda: faults.configure({"error_rate": 0.0})))
            self.injected["Resco 5xx windows"] += 1
        elif fault == "dv_drop":
            self.dv.set_faults(drop_rate=0.3)
            windows.append((now + window, lambda: self.dv.set_faults(drop_rate=0.0)))
            self.injected["Dataverse dropped-connection windows"] += 1
        elif fault == "rs_drop":
            faults.configure({"drop_rate": 0.3})
            windows.append((now + window, lambda: faults.configure({"drop_rate": 0.0})))
            self.injected["Resco dropped-connection windows"] += 1
        elif fault == "dv_slow":
            self.dv.set_faults(added_latency_ms=8000)
            windows.append((now + window, lambda: self.dv.set_faults(added_latency_ms=0)))
            self.injected["Dataverse slow-response (8 s) windows"] += 1
        elif fault == "rs_slow":
            faults.configure({"latency_ms": 8000})
            windows.append((now + window, lambda: faults.configure({"latency_ms": 0})))
            self.injected["Resco slow-response (8 s) windows"] += 1
        elif fault.startswith("offline:"):
            seconds = float(fault.split(":")[1])
            self.dv.set_offline(True)
            windows.append((now + seconds, lambda: self.dv.set_offline(False)))
            self.injected[f"Dataverse offline ({seconds:.0f} s)"] += 1

    def clear_faults(self) -> None:
        self.dv.clear_faults()
        assert self.emu.resco_app is not None
        self.emu.resco_app.reset()

    # -- the run -------------------------------------------------------------------------------------------
    def soak(self) -> None:
        seconds = self.minutes * 60
        events = self.plan_faults(seconds)
        windows: list[tuple[float, Any]] = []
        self.start_service()
        started = time.monotonic()
        n = 0
        next_report = 30.0
        while True:
            now = time.monotonic() - started
            if now >= seconds:
                break
            while events and events[0][0] <= now:
                _, fault = events.pop(0)
                self.inject(fault, now, windows)
            for item in [w for w in windows if w[0] <= now]:
                item[1]()
                windows.remove(item)
            if self.proc is not None and self.proc.poll() is not None:
                log(f"the service exited by itself ({self.proc.returncode}); restarting")
                self.injected["service exits (restarted)"] += 1
                self.start_service()
            n += 1
            if self.rng.random() < 0.5:
                self.server_change(n)
            else:
                self.client_change(n)
            if now >= next_report:
                log(f"{now:5.0f} s: {sum(self.changes.values())} changes, "
                    f"{sum(self.injected.values())} faults/kills so far")
                next_report += 30
            time.sleep(self.rng.uniform(0.2, 1.0))
        for _, undo in windows:
            undo()
        self.clear_faults()

    def transaction_counts(self) -> dict[str, int]:
        out = subprocess.run(self.cli("--json", "transactions", "list", PROFILE, "--status", "all", "--limit", "1"),
                             cwd=ROOT, env=self.env, capture_output=True, text=True, check=False)
        try:
            return {k.lower(): v for k, v in json.loads(out.stdout)["result"]["counts"].items()}
        except (ValueError, KeyError, AttributeError):
            return {"unreadable": 1}

    def server_account(self, name: str) -> list[tuple[str, str | None, str | None]]:
        with self.dv.lock:
            return list(self.dv.conn.execute("SELECT accountid, telephone1, ownerid FROM account WHERE name = ?",
                                              (name,)))

    def missing_on_server(self) -> list[str]:
        problems = []
        for name, exp in self.client_records.items():
            rows = self.server_account(name)
            if exp.deleted:
                if rows:
                    problems.append(f"{name}: deleted on the client but {len(rows)} on the server")
                continue
            if len(rows) != 1:
                problems.append(f"{name}: {len(rows)} record(s) on the server, expected exactly 1")
                continue
            rid, phone, owner = rows[0]
            if rid.lower() != exp.record_id.lower():
                problems.append(f"{name}: server id {rid} != client id {exp.record_id}")
            if phone != exp.telephone:
                problems.append(f"{name}: telephone1 {phone!r} on the server, {exp.telephone!r} on the client")
            if exp.owner and owner and exp.owner in self.users and owner.lower() != exp.owner.lower():
                problems.append(f"{name}: owner {owner} on the server, {exp.owner} on the client")
        return problems

    def finish(self, drain_timeout: float) -> dict[str, Any]:
        log("faults off; waiting for the upload queue to drain")
        if self.proc is None or self.proc.poll() is not None:
            self.start_service()
        deadline = time.monotonic() + drain_timeout
        counts: dict[str, int] = {}
        problems: list[str] = []
        while time.monotonic() < deadline:
            counts = self.transaction_counts()
            problems = self.missing_on_server()
            if "pending" in counts and not counts["pending"] and not problems:
                break
            time.sleep(5)
        drained_in = drain_timeout - (deadline - time.monotonic())
        self.stop_service()
        log(f"queue after {drained_in:.0f} s: {counts}; running a final sync and Verify")
        sync = subprocess.run(self.cli("--json", "sync", PROFILE), cwd=ROOT, env=self.env, capture_output=True, text=True, check=False)
        verify = subprocess.run(self.cli("--json", "verify", PROFILE), cwd=ROOT, env=self.env, capture_output=True,
                                text=True, check=False)
        counts = self.transaction_counts()
        problems = self.missing_on_server()
        try:
            verify_doc = json.loads(verify.stdout)
        except ValueError:
            verify_doc = {"unreadable": verify.stdout[-2000:] + verify.stderr[-2000:]}
        checks = {
            "verify: both organizations equal": verify.returncode == 0,
            "every client change on the server exactly once": not problems,
            "no transaction stuck Pending": "pending" in counts and not counts["pending"],
            "no transaction in Error": "error" in counts and not counts["error"],
            "final sync succeeded": sync.returncode == 0,
        }
        return {"checks": checks, "transactions": counts, "client_change_problems": problems[:20],
                "verify": verify_doc, "verify_exit": verify.returncode, "sync_exit": sync.returncode,
                "sync_output": sync.stdout[-1500:], "drain_seconds": round(drained_in)}

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()
        self.emu.stop()


def run(minutes: float, seed: int, records: int, work: Path, drain_timeout: float = 420) -> dict[str, Any]:
    soak = Soak(work, minutes, seed, records)
    started = time.monotonic()
    log(f"seed {seed}, {minutes} min, work folder {work}")
    soak.start_emulator()
    try:
        soak.prepare_profile()
        soak.soak()
        result = soak.finish(drain_timeout)
    finally:
        soak.close()
    result.update(seed=seed, minutes=minutes, changes=dict(soak.changes), injected=dict(soak.injected),
                  client_created=len(soak.client_records),
                  client_deleted=sum(e.deleted for e in soak.client_records.values()),
                  seconds=round(time.monotonic() - started), passed=all(result["checks"].values()))
    return result


def report(result: dict[str, Any]) -> str:
    lines = [f"Chaos soak: seed {result['seed']}, {result['minutes']} min ({result['seconds']} s in all)", "Changes:"]
    lines += [f"  {k:<45} {v:>6}" for k, v in sorted(result["changes"].items())]
    lines.append("Injected:")
    lines += [f"  {k:<45} {v:>6}" for k, v in sorted(result["injected"].items())]
    lines.append(f"Client-created accounts: {result['client_created']} ({result['client_deleted']} deleted again)")
    lines.append(f"Transactions at the end: {result['transactions']} (drained {result['drain_seconds']} s after the faults)")
    lines.append("Checks:")
    lines += [f"  {'PASS' if ok else 'FAIL'}  {name}" for name, ok in result["checks"].items()]
    if result["client_change_problems"]:
        lines += ["  " + p for p in result["client_change_problems"]]
    if result["verify_exit"] != 0:
        lines.append("Verify: " + json.dumps(result["verify"])[:3000])
    lines.append("PASSED" if result["passed"] else "FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--records", type=int, default=1500, help="records seeded into the server organization")
    p.add_argument("--work-dir", type=Path)
    p.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    args = p.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="crmsync-chaos-"))
    result = run(args.minutes, args.seed, args.records, work)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
