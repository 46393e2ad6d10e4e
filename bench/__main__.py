"""Performance figures side by side: ``python -m bench all`` (or one group) -> bench/results/latest.json + docs/performance.md.

Subcommands: ``all``, ``sync`` (full sync of 100 k through the engine vs the limit-derived ceiling and
a naive one-request-per-record sync, + 100 changes incremental in that table), ``incremental``
(100 changes in a 1 M-record table), ``sweep`` (deletion sweep over 1 M ids), ``memory`` (full
sync of 1 M: peak RSS), ``latency`` (client->server p50/p95), ``console`` (Offline Transactions
open time over 1 M rows; longest event-loop stall during a 20 k sync under qasync).

``--quick`` shrinks every size for a smoke run (5 k / 20 k records, 20 k queue rows) and writes
bench/results/quick.json instead (the real figures and the doc stay as they are). The seeded
emulator folders live under ``--work-dir`` (default: a folder in the system temp dir, kept) and
are reused by the subcommands of one run and by later runs with the same ``--work-dir``.
Benchmarks, not tests: nothing here asserts; a missed target is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import figures
from bench.harness import COST_PER_RECORD_MS, LATENCY_MS, ROOT, log, machine_info

GROUPS = ("sync", "memory", "incremental", "sweep", "latency", "console")
RESULTS = ROOT / "bench" / "results" / "latest.json"
DOC = ROOT / "docs" / "performance.md"


def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"sync": 5_000, "naive": 50, "big": 20_000, "tx_rows": 20_000, "stall": 5_000, "latency": 5}
    return {"sync": 100_000, "naive": 300, "big": 1_000_000, "tx_rows": 1_000_000, "stall": 20_000, "latency": 20}


def run(groups: list[str], quick: bool, work: Path) -> dict[str, Any]:
    n = sizes(quick)
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    small: dict[str, Any] | None = None
    load_before = os.getloadavg()
    started = time.perf_counter()

    def guarded(name: str, fn: Any) -> None:
        try:
            for r in fn():
                r.setdefault("group", group_of(r))
                rows.append(r)
        except Exception as exc:  # noqa: BLE001 - one failed group must not hide the others
            log(f"{name} FAILED: {type(exc).__name__}: {exc}")
            errors[name] = f"{type(exc).__name__}: {str(exc)[-2000:]}"

    if "sync" in groups or "incremental" in groups:
        def sync_group() -> list[dict[str, Any]]:
            nonlocal small
            out, extra = figures.measure_sync(work / f"sync{n['sync']}", n["sync"], n["naive"])
            small = extra["incremental_100k"]
            return out if "sync" in groups else []
        guarded("sync", sync_group)
    big_parts = {g for g in ("memory", "incremental", "sweep") if g in groups}
    if big_parts:
        guarded("big", lambda: figures.measure_big(work / f"big{n['big']}", n["big"], small, big_parts))
    if "latency" in groups:
        guarded("latency", lambda: figures.measure_latency(work / "latency", n["latency"], quick))
    if "console" in groups:
        guarded("console-transactions", lambda: figures.measure_transactions_view(work, n["tx_rows"]))
        guarded("console-stall", lambda: figures.measure_stall(work / f"stall{n['stall']}", n['stall']))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "quick": quick,
        "groups": groups,
        "machine": {**machine_info(), "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "setup": {"dataverse_latency_ms": LATENCY_MS, "dataverse_cost_per_record_ms": COST_PER_RECORD_MS,
                  "dataverse_limits": "on (documented defaults)", "resco_latency_ms": LATENCY_MS},
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
        "errors": errors,
    }


def group_of(r: dict[str, Any]) -> str:
    """Which subcommand measured a row (from its figure; also for result files written before rows had it)."""
    if r.get("group"):
        return str(r["group"])
    f = r["figure"].lower()
    if "peak memory" in f and "full sync" in f:
        return "memory"
    if f.startswith("full sync") or "limit-derived" in f or "naive" in f or "organizations allow" in f:
        return "sync"
    if "incremental" in f or "requests (server" in f:
        return "incremental"
    if "sweep" in f or f.strip() == "peak memory (rss)":
        return "sweep"
    if "latency" in f:
        return "latency"
    return "console"


def merge(previous: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """A run of some groups replaces those groups' rows in the previous results and keeps the others."""
    provenance = dict(previous.get("provenance") or {})
    if not provenance and previous.get("rows"):
        for g in {group_of(r) for r in previous["rows"]}:
            provenance[g] = {"date": previous.get("date"), "command": previous.get("command")}
    for g in report["groups"]:
        provenance[g] = {"date": report["date"], "command": report["command"]}
    rows = [r for r in previous.get("rows", []) if group_of(r) not in report["groups"]] + report["rows"]
    rows.sort(key=lambda r: ORDER.index(group_of(r)) if group_of(r) in ORDER else 99)
    errors = {k: v for k, v in (previous.get("errors") or {}).items() if k not in report["errors"]}
    errors.update(report["errors"])
    for g in report["groups"]:  # a group measured now has no stale error left
        errors = {k: v for k, v in errors.items() if not (k == g or k.startswith(g + "-") or
                                                           (k == "big" and g in ("memory", "incremental", "sweep")))}
    errors.update(report["errors"])
    return {**report, "rows": rows, "errors": errors, "provenance": provenance}


ORDER = ("sync", "memory", "incremental", "sweep", "latency", "console")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    lines = ["| Figure | Measured | Target | Ratio | Pass |", "|---|---|---|---|---|"]
    for r in report["rows"]:
        passed = "-" if r["passed"] is None else ("PASS" if r["passed"] else "**FAIL**")
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['figure']} | {_fmt(r['measured'])} {r['unit']} | {r['target']} | {ratio} | {passed} |")
    for name, error in report.get("errors", {}).items():
        lines.append(f"| {name} | error: {error.splitlines()[0][:120] if error else ''} | | | **ERROR** |")
    return "\n".join(lines)


def _by_run(report: dict[str, Any]) -> list[tuple[tuple[str, str], list[str]]]:
    runs: dict[tuple[str, str], list[str]] = {}
    for group in ORDER:
        p = report.get("provenance", {}).get(group)
        if p:
            runs.setdefault((p["date"], p["command"]), []).append(group)
    return list(runs.items())


def write_doc(report: dict[str, Any]) -> None:
    """Regenerate the generated part of docs/performance.md (between the markers); the analysis stays."""
    m = report["machine"]
    generated = "\n".join([
        "<!-- generated by `python -m bench` — do not edit between these markers -->",
        "Measured " + "; ".join(f"{', '.join(gs)}: {when} with `{cmd}`" for (when, cmd), gs in _by_run(report)) + ".",
        "",
        (f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['platform']}, Python {m['python']}; "
         f"load average before/after {m['load_average_before']} / {m['load_average_after']} (shared machine)."),
        (f"Setup: Dataverse service-protection limits on (documented defaults), {LATENCY_MS} ms latency and "
         f"{COST_PER_RECORD_MS} ms per record returned or written; Resco Cloud {LATENCY_MS} ms latency; "
         "each emulated service in its own process; the engine in a fresh worker process per measurement."),
        "",
        table(report),
        "",
        "Details of every figure (request counts, seconds, summaries): `bench/results/latest.json`.",
        "<!-- end generated -->",
    ])
    if DOC.exists():
        text = DOC.read_text()
        start = text.find("<!-- generated by")
        end = text.find("<!-- end generated -->")
        if start >= 0 and end >= 0:
            DOC.write_text(text[:start] + generated + text[end + len("<!-- end generated -->"):])
            return
    DOC.write_text("# Performance\n\n" + generated + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("group", choices=("all", *GROUPS))
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--work-dir", type=Path, help="where seeded emulator folders are kept (reused)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave latest.json and the doc alone")
    args = parser.parse_args(argv)
    groups = list(GROUPS) if args.group == "all" else [args.group]
    work = args.work_dir or Path(tempfile.gettempdir()) / ("crmsync-bench-quick" if args.quick else "crmsync-bench")
    work.mkdir(parents=True, exist_ok=True)
    log(f"work folder {work}")
    report = run(groups, args.quick, work)
    print(table(report))
    if not args.no_write:
        # A --quick smoke run never replaces the real figures: it goes to quick.json, the doc stays.
        results = RESULTS.with_name("quick.json") if args.quick else RESULTS
        results.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(results.read_text()) if results.exists() and args.group != "all" else {}
        report = merge(previous, report)
        results.write_text(json.dumps(report, indent=2, default=str) + "\n")
        if not args.quick:
            write_doc(report)
        log(f"wrote {results.relative_to(ROOT)}" + ("" if args.quick else f" and {DOC.relative_to(ROOT)}"))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
