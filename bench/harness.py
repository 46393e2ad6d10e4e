"""Shared plumbing of ``python -m bench``: emulator subprocesses, seeding, engine workers, machine info.

The emulated organizations run in their own process (``crmsync-emulator pair``), so the engine
under test and the servers do not share a GIL and the engine process's memory is its own. Every
measured engine run happens in a fresh worker process (``python -m bench.worker``), whose peak RSS
(``resource.getrusage(...).ru_maxrss``) is the memory figure.
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "Bench"

# Dataverse: service-protection limits ON (the documented defaults) and a remote-like cost.
LATENCY_MS = 50  # per request, both organizations
COST_PER_RECORD_MS = 0.2  # Dataverse: per row returned or written (a 5,000-row page takes ~1 s, as online)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count(), "memory_gib": mem_gib}


# -- seeding --------------------------------------------------------------------------------------------------

def seed_accounts(data_dir: Path, accounts: int, *, seed: int = 1) -> dict[str, Any]:
    """A Dataverse org file with a small sales organization (users, teams, business units) + ``accounts`` accounts.

    Written before the emulator starts (the runner opens an existing org file as is). Idempotent:
    an existing file with at least that many accounts is kept.
    """
    from crmsync_desktop.emulator.dataverse import DataverseOrg
    from crmsync_desktop.emulator.dataverse.metadata import q
    from crmsync_desktop.emulator.seed import seed_sales_org

    path = data_dir / "server" / "dataverse" / "org.sqlite"
    marker = data_dir / "seeded.json"
    if path.exists() and marker.exists():
        return json.loads(marker.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    org = DataverseOrg.create(path, url="https://bench.invalid")
    try:
        seed_sales_org(org, records=2_000, seed=seed)  # users, teams, business units (+ a few of everything)
        org.conn.execute(f"DELETE FROM {q('account')}")  # the seeded accounts reference contacts; start clean
        rng = random.Random(seed)
        users = [r[0] for r in org.conn.execute("SELECT systemuserid FROM systemuser WHERE isdisabled = 0")]
        bus = dict(org.conn.execute("SELECT systemuserid, businessunitid FROM systemuser"))
        cities = ("Seattle", "Redmond", "Bratislava", "Vienna", "Berlin", "London", "Paris", "Prague")
        cols = ["accountid", "name", "accountnumber", "telephone1", "emailaddress1", "address1_city", "revenue",
                "numberofemployees", "industrycode", "statecode", "statuscode", "versionnumber", "createdon",
                "modifiedon", "createdby", "createdby__type", "modifiedby", "modifiedby__type", "ownerid",
                "ownerid__type", "owningbusinessunit", "owningbusinessunit__type"]
        sql = f"INSERT INTO {q('account')} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join('?' for _ in cols)})"

        def rows() -> Iterator[tuple[Any, ...]]:
            for i in range(accounts):
                owner = users[rng.randrange(len(users))]
                when = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z"
                yield (str(uuid.UUID(int=rng.getrandbits(128), version=4)), f"Account {i:07d}", f"ACC-{i:07d}",
                       f"+1 555 {rng.randrange(10**6, 10**7)}", f"info{i}@account.test", cities[i % len(cities)],
                       float(rng.randrange(10**4, 10**9)), rng.randrange(1, 50_000), rng.randint(1, 33), 0, 1,
                       org.next_version(), when, when, owner, "systemuser", owner, "systemuser", owner, "systemuser",
                       bus[owner], "businessunit")

        with org.lock, org.transaction():
            org.conn.executemany(sql, rows())
    finally:
        org.close()
    info = {"accounts": accounts, "seed": seed, "seed_seconds": round(time.perf_counter() - started, 1)}
    marker.write_text(json.dumps(info))
    return info


# -- the emulator process -------------------------------------------------------------------------------------

@contextmanager
def emulator_process(args: list[str], *, env: dict[str, str] | None = None,
                     cwd: Path | None = None) -> Iterator[dict[str, Any]]:
    """``crmsync-emulator <args> --json`` in its own process; yields its JSON summary plus ``"pid"``.

    The pid is for CPU figures from ``/proc`` (:func:`cpu_seconds`); ``env``/``cwd`` let a benchmark
    run the emulator of another source tree (before/after comparisons).
    """
    cmd = [sys.executable, "-m", "crmsync_desktop.emulator.cli", *args, "--json"]
    if os.environ.get("BENCH_NICE_EMULATORS"):  # diagnostics: the engine gets the CPU first
        cmd = ["nice", "-n", "19", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=cwd or ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    try:
        assert proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("{") or not line:
                break
        if not line.startswith("{"):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield {**json.loads(line), "pid": proc.pid}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (fields 14 and 15 of /proc/<pid>/stat, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def emulator(data_dir: Path, *, latency_ms: int = LATENCY_MS, cost_ms: float = COST_PER_RECORD_MS,
             limits: bool = True) -> Iterator[dict[str, Any]]:
    """Dataverse (+ its sign-in service) and Resco Cloud, each in its own process; yields their merged summary.

    Two processes, not one ``pair``: the emulated servers are CPU-bound Python, and in one process
    the Dataverse pages and the Resco writes would take turns on one GIL instead of overlapping as
    two real services do. ``ca_file`` is a bundle of both emulator CAs.
    """
    with emulator_process(["dataverse", "--data-dir", str(data_dir / "server")]) as dv, \
         emulator_process(["resco", "--data-dir", str(data_dir / "client"),
                           *(("--latency-ms", str(latency_ms)) if latency_ms else ())]) as rs:
        bundle = data_dir / "ca-bundle.pem"
        bundle.write_text(Path(dv["ca_file"]).read_text() + Path(rs["ca_file"]).read_text())
        info = {**rs, **dv, "ca_file": str(bundle), "pids": {"dataverse": dv["pid"], "resco": rs["pid"]}}
        info.pop("pid", None)
        admin(info, "PATCH", "limits", {"enabled": limits})
        info["config"] = admin(info, "PATCH", "performance", {"latency_ms": latency_ms, "cost_per_record_ms": cost_ms})
        yield info


def admin(info: dict[str, Any], method: str, what: str, body: Any = None) -> dict[str, Any]:
    """The Dataverse emulator's control plane (``/_emulator/...``)."""
    import httpx

    with httpx.Client(verify=_tls(info), timeout=60) as client:
        r = client.request(method, f"{info['dataverse_url']}/_emulator/{what}", json=body)
        r.raise_for_status()
        return r.json()


def _tls(info: dict[str, Any]) -> Any:
    import ssl

    return ssl.create_default_context(cafile=info["ca_file"])


def dataverse_token(info: dict[str, Any]) -> str:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from crmsync_desktop.auth.msal_provider import ClientSecretLogin, MsalTokenProvider

    provider = MsalTokenProvider(ClientSecretLogin(info["client_id"], info["client_secret"]), info["authority"],
                                 verify=_tls(info))
    try:
        with ThreadPoolExecutor(1) as pool:  # also callable from inside a running event loop
            return pool.submit(asyncio.run, provider.get_token([info["dataverse_scope"]])).result()
    finally:
        provider.close()


@contextmanager
def dataverse_http(info: dict[str, Any]) -> Iterator[Any]:
    """A plain httpx client on the Dataverse Web API (changes made "by other users" during a benchmark)."""
    import httpx

    headers = {"Authorization": f"Bearer {dataverse_token(info)}", "Accept": "application/json",
               "OData-Version": "4.0", "Content-Type": "application/json"}
    with httpx.Client(base_url=f"{info['dataverse_url']}/api/data/v9.2/", verify=_tls(info), timeout=120,
                      headers=headers) as client:
        yield client


# -- engine workers ------------------------------------------------------------------------------------------

def run_worker(task: str, work: Path, info: dict[str, Any], *, profile_out: Path | None = None,
               **options: Any) -> dict[str, Any]:
    """Run one engine task in a fresh process; returns its JSON result (``ru_maxrss`` of that process included)."""
    spec = {"task": task, "work": str(work), "info": {k: v for k, v in info.items() if k != "config"},
            "options": options}
    spec_path = work / f"worker-{task}.json"
    work.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable]
    if profile_out is not None:
        cmd += ["-m", "cProfile", "-o", str(profile_out)]
        cmd += [str(ROOT / "bench" / "worker.py"), str(spec_path)]
    else:
        cmd += ["-m", "bench.worker", str(spec_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"worker {task} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not last:
        raise RuntimeError(f"worker {task} printed no result:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(last[-1])


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
