"""One engine task in a fresh process (so its peak RSS is its own): ``python -m bench.worker SPEC.json``.

Tasks: ``setup`` (save the connection, Connect the listed entities, enable them), ``sync`` (through
``SyncEngine.sync``; ``full`` or incremental), ``configure`` (entity settings: deletion strategy).
Prints one JSON line: seconds, CPU seconds (process and event-loop thread), run status and counts,
HTTP requests per host, peak RSS (MiB) and, when asked, the tracemalloc peak.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (cProfile)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import keyring

from bench.harness import PROFILE, peak_rss_mib
from tests.fakes.keyring_backend import InMemoryKeyring

REQUESTS: Counter[str] = Counter()


def _count_requests() -> None:
    original = httpx.AsyncClient.send

    async def send(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> httpx.Response:
        REQUESTS[f"{request.url.host}:{request.url.port}"] += 1
        return await original(self, request, **kw)

    httpx.AsyncClient.send = send  # type: ignore[method-assign]


async def _engine_task(spec: dict[str, Any]) -> dict[str, Any]:
    from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
    from crmsync_desktop.domain import AuthKind, ConnectionProfile, DeletionStrategy
    from crmsync_desktop.store import repos
    from crmsync_desktop.store.migrate import open_store
    from crmsync_desktop.sync.engine import SyncEngine
    from crmsync_desktop.sync.organizations import ProfileConnectorFactory

    info, options, work = spec["info"], spec["options"], Path(spec["work"])
    db = await asyncio.to_thread(open_store, work / "store.sqlite3", work / "backups")
    credentials = CredentialStore()
    engine = SyncEngine(db, ProfileConnectorFactory(credentials, ca_bundle=info["ca_file"]), credentials=credentials)
    profile = ConnectionProfile(
        name=PROFILE, server_url=info["dataverse_url"], server_auth_kind=AuthKind.CLIENT_SECRET,
        tenant_id="", client_id=info["client_id"], client_url=f"{info['resco_url']}/{info['resco_org']}",
        client_user=info["resco_user"],
    )
    out: dict[str, Any] = {}
    try:
        existing = {p.name: p for p in await repos.list_profiles(db)}
        if PROFILE in existing:  # keep state, follow the emulator's new ports
            profile = replace(existing[PROFILE], server_url=profile.server_url, client_url=profile.client_url)
        await engine.save_connection(profile, {SecretKind.SERVER_CLIENT_SECRET: info["client_secret"],
                                               SecretKind.CLIENT_PASSWORD: info["resco_password"]})
        task = spec["task"]
        started = time.perf_counter()
        cpu_started, loop_cpu_started = time.process_time(), time.thread_time()
        if task == "setup":
            result, report = await engine.connect(PROFILE, options["entities"])
            configs = {c.logical_name: c for c in await repos.list_entity_configs(db, PROFILE)}
            await engine.save_entity_configs(PROFILE, [replace(configs[n], enabled=True) for n in options["entities"]])
            out["problems"] = list(report.problems()) if report else []
        elif task == "configure":
            configs = {c.logical_name: c for c in await repos.list_entity_configs(db, PROFILE)}
            strategy = DeletionStrategy(options["deletion"]) if options.get("deletion") else None
            changed = []
            for name in options["entities"]:
                cfg = configs[name]
                if strategy is not None:
                    cfg = replace(cfg, sync_deletion=strategy is not DeletionStrategy.OFF, deletion_strategy=strategy)
                changed.append(cfg)
            await engine.save_entity_configs(PROFILE, changed)
            result = None
        elif task == "sync":
            if options.get("tracemalloc"):
                import tracemalloc

                tracemalloc.start()
            result = await engine.sync(PROFILE, full=bool(options.get("full")))
            if options.get("tracemalloc"):
                out["tracemalloc_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
                tracemalloc.stop()
        elif task == "latency":
            result = None
            out.update(await _latency(engine, info, int(options.get("changes", 20))))
        elif task == "capacity":
            result = None
            out.update(await _capacity(engine, int(options.get("records", 0))))
        elif task == "stall":
            result = None
            out.update(await _stall(engine))
        else:
            raise SystemExit(f"unknown task {task}")
        out["seconds"] = time.perf_counter() - started
        # CPU of this process (every thread: event loop, to_thread offloads, store threads) and of
        # the event-loop thread alone.
        out["cpu_seconds"] = time.process_time() - cpu_started
        out["loop_cpu_seconds"] = time.thread_time() - loop_cpu_started
        if result is not None:
            out.update(status=result.status.value, summary=result.summary, error=result.error, counts=result.counts,
                       run_id=result.run_id)
            if result.error:
                lines = await repos.list_log_lines(db, result.run_id, limit=5000)
                out["problems"] = [f"{ln.level} {ln.entity} {ln.message}"[:300] for ln in lines
                                   if str(ln.level).upper().endswith(("ERROR", "WARNING"))][:20]
        out["held"] = await repos.count_record_states(db, PROFILE)
    finally:
        await engine.aclose()
        await asyncio.to_thread(db.close)
    return out


async def _latency(engine: Any, info: dict[str, Any], changes: int) -> dict[str, Any]:
    """Create records in the client organization one by one; time until each is on the server."""
    import random
    import uuid

    from bench.harness import dataverse_http

    svc = engine.uploads(PROFILE)
    loop_task = asyncio.create_task(svc.run_forever())
    pair = await engine._connectors.open(await engine.get_profile(PROFILE))  # a benchmark reaches in
    latencies: list[float] = []
    lost = 0
    rng = random.Random(2)
    try:
        await asyncio.sleep(5)  # the first ticks set the capture cursor
        with dataverse_http(info) as dv:
            for k in range(changes):
                rid = str(uuid.uuid4())
                await pair.client.upsert_many("account", [{"id": rid, "name": f"Latency {k}"}])
                created = time.perf_counter()
                while True:
                    r = await asyncio.to_thread(dv.get, f"accounts({rid})", params={"$select": "name"})
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - created)
                        break
                    if time.perf_counter() - created > 60:
                        lost += 1
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(rng.uniform(0.2, 1.5))
    finally:
        svc.stop()
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        await pair.aclose()
    return {"latencies_s": latencies, "lost": lost, "probe_interval_s": svc.probe_interval_s}


async def _capacity(engine: Any, limit: int) -> dict[str, Any]:
    """What each emulated organization can do alone, with the engine's own requests: the server's paged
    change read of the account table, and the client's bulk write of as many records (new ids)."""
    import uuid

    pair = await engine._connectors.open(await engine.get_profile(PROFILE))  # a benchmark reaches in
    try:
        plans, _, _ = await engine._plans(PROFILE, pair, ["account"])
        plan = plans[0]
        records: list[dict[str, Any]] = []
        started = time.perf_counter()
        async for page in pair.server.read_changes("account", plan.read_fields, None):
            records.extend(page.upserts)
            if limit and len(records) >= limit:
                break
        read_s = time.perf_counter() - started
        pid = plan.fields.primary_id
        outgoing = [plan.fields.to_client({**r, pid: str(uuid.uuid4())}) for r in records]
        started = time.perf_counter()
        failed = 0
        for k in range(0, len(outgoing), 5000):  # as the engine hands them over: one page at a time
            failed += sum(not r.ok for r in await pair.client.upsert_many("account", outgoing[k:k + 5000]))
        write_s = time.perf_counter() - started
    finally:
        await pair.aclose()
    return {"records": len(records), "server_read_s": read_s, "client_write_s": write_s, "client_write_failed": failed,
            "server_read_per_s": len(records) / read_s, "client_write_per_s": len(records) / write_s}


async def _stall(engine: Any) -> dict[str, Any]:
    """A full sync while a 5 ms ticker measures the longest gap of the (qasync) event loop."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    import gc

    gc_pauses: list[float] = []
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_pauses.append(time.perf_counter() - gc_start[0])

    # As the console is by then: both organizations already contacted (Test connection / Connect,
    # so first-use imports are done) and the startup heap frozen (crmsync_desktop/__main__.py).
    await engine.test_connection(PROFILE)
    if not os.environ.get("BENCH_NO_GC_FREEZE"):
        gc.freeze()
    tick = asyncio.create_task(ticker())
    await asyncio.sleep(3)  # the noise floor of this machine: the same ticker with no sync running
    idle_max_ms = round(max(gaps) * 1000, 1)
    gaps.clear()
    gc.callbacks.append(on_gc)
    stacks: dict[str, float] = {}
    if os.environ.get("BENCH_STALL_STACKS"):  # diagnostics: where the loop thread was during long gaps
        import threading
        import traceback

        main_id = threading.get_ident()
        last_len = [0]

        def watchdog() -> None:
            while not done.is_set():
                n = len(gaps)
                time.sleep(0.02)
                if len(gaps) == n and not done.is_set():
                    frame = sys._current_frames().get(main_id)
                    if frame is not None:
                        key = " <- ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}"
                                          for f in traceback.extract_stack(frame)[::-1][:16])
                        stacks[key] = stacks.get(key, 0) + 0.02
            last_len[0] = len(gaps)

        threading.Thread(target=watchdog, daemon=True).start()
    started = time.perf_counter()
    result = await engine.sync(PROFILE, full=True)
    seconds = time.perf_counter() - started
    done.set()
    await tick
    gc.callbacks.remove(on_gc)
    gaps.sort()
    return {"max_gap_ms": round(gaps[-1] * 1000, 1), "p99_gap_ms": round(gaps[int(len(gaps) * 0.99)] * 1000, 1),
            "ticks": len(gaps), "sync_seconds": round(seconds, 1), "sync_status": result.status.value,
            "sync_summary": result.summary, "loop": "qasync.QEventLoop (QT_QPA_PLATFORM=offscreen)",
            "idle_max_gap_ms": idle_max_ms, "longest_gc_pause_ms": round(max(gc_pauses, default=0) * 1000, 1), "gc_collections": len(gc_pauses),
            **({"blocked_in": dict(sorted(stacks.items(), key=lambda kv: -kv[1])[:15])} if stacks else {})}


def _run_in_qasync(coro: Any) -> Any:
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        asyncio.set_event_loop(None)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    keyring.set_keyring(InMemoryKeyring())  # throwaway emulator credentials, never the OS keyring
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _count_requests()
    if spec["task"] == "stall":
        out = _run_in_qasync(_engine_task(spec))
    else:
        out = asyncio.run(_engine_task(spec))
    info = spec["info"]
    hosts = {"dataverse": info["dataverse_url"], "resco": info["resco_url"], "identity": info.get("identity_url", "")}
    by_host = {}
    for name, url in hosts.items():
        u = httpx.URL(url) if url else None
        by_host[name] = REQUESTS.get(f"{u.host}:{u.port}", 0) if u else 0
    out["requests"] = by_host
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
