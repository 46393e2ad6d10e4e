"""The ``crmsync`` CLI in a subprocess against an EmulatorPair in the test process (file keyring).

Also the crash test: Sync All killed (SIGKILL) at seeded points, mostly right after the Resco
emulator accepted the n-th client write of the run (mid-page: the page's bookkeeping is not
committed yet), restarted until it succeeds; then Verify, ids, and client writes per record.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from crmsync_desktop.emulator.runner import EmulatorPair
from tests.e2e.harness import WriteCounter

REPO = Path(__file__).resolve().parents[2]
PROFILE = "E2E"


class Cli:
    """Runs ``python -m crmsync_desktop.cli --data-dir D --ca-bundle CA ...`` with the file keyring."""

    def __init__(self, pair: EmulatorPair, tmp: Path) -> None:
        self.pair = pair
        self.data_dir = tmp / "cli-data"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC_")},
            "PYTHONPATH": str(REPO),
            "PYTHON_KEYRING_BACKEND": "tests.fakes.file_keyring.FileKeyring",
            "CRMSYNC_TEST_KEYRING_FILE": str(tmp / "keyring.json"),
        }

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "crmsync_desktop.cli", "--data-dir", str(self.data_dir),
                "--ca-bundle", str(self.pair.ca_path), *args]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), input=stdin, capture_output=True, text=True, env=self.env,
                              timeout=300, cwd=str(REPO))

    def json(self, *args: str, stdin: str | None = None, expect: int = 0) -> dict[str, Any]:
        done = self.run("--json", *args, stdin=stdin)
        assert done.returncode == expect, (args, done.returncode, done.stdout[-2000:], done.stderr[-2000:])
        return json.loads(done.stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv("--json", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env, cwd=str(REPO))

    def setup(self, entities: list[str]) -> None:
        p = self.pair
        out = self.json("profiles", "add", PROFILE, "--server-url", p.dataverse_url, "--client-id", p.client_id,
                        "--client-url", f"{p.resco_url}/{p.resco_org}", "--client-user", p.resco_username)
        assert out == {"ok": True, "result": {"profile": PROFILE}}
        out = self.json("profiles", "set-secret", PROFILE, "server-client-secret", stdin=p.client_secret + "\n")
        assert out["ok"] and out["result"] == {"profile": PROFILE, "kind": "server-client-secret"}
        self.json("profiles", "set-secret", PROFILE, "client-password", stdin=p.resco_password + "\n")
        keyring_text = Path(self.env["CRMSYNC_TEST_KEYRING_FILE"]).read_text()
        assert p.client_secret in keyring_text  # in the keyring (file), never in the data folder:
        for path in self.data_dir.rglob("*"):
            if path.is_file() and path.suffix != ".log":
                assert p.client_secret.encode() not in path.read_bytes(), path
        out = self.json("connect", PROFILE, *[a for e in entities for a in ("--entity", e)])
        assert out["ok"] and out["result"]["status"] == "succeeded", out
        out = self.json("entities", "enable", PROFILE, *entities)
        assert out["ok"] and set(out["result"]["saved"]) == set(entities)


def test_cli_profile_connect_enable_sync_verify(rig_factory: Callable[..., Any], tmp_path: Path) -> None:
    with rig_factory(seed_records=500) as rig:
        cli = Cli(rig.pair, tmp_path)
        cli.setup(["account", "contact"])
        out = cli.json("sync", PROFILE, "--full")
        assert out["ok"] is True
        result = out["result"]
        assert set(result) == {"run_id", "status", "counts", "error"}
        assert result["status"] == "succeeded" and result["error"] is None
        assert result["counts"]["account"]["created"] == rig.pair.dataverse_org.count("account")
        assert result["counts"]["contact"]["created"] == rig.pair.dataverse_org.count("contact")
        out = cli.json("verify", PROFILE)
        assert out["ok"] is True and out["result"]["in_sync"] is True
        entities = {e["entity"]: e for e in out["result"]["entities"]}
        assert {"account", "contact", "systemuser"} <= set(entities)
        assert set(entities["account"]) >= {"entity", "server_count", "client_count", "missing_on_client",
                                            "extra_on_client", "different", "client_only", "examples"}
        assert entities["account"]["server_count"] == entities["account"]["client_count"] > 0
        # A second, incremental sync has nothing to write.
        out = cli.json("sync", PROFILE)
        assert all(c.get("created", 0) == c.get("updated", 0) == 0 for c in out["result"]["counts"].values())
        listed = cli.json("entities", "list", PROFILE)
        rows = {r["entity"]: r for r in listed["result"]}
        assert rows["account"]["enabled"] and rows["account"]["records"] == entities["account"]["server_count"]
        # Errors are JSON too: an unknown profile.
        out = cli.json("sync", "Nobody", expect=8)
        assert out["ok"] is False and out["error"]["type"] == "ProfileNotFoundError"


def _kill_test(rig: Any, tmp_path: Path, *, seed: int, kills: int) -> None:
    pair = rig.pair
    entities = ["account", "contact", "lead", "opportunity"]
    cli = Cli(pair, tmp_path)
    cli.setup(entities)
    writes = WriteCounter(pair)
    rng = random.Random(seed)
    # Seeded kill points: right after the k-th client write request of a run (1 <= k <= 5: most are
    # mid-page, a page being up to 10 write requests), and one after a random delay (wherever the
    # run is then: signing in, reading, writing).
    plan: list[tuple[str, float]] = [("write", rng.randint(1, 5)) for _ in range(kills)]
    plan.insert(rng.randrange(len(plan) + 1), ("delay", rng.uniform(0.3, 2.5)))
    state: dict[str, Any] = {"proc": None, "limit": None, "base": 0, "killed": False}
    lock = threading.Lock()

    def on_write(n: int) -> None:
        with lock:
            proc, limit = state["proc"], state["limit"]
            if proc is not None and limit is not None and n - state["base"] >= limit and not state["killed"]:
                os.kill(proc.pid, signal.SIGKILL)  # the server accepted the write; the client never hears
                state["killed"] = True

    writes.on_write = on_write
    restarts = 0
    outcomes = []
    for attempt in range(len(plan) + 3):
        kind, value = plan[attempt] if attempt < len(plan) else ("none", 0)
        with lock:
            state.update(base=writes.requests, killed=False, limit=value if kind == "write" else None)
            proc = state["proc"] = cli.popen("sync", PROFILE, "--full")
        if kind == "delay":
            try:
                proc.wait(timeout=value)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                state["killed"] = True
        out, err = proc.communicate(timeout=300)
        with lock:
            state["proc"] = None
        outcomes.append((kind, value, proc.returncode))
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, out[-2000:], err[-2000:])
        restarts += 1
    else:
        pytest.fail(f"Sync All never succeeded: {outcomes}")
    assert restarts >= 5, outcomes

    out = cli.json("verify", PROFILE)
    assert out["result"]["in_sync"] is True, out
    records = 0
    org = pair.dataverse_org
    client = pair.resco_cloud.get(pair.resco_org)
    for entity in entities:
        server_ids = {str(r[0]).lower() for r in org.conn.execute(f"SELECT {entity}id FROM {entity}")}
        client_rows = [str(r["id"]).lower() for r in client.execute(
            sa.select(client.tables[entity].c.id))]
        assert len(client_rows) == len(set(client_rows)), entity  # no record twice
        assert set(client_rows) == server_ids, entity
        records += len(server_ids)
    total = writes.total(entities)
    worst = max(v for (e, _), v in writes.per_record.items() if e in entities)
    # A record is written once, once more per restart that re-read its page before that page's
    # bookkeeping was committed, and once more if its lookup waited for a later entity (account ->
    # primary contact is written without the lookup, then completed at the end of the run).
    assert worst <= 2 + restarts, (worst, restarts, outcomes)
    # The hash skip: restarts re-read everything (Sync All) but do not rewrite what was written.
    assert total < 2 * records, (total, records, restarts, outcomes)


def test_sync_all_killed_at_random_points_resumes_without_rewriting(
        rig_factory: Callable[..., Any], tmp_path: Path) -> None:
    with rig_factory(seed_records=8000) as rig:
        _kill_test(rig, tmp_path, seed=11, kills=5)


@pytest.mark.slow
def test_sync_all_killed_at_more_random_points(rig_factory: Callable[..., Any], tmp_path: Path) -> None:
    with rig_factory(seed_records=20_000, seed=3) as rig:
        _kill_test(rig, tmp_path, seed=29, kills=10)

