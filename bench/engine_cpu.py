"""The sync engine's own CPU per record in a full download: ``python -m bench.engine_cpu [--records N] [--profile]``.

When both organizations answer fast, the engine's CPU is what limits a download's throughput. This
runs a full sync of N accounts (default 20,000) server -> client through ``SyncEngine`` against the
emulated pair, as ``python -m bench`` does (``bench.harness``: the seeded Dataverse organization and
Resco Cloud, each in its own process; ``bench.worker``: the engine in a fresh process), but with no
added latency, no per-record cost and no service-protection limits, so the servers wait as little
as they can. Every run starts from an empty client organization and an empty local store (the
Connect step, not measured, creates the schema), so every record is projected, hashed, written
and recorded.

Printed per run: the engine process's CPU seconds during ``SyncEngine.sync`` (``time.process_time``:
every thread of the process, i.e. the event loop, the ``to_thread`` offloads and the store's
threads) and of the event-loop thread alone, CPU microseconds per record, wall seconds and
records/s; with ``--again``, the same for a second full sync right after, in which nothing changed
(every record read, projected, hashed and skipped). ``--profile`` adds one more run under
cProfile, with all the work on one thread (the ``to_thread`` offloads and the store's threads run
inline: cProfile only sees the thread it is enabled in), and prints the top entries by cumulative
and by own time. The profiled run is slower (profiler overhead), so its CPU figure is not
comparable; the unprofiled runs are.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, emulator, log, machine_info, run_worker, seed_accounts

# -- the engine process ------------------------------------------------------------------------------------

def _run_inline() -> None:
    """Every ``to_thread`` offload and every store call on the calling thread (for cProfile)."""
    import asyncio

    from crmsync_desktop.store.db import Database

    async def to_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    async def run(self: Database, fn: Any) -> Any:
        self._check_open()
        return self._write(fn)

    async def read(self: Database, fn: Any) -> Any:
        self._check_open()
        return self._read(fn)

    asyncio.to_thread = to_thread  # type: ignore[assignment]
    Database.run = run  # type: ignore[method-assign]
    Database.read = read  # type: ignore[method-assign]


def _profile_sync(out: Path) -> None:
    """cProfile exactly around ``SyncEngine.sync`` (not the connection set-up around it)."""
    import cProfile

    from crmsync_desktop.sync.engine import SyncEngine

    original = SyncEngine.sync

    async def sync(self: SyncEngine, *args: Any, **kwargs: Any) -> Any:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            return await original(self, *args, **kwargs)
        finally:
            profiler.disable()
            profiler.dump_stats(str(out))

    SyncEngine.sync = sync  # type: ignore[method-assign]


def worker_main(spec_path: str, profile_out: str | None) -> None:
    """``bench.worker``'s ``sync`` task, optionally inline and profiled; prints its JSON line."""
    from bench import worker

    if profile_out:
        _run_inline()
        _profile_sync(Path(profile_out))
    sys.argv = [sys.argv[0], spec_path]
    worker.main()


def _engine_run(work: Path, info: dict[str, Any], profile_out: Path | None) -> dict[str, Any]:
    spec = {"task": "sync", "work": str(work), "info": {k: v for k, v in info.items() if k != "config"},
            "options": {"full": True}}
    spec_path = work / "worker-cpu.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "bench.engine_cpu", "--worker", str(spec_path)]
    if profile_out is not None:
        cmd += ["--profile-out", str(profile_out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not last:
        raise RuntimeError(f"engine run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(last[-1])


# -- one measured run ---------------------------------------------------------------------------------------

def one_run(work: Path, records: int, latency_ms: int, profile_out: Path | None = None,
            again: bool = False) -> dict[str, Any]:
    """A fresh client organization and local store, Connect, then the measured full sync.

    ``again``: then a second full sync over what the first wrote (every record read, projected,
    hashed and found unchanged), measured too (``again`` in the result; profiled when asked).
    """
    shutil.rmtree(work / "emu" / "client", ignore_errors=True)
    shutil.rmtree(work / "engine", ignore_errors=True)
    (work / "engine").mkdir(parents=True)
    with emulator(work / "emu", latency_ms=latency_ms, cost_ms=0, limits=False) as info:
        run_worker("setup", work / "engine", info, entities=["account"])
        out = _engine_run(work / "engine", info, None if again else profile_out)
        second = _engine_run(work / "engine", info, profile_out) if again else None
    created = int(out.get("counts", {}).get("account", {}).get("created", 0))
    _figures(out, records, created)
    if second is not None:
        unchanged = int(second.get("counts", {}).get("account", {}).get("unchanged", 0))
        out["again"] = _figures(second, records, unchanged)
    return out


def _figures(out: dict[str, Any], expected: int, counted: int) -> dict[str, Any]:
    if out.get("status") != "succeeded":
        raise RuntimeError(f"the sync did not succeed: {json.dumps(out)[:2000]}")
    if counted != expected:
        log(f"warning: {counted:,} accounts counted, {expected:,} expected")
    out["records"] = counted or expected
    out["cpu_us_per_record"] = out["cpu_seconds"] / out["records"] * 1e6
    out["loop_cpu_us_per_record"] = out["loop_cpu_seconds"] / out["records"] * 1e6
    out["records_per_s"] = out["records"] / out["seconds"]
    return out


def _line(label: str, out: dict[str, Any]) -> str:
    return (f"{label}: {out['records']:,} records in {out['seconds']:.2f} s wall ({out['records_per_s']:,.0f} records/s); "
            f"engine CPU {out['cpu_seconds']:.2f} s = {out['cpu_us_per_record']:.0f} us/record (event-loop thread "
            f"{out['loop_cpu_us_per_record']:.0f} us/record); requests {out['requests']}")


def print_profile(path: Path, top: int) -> None:
    import pstats

    for key in ("cumulative", "tottime"):
        print(f"\n-- cProfile of SyncEngine.sync (one thread), top {top} by {key} --")
        stats = pstats.Stats(str(path), stream=sys.stdout)
        stats.strip_dirs().sort_stats(key).print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="accounts to download (default 20,000)")
    parser.add_argument("--runs", type=int, default=1, help="unprofiled measured runs (median reported; 0 with --profile: the profile only)")
    parser.add_argument("--latency-ms", type=int, default=0, help="added latency per request, both organizations")
    parser.add_argument("--profile", action="store_true", help="one more run under cProfile; print the top entries")
    parser.add_argument("--again", action="store_true",
                        help="after each run, a second full sync with nothing changed (measured; the one profiled)")
    parser.add_argument("--top", type=int, default=25, help="profile entries to print")
    parser.add_argument("--work-dir", type=Path, help="where the seeded organization is kept (reused)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.profile_out)
        return 0

    work = args.work_dir or Path(tempfile.gettempdir()) / f"crmsync-bench-cpu-{args.records}"
    work.mkdir(parents=True, exist_ok=True)
    log(f"work folder {work}; seeding {args.records:,} accounts (reused when present)")
    seed_accounts(work / "emu", args.records)
    runs = []
    for k in range(args.runs):
        log(f"run {k + 1}/{args.runs}: full sync of {args.records:,} accounts")
        out = one_run(work, args.records, args.latency_ms, again=args.again)
        runs.append(out)
        print(_line(f"run {k + 1}", out), flush=True)
        if args.again:
            print(_line(f"run {k + 1}, full sync again (nothing changed)", out["again"]), flush=True)

    def median(key: str, of: list[dict[str, Any]] = runs) -> float | None:
        return round(statistics.median(r[key] for r in of), 1) if of else None

    summary = {
        "records": args.records,
        "runs": len(runs),
        "cpu_us_per_record": median("cpu_us_per_record"),
        "loop_cpu_us_per_record": median("loop_cpu_us_per_record"),
        "records_per_s": median("records_per_s"),
        "cpu_seconds": [round(r["cpu_seconds"], 2) for r in runs],
        "wall_seconds": [round(r["seconds"], 2) for r in runs],
        "peak_rss_mib": max((r["peak_rss_mib"] for r in runs), default=None),
        "latency_ms": args.latency_ms,
        **({"again_cpu_us_per_record": median("cpu_us_per_record", [r["again"] for r in runs]),
            "again_records_per_s": median("records_per_s", [r["again"] for r in runs])} if args.again else {}),
        "machine": {**machine_info(), "load_average": [round(x, 2) for x in os.getloadavg()]},
    }
    if args.profile:
        log("profiled run (one thread, under cProfile)")
        prof = work / "engine-cpu.prof"
        out = one_run(work, args.records, args.latency_ms, profile_out=prof, again=args.again)
        out = out["again"] if args.again else out
        summary["profiled_run_cpu_us_per_record"] = round(out["cpu_us_per_record"], 1)
        print_profile(prof, args.top)
        print(f"\n(profile data: {prof}; profiled run{' (the second sync)' if args.again else ''} "
              f"{out['cpu_us_per_record']:.0f} us/record with the profiler on)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    if "--worker" not in sys.argv:
        log(f"done in {time.perf_counter() - started:.0f} s")
    sys.exit(code)
