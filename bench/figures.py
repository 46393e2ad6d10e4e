"""The figures of ``python -m bench``: each function measures one group and returns result rows.

A row is ``{"figure", "measured", "unit", "target", "ratio", "passed", "details"}``; ``ratio`` is
measured / target for "at least" targets and target / measured for "at most" ones (so > 1 is
always better). The engine runs in worker processes (``bench.worker``), the emulated organizations
in theirs (``bench.harness.emulator``).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    COST_PER_RECORD_MS,
    LATENCY_MS,
    ROOT,
    dataverse_http,
    emulator,
    log,
    run_worker,
    seed_accounts,
)

PAGE = 5_000  # Dataverse change-tracking page (odata.maxpagesize)


def row(figure: str, measured: float | None, unit: str, target: float | None, *, at_least: bool,
        details: dict[str, Any] | None = None, target_text: str | None = None) -> dict[str, Any]:
    ratio = None
    passed = None
    if measured is not None and target is not None:
        ratio = (measured / target) if at_least else (target / measured if measured else math.inf)
        passed = measured >= target if at_least else measured < target
    return {"figure": figure, "measured": measured, "unit": unit,
            "target": target_text or (f"{'>=' if at_least else '<'} {target:g} {unit}" if target is not None else "-"),
            "ratio": ratio, "passed": passed, "details": details or {}}


def read_ceiling(records: int, limits: dict[str, Any], latency_ms: float, cost_ms: float) -> dict[str, Any]:
    """records/s the emulated Dataverse can hand one sync under its service-protection limits.

    A change-tracking read is a chain of pages (each nextLink comes with the previous page), so R =
    ceil(N / 5,000) requests run one after another, each taking t = latency + 5,000 x cost. The
    limits add max(0, R - requests_per_window) x window / requests_per_window (request count) and
    max(0, R·t - execution_seconds) x window / execution_seconds (execution time).
    """
    requests = max(1, math.ceil(records / PAGE))
    t = (latency_ms + min(records, PAGE) * cost_ms) / 1000
    window = float(limits["window_seconds"])
    over_count = max(0, requests - int(limits["requests_per_window"])) * window / int(limits["requests_per_window"])
    execution = float(limits["execution_seconds_per_window"])
    over_time = max(0.0, requests * t - execution) * window / execution
    seconds = max(requests * t, over_count, over_time)
    return {"records_per_s": records / seconds, "requests": requests, "seconds": seconds, "page_seconds": t}


# -- full sync of 100 k (and the naive comparison) ------------------------------------------------------------

def naive_sync(info: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """One request per record each way, sequential: GET the account from Dataverse, PATCH it into Resco Cloud."""
    import httpx

    fields = "name,accountnumber,telephone1,emailaddress1,address1_city,revenue,numberofemployees"
    tls = ssl.create_default_context(cafile=info["ca_file"])
    odata = f"{info['resco_url']}/odata/v4/{info['resco_org']}"
    with dataverse_http(info) as dv, httpx.Client(verify=tls, timeout=60, auth=(info["resco_user"], info["resco_password"]),
                                                  headers={"Accept": "application/json"}) as rs:
        started = time.perf_counter()
        for rid in ids:
            r = dv.get(f"accounts({rid})", params={"$select": fields})
            r.raise_for_status()
            body = {k: v for k, v in r.json().items() if not k.startswith("@") and k in fields.split(",")}
            rs.patch(f"{odata}/account('{rid}')", json=body).raise_for_status()
        seconds = time.perf_counter() - started
    return {"records": len(ids), "seconds": seconds, "records_per_s": len(ids) / seconds}


def server_ids(info: dict[str, Any], count: int, seed: int) -> list[str]:
    with dataverse_http(info) as dv:
        r = dv.get("accounts", params={"$select": "accountid", "$top": "5000"})
        r.raise_for_status()
        ids = [v["accountid"] for v in r.json()["value"]]
    return random.Random(seed).sample(ids, min(count, len(ids)))


def change_accounts(info: dict[str, Any], ids: list[str], tag: str) -> float:
    with dataverse_http(info) as dv:
        started = time.perf_counter()
        for k, rid in enumerate(ids):
            dv.patch(f"accounts({rid})", json={"telephone1": f"+1 555 {tag}{k:04d}"}).raise_for_status()
        return time.perf_counter() - started


def delete_accounts(info: dict[str, Any], ids: list[str]) -> None:
    with dataverse_http(info) as dv:
        for rid in ids:
            dv.delete(f"accounts({rid})").raise_for_status()


def empty_client(work: Path) -> None:
    """Forget the client organization and the engine's store of a reused work folder (the server's seed stays).

    A full sync into a client that already holds every record only compares hashes and writes
    nothing; the figures are about a first full sync.
    """
    shutil.rmtree(work / "engine", ignore_errors=True)
    shutil.rmtree(work / "emu" / "client", ignore_errors=True)


def measure_sync(work: Path, records: int, naive_sample: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    log(f"sync: seeding {records:,} accounts")
    seeded = seed_accounts(work / "emu", records)
    empty_client(work)  # a first full sync every time, also when --work-dir is reused
    with emulator(work / "emu") as info:
        limits = info["config"]["limits"]
        run_worker("setup", work / "engine", info, entities=["account"])
        log("sync: full sync through the engine")
        full = run_worker("sync", work / "engine", info, full=True)
        if full.get("status") != "succeeded":
            raise RuntimeError(f"full sync failed: {full}")
        if " created" not in str(full.get("summary", "")):
            raise RuntimeError(f"the full sync wrote nothing to the client (not a first sync): {full.get('summary')}")
        log(f"sync: {records:,} in {full['seconds']:.1f} s; naive sample of {naive_sample}")
        ids = server_ids(info, naive_sample + 100, seed=3)
        naive = naive_sync(info, ids[:naive_sample])
        log("sync: incremental, 100 changes")
        change_accounts(info, ids[naive_sample:naive_sample + 100], "7")
        incremental = run_worker("sync", work / "engine", info, full=False)
        log("sync: capacity of each emulated organization alone (server read, client write)")
        capacity = run_worker("capacity", work / "engine", info, records=records)
    rate = records / full["seconds"]
    effective = min(capacity["server_read_per_s"], capacity["client_write_per_s"])
    ceiling = read_ceiling(records, limits, LATENCY_MS, COST_PER_RECORD_MS)
    details = {"seconds": round(full["seconds"], 1), "records": records, "requests": full["requests"],
               "peak_rss_mib": full["peak_rss_mib"], "summary": full["summary"],
               "ceiling": {k: round(v, 2) for k, v in ceiling.items()}, "limits": limits,
               "latency_ms": LATENCY_MS, "cost_per_record_ms": COST_PER_RECORD_MS, "seed": seeded}
    rows = [
        row(f"Full sync {records:,} records (server->client, engine)", round(rate, 1), "records/s", None, at_least=True,
            details=details, target_text="-"),
        row("  vs limit-derived ceiling", round(rate / ceiling["records_per_s"], 3), "x ceiling", 0.9, at_least=True,
            details={"ceiling_records_per_s": round(ceiling["records_per_s"], 1)},
            target_text=">= 0.90 of " + f"{ceiling['records_per_s']:,.0f} records/s"),
        row("  vs what the emulated organizations allow on this machine", round(rate / effective, 3),
            "x effective ceiling", 0.9, at_least=True,
            details={"effective_ceiling_records_per_s": round(effective, 1),
                     "server_read_alone_records_per_s": round(capacity["server_read_per_s"], 1),
                     "client_write_alone_records_per_s": round(capacity["client_write_per_s"], 1),
                     "note": "min(server paged read alone, client bulk write alone), each measured with the "
                             "connectors; the engine overlaps the two"},
            target_text=f">= 0.90 of {effective:,.0f} records/s"),
        row("  vs naive one-request-per-record sync", round(rate / naive["records_per_s"], 1), "x naive", 10,
            at_least=True, details={k: round(v, 2) for k, v in naive.items()}, target_text=">= 10x"),
    ]
    return rows, {"incremental_100k": incremental, "records": records}


# -- 1 M: memory of a full sync, incremental, deletion sweep -----------------------------------------------------

def measure_big(work: Path, records: int, small: dict[str, Any] | None, parts: set[str]) -> list[dict[str, Any]]:
    log(f"big: seeding {records:,} accounts (reused when already there)")
    seeded = seed_accounts(work / "emu", records)
    rows: list[dict[str, Any]] = []
    stage_file = work / "stage.json"
    stage = json.loads(stage_file.read_text()) if stage_file.exists() else {}
    if "memory" in parts or not stage.get("synced"):  # the measured sync starts from an empty client
        empty_client(work)
        stage = {}
        stage_file.unlink(missing_ok=True)
    with emulator(work / "emu") as info:
        if not stage.get("setup"):
            run_worker("setup", work / "engine", info, entities=["account"])
            stage["setup"] = True
            stage_file.write_text(json.dumps(stage))
        if not stage.get("synced") or "memory" in parts:
            log(f"big: full sync of {records:,} records (peak memory)")
            full = run_worker("sync", work / "engine", info, full=True)
            if full.get("status") != "succeeded":
                raise RuntimeError(f"full sync failed: {full}")
            stage["synced"] = True
            stage_file.write_text(json.dumps(stage))
            if "memory" in parts:
                rows.append(row(f"Full sync {records:,} records: peak memory (RSS)", full["peak_rss_mib"], "MiB", 400,
                                at_least=False, details={"seconds": round(full["seconds"], 1),
                                                          "records_per_s": round(records / full["seconds"], 1),
                                                          "summary": full["summary"], "requests": full["requests"],
                                                          "seed": seeded}))
        if "incremental" in parts:
            log("big: incremental, 100 changes")
            ids = server_ids(info, 200, seed=5)
            change_accounts(info, ids[:100], "8")
            inc = run_worker("sync", work / "engine", info, full=False)
            req = inc["requests"]
            details = {"seconds": round(inc["seconds"], 2), "requests": req, "summary": inc["summary"],
                       "table_records": records}
            if small:
                details["same_100_changes_in_100k_table"] = {"seconds": round(small["seconds"], 2),
                                                             "requests": small["requests"],
                                                             "summary": small["summary"]}
            total = req["dataverse"] + req["resco"]
            rows.append(row(f"Incremental: 100 changes in a {records:,}-record table", round(inc["seconds"], 2), "s",
                            None, at_least=False, details=details, target_text="O(changes)"))
            small_total = (small["requests"]["dataverse"] + small["requests"]["resco"]) if small else None
            rows.append(row("  requests (server + client)", total, "requests", None, at_least=False,
                            details={"in_100k_table": small_total},
                            target_text="O(changes): same as in a 100 k table" + (f" ({small_total})" if small_total else "")))
            if small_total is not None:
                rows[-1]["passed"] = total <= small_total + 2
                rows[-1]["ratio"] = round(small_total / total, 2) if total else None
        if "sweep" in parts:
            log("big: deletion sweep")
            run_worker("configure", work / "engine", info, entities=["account"], deletion="sweep")
            gone = server_ids(info, 100, seed=11)
            delete_accounts(info, gone)
            sweep = run_worker("sync", work / "engine", info, full=False)
            details = {"seconds": round(sweep["seconds"], 1), "summary": sweep["summary"],
                       "requests": sweep["requests"], "deleted_on_server": len(gone)}
            rows.append(row(f"Deletion sweep over {records:,} ids: time", round(sweep["seconds"], 1), "s", None,
                            at_least=False, details=details, target_text="-"))
            rows.append(row("  peak memory (RSS)", sweep["peak_rss_mib"], "MiB", 300, at_least=False, details={}))
            run_worker("configure", work / "engine", info, entities=["account"], deletion="off")
    return rows


# -- client -> server latency --------------------------------------------------------------------------------------

def measure_latency(work: Path, changes: int, quick: bool) -> list[dict[str, Any]]:
    external = ROOT / "bench" / "upload_latency.py"
    if external.exists():  # the upload-loop latency benchmark (in-process emulator, real upload loop)
        count = 5 if quick else 100
        log(f"latency: bench/upload_latency.py --changes {count}")
        proc = subprocess.run([sys.executable, str(external), "--changes", str(count)], cwd=ROOT,
                              capture_output=True, text=True, check=False)
        m = re.search(r"p50 ([\d.]+) s\s+p95 ([\d.]+) s\s+max ([\d.]+) s", proc.stdout)
        if proc.returncode == 0 and m:
            p50, p95, worst = (float(x) for x in m.groups())
            return [row(f"Client->server latency p95 ({count} client changes, bench/upload_latency.py)", p95, "s", 3,
                        at_least=False, details={"p50_s": p50, "max_s": worst, "changes": count, "probe_interval_s": 2.0,
                                                 "source": "python bench/upload_latency.py --changes " + str(count)})]
        log(f"latency: bench/upload_latency.py failed ({proc.returncode}): {proc.stderr[-500:]}; measuring here")
    log(f"latency: {changes} client changes through the upload loop")
    seed_accounts(work / "emu", 200)
    with emulator(work / "emu") as info:
        if not (work / "engine" / "store.sqlite3").exists():
            run_worker("setup", work / "engine", info, entities=["account"])
            run_worker("sync", work / "engine", info, full=True)
        out = run_worker("latency", work / "engine", info, changes=changes)
    lat = sorted(out["latencies_s"])
    p50 = statistics.median(lat)
    p95 = lat[min(len(lat) - 1, math.ceil(0.95 * len(lat)) - 1)]
    return [row(f"Client->server latency p95 ({len(lat)} client changes)", round(p95, 2), "s", 3, at_least=False,
                details={"p50_s": round(p50, 2), "max_s": round(lat[-1], 2), "changes": len(lat),
                         "probe_interval_s": out.get("probe_interval_s"), "lost": out.get("lost")})]


# -- console -------------------------------------------------------------------------------------------------------

def measure_transactions_view(work: Path, rows_count: int) -> list[dict[str, Any]]:
    log(f"console: Offline Transactions view over {rows_count:,} rows")
    cmd = [sys.executable, str(ROOT / "bench" / "transactions_view_open.py"), "--rows", str(rows_count),
           "--keep", str(work / f"tx{rows_count}")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    if proc.returncode != 0:
        raise RuntimeError(f"transactions_view_open.py failed:\n{proc.stderr[-3000:]}")
    tabs = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+) tab: first rows shown\s+([\d.]+) ms",
                                                                 proc.stdout, re.MULTILINE)}
    worst = max(tabs.values()) / 1000
    return [row(f"Console: Offline Transactions open, {rows_count:,} rows (slowest tab)", round(worst, 3), "s", 1,
                at_least=False, details={"tabs_ms": tabs})]


def measure_stall(work: Path, records: int, runs: int = 3) -> list[dict[str, Any]]:
    """The longest event-loop gap of each of ``runs`` full syncs (fresh organizations and store each time).

    The figure is the median of the runs' longest gaps: on a shared 2-core machine one run's worst
    gap swings by a factor of two with the load of other processes (the emulated organizations
    run on the same cores); every run's worst gap is kept in the details and the doc.
    """
    log(f"console: event-loop stall during a sync of {records:,} records (qasync, offscreen), {runs} runs")
    outs: list[dict[str, Any]] = []
    for n in range(runs):
        folder = work / f"run{n}"
        seed_accounts(folder / "emu", records)
        with emulator(folder / "emu") as info:
            if not (folder / "engine" / "store.sqlite3").exists():
                run_worker("setup", folder / "engine", info, entities=["account"])
            outs.append(run_worker("stall", folder / "engine", info))
        shutil.rmtree(folder, ignore_errors=True)  # the next run starts from an empty client organization
    worst = sorted(o["max_gap_ms"] for o in outs)
    median = worst[len(worst) // 2]
    details = {"runs_max_gap_ms": [o["max_gap_ms"] for o in outs], "worst_run_max_gap_ms": worst[-1],
               "runs": [{k: v for k, v in o.items() if k != "max_gap_ms"} for o in outs]}
    return [row(f"Console: longest event-loop stall during a {records:,}-record sync (median of {runs} syncs; "
                f"each: {', '.join(f'{w:g}' for w in (o['max_gap_ms'] for o in outs))} ms)", median, "ms", 50,
                at_least=False, details=details)]
