"""Connector throughput and memory against the emulated organizations (Dataverse + Resco Cloud).

Usage (one command; prints a table, then one JSON line):

    python bench/connectors_bench.py                      # 100,000 records, memory over 1,000,000
    python bench/connectors_bench.py --quick              # 5,000 records, memory over 20,000 (smoke run)
    python bench/connectors_bench.py --records 20000 --memory-records 200000

The emulator runs in a subprocess (``crmsync-emulator pair``) so client and servers do not share a
GIL. Dataverse runs with its service-protection limits ON (the documented defaults: 6,000 requests
and 1,200 s of execution time per 300 s window, 52 concurrent requests per user) and 50 ms latency
per request (``PATCH /_emulator/performance``); Resco Cloud with 50 ms latency (start-up fault
``--latency-ms``). For each product it measures, in records/s:

* the connector: ``upsert_many`` (Dataverse ``UpsertMultiple``; Resco ``UpdateMultiple?$create=true``)
  and ``read_pages`` (5,000 / 1,000-row pages);
* a naive client written here with plain httpx: one request per record, sequential (PATCH/POST to
  write, GET by id to read), measured over a sample (``--naive-sample``) since it is slow;
* the ceiling derived from the limits and the latency (formula printed with the table).

Peak memory: ``tracemalloc`` peak of this (client) process while streaming ``read_pages`` over
``--memory-records`` records seeded into a separate Dataverse emulator (no latency), every table
of the seeded sales organization in turn. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from crmsync_desktop.auth.msal_provider import ClientSecretLogin, MsalTokenProvider
from crmsync_desktop.sync.connectors.dataverse import DataverseConnector, DataverseSettings
from crmsync_desktop.sync.connectors.resco import RescoConnector, RescoSettings
from crmsync_desktop.sync.connectors.types import EntityMeta, FieldMeta, FieldType

LATENCY_S = 0.05
DV_FIELDS = ["name", "accountnumber", "telephone1", "websiteurl", "numberofemployees", "revenue"]
RS_ENTITY = "bench_item"
RS_FIELDS = ["name", "code", "num", "amount", "flag", "due"]
CALL_CHUNK = 10_000  # records handed to one upsert_many call (as an engine batch would)


# -- emulator subprocess -----------------------------------------------------------------------------
@contextmanager
def emulator(data_dir: Path, *extra: str, timeout_s: float = 900.0) -> Iterator[dict[str, Any]]:
    cmd = [sys.executable, "-m", "crmsync_desktop.emulator.cli", *extra, "--data-dir", str(data_dir), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("{") or not line:
                break
        if not line.startswith("{"):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


# -- ceilings --------------------------------------------------------------------------------------------
def dataverse_ceiling(records: int, per_request: int, limits: dict[str, Any], latency_s: float, concurrency: int) -> float:
    """records/s upper bound for ``records`` sent ``per_request`` at a time (see FORMULA)."""
    requests = math.ceil(records / per_request)
    window = float(limits["window_seconds"])
    t = latency_s
    time_concurrency = requests * t / min(int(limits["concurrent_requests"]), concurrency)
    over_count = max(0, requests - int(limits["requests_per_window"])) * window / int(limits["requests_per_window"])
    execution = float(limits["execution_seconds_per_window"])
    over_time = max(0.0, requests * t - execution) * window / execution
    return records / max(time_concurrency, over_count, over_time)


FORMULA = """\
Ceiling (Dataverse): a run of N records in R = ceil(N / B) requests (B = records per request: 200 per
UpsertMultiple, 5,000 per read page, 1 for the naive client), each taking t = 50 ms (the latency; the
per-record cost is 0), needs at least T = max(R·t / C, max(0, R − 6000)·300/6000, max(0, R·t − 1200)·300/1200)
seconds: C concurrent requests (52 allowed; the connector's own ceiling is the x-ms-dop-hint 8, the naive
client 1), 6,000 requests and 1,200 s of execution time per 300 s window. Ceiling = N / T.
Ceiling (Resco Cloud): no service-protection limits are documented or emulated, so only the client
bounds it: C / t · B with C = 16 (connector max concurrency) and B = 500 (UpdateMultiple) / 1,000 (page);
naive: 1 / t.
Measured numbers below the ceiling are bound by the local CPU (emulator SQLite + JSON/XML on this machine)."""


# -- Dataverse -------------------------------------------------------------------------------------------
async def bench_dataverse(info: dict[str, Any], n: int, naive_sample: int, tls: ssl.SSLContext) -> dict[str, Any]:
    url = info["dataverse_url"]
    with httpx.Client(verify=tls, timeout=60) as admin:
        admin.patch(f"{url}/_emulator/limits", json={"enabled": True}).raise_for_status()
        config = admin.patch(f"{url}/_emulator/performance", json={"latency_ms": LATENCY_S * 1000}).raise_for_status().json()
    limits = config["limits"]
    tokens = MsalTokenProvider(ClientSecretLogin(info["client_id"], info["client_secret"]), info["authority"], verify=tls)
    settings = DataverseSettings(url, ca_bundle=info["ca_file"])
    out: dict[str, Any] = {"limits": limits, "latency_ms": LATENCY_S * 1000}
    async with DataverseConnector(settings, tokens) as conn:
        await conn.get_entity("account")
        ids = [str(uuid.uuid4()) for _ in range(n)]
        records = [{"accountid": i, "name": f"Bench {k}", "accountnumber": f"B{k:08d}", "telephone1": "+1 555 0100",
                    "websiteurl": "https://example.com", "numberofemployees": k % 5000, "revenue": k * 1.5}
                   for k, i in enumerate(ids)]
        t0 = time.perf_counter()
        failed = 0
        for k in range(0, n, CALL_CHUNK):
            failed += sum(not r.ok for r in await conn.upsert_many("account", records[k : k + CALL_CHUNK]))
        out["write_s"] = time.perf_counter() - t0
        out["write_failed"] = failed
        t0 = time.perf_counter()
        read = 0
        async for page in conn.read_pages("account", DV_FIELDS):
            read += len(page.records)
        out["read_s"] = time.perf_counter() - t0
        out["read_records"] = read
        out["throttle_events"] = conn.throttle_state().throttle_events
        token = await tokens.get_token([info["dataverse_scope"]])
    tokens.close()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "OData-Version": "4.0",
               "Content-Type": "application/json"}
    api = f"{url}/api/data/v9.2"
    sample = [str(uuid.uuid4()) for _ in range(naive_sample)]
    with httpx.Client(verify=tls, timeout=60, headers=headers) as client:
        t0 = time.perf_counter()
        for k, rid in enumerate(sample):
            client.patch(f"{api}/accounts({rid})", json={"name": f"Naive {k}", "accountnumber": f"N{k:08d}"}).raise_for_status()
        out["naive_write_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for rid in sample:
            client.get(f"{api}/accounts({rid})", params={"$select": ",".join(DV_FIELDS)}).raise_for_status()
        out["naive_read_s"] = time.perf_counter() - t0
    out["naive_sample"] = naive_sample
    return out


# -- Resco Cloud ---------------------------------------------------------------------------------------------
async def bench_resco(info: dict[str, Any], n: int, naive_sample: int, tls: ssl.SSLContext) -> dict[str, Any]:
    settings = RescoSettings(info["resco_url"], info["resco_org"], info["resco_user"], ca_bundle=info["ca_file"])
    out: dict[str, Any] = {"latency_ms": LATENCY_S * 1000}
    async with RescoConnector(settings, info["resco_password"]) as conn:
        await conn.create_entity(EntityMeta(RS_ENTITY, label="Bench item", primary_name="name"))
        for f in (FieldMeta("code", FieldType.STRING, max_length=20), FieldMeta("num", FieldType.INTEGER),
                  FieldMeta("amount", FieldType.MONEY), FieldMeta("flag", FieldType.BOOLEAN), FieldMeta("due", FieldType.DATETIME)):
            await conn.create_field(RS_ENTITY, f)
        await conn.get_entity(RS_ENTITY)
        records = [{"id": str(uuid.uuid4()), "name": f"Bench {k}", "code": f"C{k:08d}", "num": k, "amount": k * 1.5,
                    "flag": k % 2 == 0, "due": "2026-01-02T03:04:05Z"} for k in range(n)]
        t0 = time.perf_counter()
        failed = 0
        for k in range(0, n, CALL_CHUNK):
            failed += sum(not r.ok for r in await conn.upsert_many(RS_ENTITY, records[k : k + CALL_CHUNK]))
        out["write_s"] = time.perf_counter() - t0
        out["write_failed"] = failed
        t0 = time.perf_counter()
        read = 0
        async for page in conn.read_pages(RS_ENTITY, RS_FIELDS):
            read += len(page.records)
        out["read_s"] = time.perf_counter() - t0
        out["read_records"] = read
    odata = f"{info['resco_url']}/odata/v4/{info['resco_org']}"
    sample = [str(uuid.uuid4()) for _ in range(naive_sample)]
    auth = (info["resco_user"], info["resco_password"])
    with httpx.Client(verify=tls, timeout=60, auth=auth, headers={"Accept": "application/json"}) as client:
        t0 = time.perf_counter()
        for k, rid in enumerate(sample):
            client.post(f"{odata}/{RS_ENTITY}", json={"id": rid, "name": f"Naive {k}", "num": k}).raise_for_status()
        out["naive_write_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for rid in sample:
            client.get(f"{odata}/{RS_ENTITY}('{rid}')", params={"$select": ",".join(RS_FIELDS)}).raise_for_status()
        out["naive_read_s"] = time.perf_counter() - t0
    out["naive_sample"] = naive_sample
    return out


# -- memory ---------------------------------------------------------------------------------------------------
async def bench_memory(info: dict[str, Any], tls: ssl.SSLContext) -> dict[str, Any]:
    tokens = MsalTokenProvider(ClientSecretLogin(info["client_id"], info["client_secret"]), info["authority"], verify=tls)
    tables = {"account": ["name", "accountnumber", "revenue", "ownerid"], "contact": ["fullname", "emailaddress1", "parentcustomerid"],
              "lead": ["fullname", "subject", "companyname"], "opportunity": ["name", "estimatedvalue", "customerid"],
              "task": ["subject", "regardingobjectid"], "phonecall": ["subject", "phonenumber"], "competitor": ["name"]}
    async with DataverseConnector(DataverseSettings(info["dataverse_url"], ca_bundle=info["ca_file"]), tokens) as conn:
        for entity in tables:
            await conn.get_entity(entity)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        t0 = time.perf_counter()
        total = 0
        for entity, fields in tables.items():
            async for page in conn.read_pages(entity, fields):
                total += len(page.records)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tokens.close()
    return {"records": total, "seconds": elapsed, "tracemalloc_peak_mib": (peak - base) / 2**20,
            "ru_maxrss_mib_before": rss_before / 1024, "ru_maxrss_mib_after": rss_after / 1024}


# -- report ---------------------------------------------------------------------------------------------------
def rows_for(product: str, r: dict[str, Any], n: int, ceilings: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    out = []
    for op in ("write", "read"):
        measured = rate(n if op == "write" else r["read_records"], r[f"{op}_s"])
        naive = rate(r["naive_sample"], r[f"naive_{op}_s"])
        ceiling, naive_ceiling = ceilings[op]
        out.append({"product": product, "operation": op, "records": n if op == "write" else r["read_records"],
                    "seconds": round(r[f"{op}_s"], 2), "connector_rps": round(measured, 1), "naive_rps": round(naive, 1),
                    "ceiling_rps": round(ceiling, 1), "naive_ceiling_rps": round(naive_ceiling, 1),
                    "connector_vs_naive": round(measured / naive, 1), "connector_vs_ceiling": round(measured / ceiling, 3)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--memory-records", type=int, default=1_000_000)
    p.add_argument("--naive-sample", type=int, default=300, help="records the naive client writes and reads")
    p.add_argument("--quick", action="store_true", help="smoke run: 5,000 records, memory over 20,000")
    p.add_argument("--skip-memory", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.records, args.memory_records, args.naive_sample = 5_000, 20_000, 100
    n = args.records
    report: dict[str, Any] = {"records": n, "command": " ".join([Path(sys.executable).name, *sys.argv])}
    with tempfile.TemporaryDirectory() as d:
        with emulator(Path(d) / "pair", "pair", "--latency-ms", str(int(LATENCY_S * 1000))) as info:
            tls = ssl.create_default_context(cafile=info["ca_file"])
            dv = asyncio.run(bench_dataverse(info, n, args.naive_sample, tls))
            rs = asyncio.run(bench_resco(info, n, args.naive_sample, tls))
        limits = dv["limits"]
        dv_ceilings = {
            "write": (dataverse_ceiling(n, 200, limits, LATENCY_S, int(limits["dop_hint"])), dataverse_ceiling(n, 1, limits, LATENCY_S, 1)),
            "read": (dataverse_ceiling(n, 5000, limits, LATENCY_S, int(limits["dop_hint"])), dataverse_ceiling(n, 1, limits, LATENCY_S, 1)),
        }
        rs_ceilings = {"write": (16 / LATENCY_S * 500, 1 / LATENCY_S), "read": (16 / LATENCY_S * 1000, 1 / LATENCY_S)}
        rows = rows_for("dataverse", dv, n, dv_ceilings) + rows_for("resco", rs, n, rs_ceilings)
        report.update({"results": rows, "dataverse": {k: v for k, v in dv.items() if k != "limits"}, "dataverse_limits": limits,
                       "resco": rs})
        if not args.skip_memory:
            print(f"seeding {args.memory_records:,} Dataverse records for the memory run …", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            with emulator(Path(d) / "memory", "dataverse", "--seed-records", str(args.memory_records), "--seed", "1") as info:
                seeded = time.perf_counter() - t0
                tls = ssl.create_default_context(cafile=info["ca_file"])
                report["memory"] = {**asyncio.run(bench_memory(info, tls)), "seed_seconds": round(seeded, 1)}
    header = ["product", "operation", "records", "seconds", "connector_rps", "naive_rps", "ceiling_rps",
              "naive_ceiling_rps", "connector_vs_naive", "connector_vs_ceiling"]
    widths = [max(len(h), *(len(f"{r[h]:,}" if isinstance(r[h], (int, float)) else str(r[h])) for r in rows)) for h in header]
    print(FORMULA)
    print()
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join((f"{r[h]:,}" if isinstance(r[h], (int, float)) else str(r[h])).rjust(w) for h, w in zip(header, widths, strict=True)))
    print(f"naive client measured over {args.naive_sample} records (sequential, one request per record); "
          f"Dataverse throttle events (connector): {dv['throttle_events']}; write failures: "
          f"dataverse {dv['write_failed']}, resco {rs['write_failed']}")
    if "memory" in report:
        m = report["memory"]
        print(f"memory: streamed {m['records']:,} records with read_pages in {m['seconds']:.1f} s "
              f"({rate(m['records'], m['seconds']):,.0f} records/s); tracemalloc peak {m['tracemalloc_peak_mib']:.1f} MiB; "
              f"process max RSS {m['ru_maxrss_mib_after']:.0f} MiB (before the run {m['ru_maxrss_mib_before']:.0f} MiB); "
              f"seeding took {m['seed_seconds']} s")
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
