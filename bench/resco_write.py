"""Bulk write cost of the Resco Cloud emulator: ``UpdateMultiple?$create=true`` through the product connector.

Usage (prints a table, then one JSON line):

    python bench/resco_write.py                        # 50,000 records, 5,000 per upsert_many call
    python bench/resco_write.py --records 10000        # a smoke run
    python bench/resco_write.py --latency-ms 50        # with the latency the full-sync benchmark uses

The emulator runs in its own process (``crmsync-emulator resco``, as bench/harness.py starts it), so
the connector's own CPU (building the XML bodies, parsing the results) is not counted against it.
An account-like entity is provisioned (strings, integer, money, picklist, boolean, date-time and a
lookup to the signed-in user); ``upsert_many`` then creates every record and updates all of them.
Figures: records/s per phase (wall clock, so a busy machine lowers them) and the emulator process's
CPU seconds per record (user + system from ``/proc/<pid>/stat``, which is what this benchmark exists
to bring down: on the 2-core benchmark machine that CPU bounds a full sync, docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crmsync_desktop.sync.connectors.resco import RescoConnector, RescoSettings
from crmsync_desktop.sync.connectors.types import (
    EntityMeta,
    FieldMeta,
    FieldType,
    LookupValue,
    OptionMeta,
    Record,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.harness` when run as a script
from bench.harness import cpu_seconds, emulator_process, log, machine_info

ENTITY = "bench_account"
CALL_CHUNK = 5_000  # records per upsert_many call (as the engine hands a page over)
CITIES = ("Seattle", "Redmond", "Bratislava", "Vienna", "Berlin", "London", "Paris", "Prague")


@contextmanager
def resco_emulator(data_dir: Path, latency_ms: int) -> Iterator[tuple[dict[str, Any], int]]:
    """``crmsync-emulator resco`` in a subprocess; yields its JSON summary and its pid (for /proc CPU times)."""
    args = ["resco", "--data-dir", str(data_dir), *(("--latency-ms", str(latency_ms)) if latency_ms else ())]
    with emulator_process(args) as info:
        yield info, info["pid"]


def entity_meta() -> tuple[EntityMeta, list[FieldMeta]]:
    fields = [
        FieldMeta("accountnumber", FieldType.STRING, max_length=20),
        FieldMeta("telephone1", FieldType.STRING, max_length=50),
        FieldMeta("emailaddress1", FieldType.STRING, max_length=100),
        FieldMeta("address1_city", FieldType.STRING, max_length=80),
        FieldMeta("description", FieldType.MEMO),
        FieldMeta("revenue", FieldType.MONEY),
        FieldMeta("numberofemployees", FieldType.INTEGER),
        FieldMeta("industrycode", FieldType.PICKLIST, options=tuple(OptionMeta(v, f"Industry {v}") for v in range(1, 34))),
        FieldMeta("donotemail", FieldType.BOOLEAN),
        FieldMeta("lastusedincampaign", FieldType.DATETIME),
        FieldMeta("salesrepid", FieldType.LOOKUP, targets=("systemuser",)),
    ]
    return EntityMeta(ENTITY, label="Bench account", primary_name="name"), fields


def make_records(n: int, owner: str, generation: int) -> list[Record]:
    """``n`` account-like records with deterministic ids (the same ids in every generation)."""
    out: list[Record] = []
    for i in range(n):
        out.append({
            "id": str(uuid.UUID(int=i + 1, version=4)),
            "name": f"Account {i:07d} v{generation}",
            "accountnumber": f"ACC-{i:07d}",
            "telephone1": f"+1 555 {1_000_000 + (i * 7919 + generation) % 9_000_000}",
            "emailaddress1": f"info{i}@account.test",
            "address1_city": CITIES[(i + generation) % len(CITIES)],
            "description": f"Generation {generation} of account {i} & friends <bench>",
            "revenue": float(10_000 + i * 3 + generation) * 1.5,
            "numberofemployees": 1 + (i + generation) % 50_000,
            "industrycode": 1 + (i + generation) % 33,
            "donotemail": (i + generation) % 2 == 0,
            "lastusedincampaign": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T10:{generation % 60:02d}:00Z",
            "salesrepid": LookupValue("systemuser", owner),
        })
    return out


async def write_phase(conn: RescoConnector, records: list[Record], pid: int) -> dict[str, Any]:
    """One pass of ``upsert_many`` over ``records``; wall time, failures and the emulator's CPU."""
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    failed = 0
    for k in range(0, len(records), CALL_CHUNK):
        results = await conn.upsert_many(ENTITY, records[k : k + CALL_CHUNK])
        failed += sum(not r.ok for r in results)
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    n = len(records)
    return {"records": n, "failed": failed, "seconds": round(wall, 2), "records_per_s": round(n / wall),
            "emulator_cpu_s": round(cpu, 2), "emulator_cpu_ms_per_record": round(cpu / n * 1000, 4)}


async def run(info: dict[str, Any], pid: int, n: int) -> dict[str, Any]:
    settings = RescoSettings(info["resco_url"], info["resco_org"], info["resco_user"], ca_bundle=info["ca_file"])
    async with RescoConnector(settings, info["resco_password"]) as conn:
        entity, fields = entity_meta()
        await conn.create_entity(entity)
        for f in fields:
            await conn.create_field(ENTITY, f)
        await conn.get_entity(ENTITY)
        owner = (await conn.whoami()).user_id.lower()
        out = {"create": await write_phase(conn, make_records(n, owner, 0), pid)}
        out["update"] = await write_phase(conn, make_records(n, owner, 1), pid)
        out["row_version"] = await conn.max_row_version(ENTITY)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--latency-ms", type=int, default=0, help="Resco emulator latency per request (default 0)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="resco-write-") as tmp:
        log(f"starting the Resco Cloud emulator ({args.records:,} records, {args.latency_ms} ms latency)")
        with resco_emulator(Path(tmp), args.latency_ms) as (info, pid):
            figures = asyncio.run(run(info, pid, args.records))
    print(f"{'phase':<8} {'records':>8} {'failed':>7} {'seconds':>8} {'records/s':>10} {'emu CPU s':>10} {'emu CPU ms/rec':>15}")
    for phase in ("create", "update"):
        f = figures[phase]
        print(f"{phase:<8} {f['records']:>8,} {f['failed']:>7} {f['seconds']:>8} {f['records_per_s']:>10,} "
              f"{f['emulator_cpu_s']:>10} {f['emulator_cpu_ms_per_record']:>15}")
    print(json.dumps({"bench": "resco_write", "latency_ms": args.latency_ms, **figures, "machine": machine_info(),
                      "load_avg": os.getloadavg()}))
    failed = figures["create"]["failed"] + figures["update"]["failed"]
    expected = 2 * args.records
    if failed or figures["row_version"] < expected:
        print(f"UNEXPECTED: {failed} failed records, entity row version {figures['row_version']} < {expected}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
