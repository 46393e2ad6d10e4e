"""Paged read cost of the Dataverse emulator: the full change-tracking feed through the product connector.

Usage (prints a table, then one JSON line):

    python bench/dataverse_read.py                         # 50,000 accounts, limits + 50 ms / 0.2 ms cost on
    python bench/dataverse_read.py --records 10000         # a smoke run
    python bench/dataverse_read.py --modes changes,select,fetchxml
    python bench/dataverse_read.py --no-cost               # latency and cost off: the emulator's CPU alone
    python bench/dataverse_read.py --emulator-src /tmp/old # the emulator from another source tree (A/B):
        mkdir /tmp/old && git archive <commit> crmsync_desktop | tar -x -C /tmp/old

The accounts are seeded as bench/harness.py does (``seed_accounts``; the org file is kept in
``--data-dir`` and reused), the emulator runs in its own process (``crmsync-emulator dataverse``)
with service-protection limits on and the remote-like cost of the full-sync benchmark, and
``DataverseConnector`` reads:

* ``changes``: ``read_changes("account", fields, None)`` — ``Prefer: odata.track-changes,
  odata.maxpagesize=5000`` + ``$select``, the nextLink pages, to the deltaLink (what a first sync reads);
* ``select``: ``read_pages`` without a filter — plain ``$select`` pages with ``$skiptoken`` nextLinks;
* ``fetchxml``: ``read_pages`` with a sync filter — FetchXML pages with paging cookies.

Figures per mode: records/s and seconds per page (wall clock), the emulator process's CPU per
record and per page (user + system from ``/proc/<pid>/stat``; the sign-in service in that process is
idle during the read) and this process's CPU (the connector: TLS, JSON parse, record decoding). A
page costs at least latency + 0.2 ms x 5,000 = 1.05 s; what the emulator's own CPU adds on top of it
is what this benchmark exists to keep small (see docs/emulator.md, "Latency and cost").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.harness` when run as a script
from bench.harness import (
    COST_PER_RECORD_MS,
    LATENCY_MS,
    ROOT,
    cpu_seconds,
    emulator_process,
    log,
    machine_info,
    seed_accounts,
)

ENTITY = "account"
MODES = ("changes", "select", "fetchxml")
# Every account matches (statecode is 0 for all seeded rows): the FetchXML path with a real condition.
FETCH_FILTER = ('<fetch><entity name="account"><filter><condition attribute="statecode" operator="eq" value="0" />'
                "</filter></entity></fetch>")


@contextmanager
def dataverse_emulator(data_dir: Path, src: Path | None) -> Iterator[tuple[dict[str, Any], int]]:
    """``crmsync-emulator dataverse`` in a subprocess; yields its JSON summary and its pid (for /proc CPU times)."""
    env = None
    if src is not None:  # the emulator package of another tree wins over the editable install
        env = {"PYTHONPATH": os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with emulator_process(["dataverse", "--data-dir", str(data_dir)], env=env, cwd=src) as info:
        yield info, info["pid"]


def admin(info: dict[str, Any], method: str, what: str, body: Any) -> dict[str, Any]:
    import httpx

    with httpx.Client(verify=ssl.create_default_context(cafile=info["ca_file"]), timeout=60) as client:
        r = client.request(method, f"{info['dataverse_url']}/_emulator/{what}", json=body)
        r.raise_for_status()
        return r.json()


async def read(conn: Any, mode: str, fields: list[str], pid: int) -> dict[str, Any]:
    """One full read in ``mode``; wall time, pages, the emulator's and this process's CPU."""
    records = pages = 0
    gaps: list[float] = []
    cpu0, own0 = cpu_seconds(pid), time.process_time()
    t0 = last = time.perf_counter()
    if mode == "changes":
        token = None
        async for page in conn.read_changes(ENTITY, fields, None):
            records += len(page.upserts)
            pages += 1
            token = page.token
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        if token is None:
            raise RuntimeError("the change feed ended without a delta link")
    else:
        source = conn.read_pages(ENTITY, fields, fetch_filter=FETCH_FILTER if mode == "fetchxml" else "")
        async for p in source:
            records += len(p.records)
            pages += 1
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
    wall = time.perf_counter() - t0
    cpu, own = cpu_seconds(pid) - cpu0, time.process_time() - own0
    return {"mode": mode, "records": records, "pages": pages, "seconds": round(wall, 2),
            "records_per_s": round(records / wall), "s_per_page": round(wall / pages, 3),
            "slowest_page_s": round(max(gaps), 3),
            "emulator_cpu_s": round(cpu, 2), "emulator_cpu_us_per_record": round(cpu / records * 1e6, 1),
            "emulator_cpu_ms_per_page": round(cpu / pages * 1000, 1),
            "client_cpu_s": round(own, 2), "client_cpu_us_per_record": round(own / records * 1e6, 1)}


async def run(info: dict[str, Any], pid: int, modes: list[str], repeat: int) -> list[dict[str, Any]]:
    from crmsync_desktop.auth.msal_provider import ClientSecretLogin, MsalTokenProvider
    from crmsync_desktop.sync.connectors.dataverse.client import DataverseConnector, DataverseSettings

    provider = MsalTokenProvider(ClientSecretLogin(info["client_id"], info["client_secret"]), info["authority"],
                                 verify=ssl.create_default_context(cafile=info["ca_file"]))
    out = []
    try:
        async with DataverseConnector(DataverseSettings(info["dataverse_url"], ca_bundle=info["ca_file"]),
                                      provider) as conn:
            meta = await conn.get_entity(ENTITY)
            # Every column of the table, as a profile that Connects all of them reads (lookups included).
            fields = [f.logical_name for f in meta.fields]
            for mode in modes:
                for _ in range(repeat):
                    row = await read(conn, mode, fields, pid)
                    log(f"{mode}: {row['records']} records in {row['pages']} pages, {row['seconds']} s")
                    out.append(row)
    finally:
        provider.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=50_000, help="accounts to seed (default 50,000)")
    p.add_argument("--modes", default="changes", help=f"comma-separated, of {', '.join(MODES)} (default changes)")
    p.add_argument("--repeat", type=int, default=1, help="reads per mode")
    p.add_argument("--no-cost", action="store_true", help="latency and cost per record off (limits stay on)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="seeded emulator folder, kept and reused (default: <tmp>/crmsync-bench-dataverse-read-N)")
    p.add_argument("--emulator-src", type=Path, default=None,
                   help="run the emulator from this source tree (e.g. an older checkout) instead")
    args = p.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in modes):
        p.error(f"--modes: choose from {', '.join(MODES)}")
    data_dir = args.data_dir or Path(tempfile.gettempdir()) / f"crmsync-bench-dataverse-read-{args.records}"
    data_dir.mkdir(parents=True, exist_ok=True)
    log(f"seeding {args.records} accounts in {data_dir} (kept and reused)")
    seeded = seed_accounts(data_dir, args.records)
    latency, cost = (0, 0.0) if args.no_cost else (LATENCY_MS, COST_PER_RECORD_MS)
    with dataverse_emulator(data_dir / "server", args.emulator_src) as (info, pid):
        admin(info, "PATCH", "limits", {"enabled": True})
        admin(info, "PATCH", "performance", {"latency_ms": latency, "cost_per_record_ms": cost})
        rows = asyncio.run(run(info, pid, modes, args.repeat))
    floor = (latency + cost * 5000) / 1000
    print(f"Dataverse emulator paged reads, {args.records:,} accounts, latency {latency} ms + {cost} ms/record "
          f"(simulated floor {floor:.2f} s per 5,000-row page = "
          f"{(5000 / floor) if floor else float('inf'):,.0f} records/s), limits on")
    print(f"{'mode':<9} {'records':>8} {'pages':>5} {'records/s':>9} {'s/page':>7} {'emu CPU us/rec':>14} "
          f"{'emu CPU ms/page':>15} {'client CPU us/rec':>17}")
    for r in rows:
        print(f"{r['mode']:<9} {r['records']:>8} {r['pages']:>5} {r['records_per_s']:>9,} {r['s_per_page']:>7.3f} "
              f"{r['emulator_cpu_us_per_record']:>14} {r['emulator_cpu_ms_per_page']:>15} "
              f"{r['client_cpu_us_per_record']:>17}")
    print(json.dumps({"bench": "dataverse_read", "records": args.records, "latency_ms": latency,
                      "cost_per_record_ms": cost, "emulator_src": str(args.emulator_src or ROOT),
                      "seed": seeded, "machine": machine_info(), "results": rows}))


if __name__ == "__main__":
    main()
