"""crmsync-emulator: --help, a real `pair` run in a subprocess, and the approve/fault commands."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from crmsync_desktop.emulator.cli import main
from crmsync_desktop.emulator.runner import EmulatorPair
from tests.emulator.runner.test_runner import _real_dataverse_ready, placeholder_dataverse

REPO = Path(__file__).resolve().parents[3]


def test_help_in_subprocess() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crmsync_desktop.emulator.cli", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for command in ("dataverse", "resco", "pair", "approve-device-code", "fault"):
        assert command in out
    pair_help = subprocess.run(
        [sys.executable, "-m", "crmsync_desktop.emulator.cli", "pair", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "--seed-records" in pair_help and "--data-dir" in pair_help


def test_pair_runs_in_subprocess_until_terminated(tmp_path: Path) -> None:
    args = ["pair", "--data-dir", str(tmp_path / "emu"), "--json"]
    if _real_dataverse_ready():
        command = [sys.executable, "-m", "crmsync_desktop.emulator.cli", *args]
    else:  # the Dataverse data service is not exported yet: wire the test placeholder in
        code = (
            "import sys; import crmsync_desktop.emulator.runner as r; "
            "from tests.emulator.runner.test_runner import placeholder_dataverse as p; "
            "r.default_dataverse_factory = p; from crmsync_desktop.emulator.cli import main; "
            f"sys.exit(main({args!r}))"
        )
        command = [sys.executable, "-c", code]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else ""
            summary = json.loads(line)
            for key in (
                "identity_url",
                "dataverse_url",
                "resco_url",
                "tenant_id",
                "client_id",
                "client_secret",
                "resco_user",
                "resco_password",
                "ca_file",
            ):
                assert summary[key], key
            context = ssl.create_default_context(cafile=summary["ca_file"])
            with httpx.Client(verify=context) as client:
                assert client.get(f"{summary['resco_url']}/_emulator/health").json()["organizations"] == [
                    "contoso"
                ]
                discovery = client.get(f"{summary['authority']}/v2.0/.well-known/openid-configuration")
                assert discovery.status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=20)
        code = process.returncode
    assert code == 0, stderr


def test_fault_and_approve_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with EmulatorPair(tmp_path, dataverse_factory=placeholder_dataverse) as pair:
        common = ["--ca", str(pair.ca_path)]
        assert (
            main(["fault", "--url", pair.resco_url, "--throttle-burst", "2", "--latency-ms", "5", *common])
            == 0
        )
        shown = json.loads(capsys.readouterr().out)
        assert shown["throttle_burst"] == 2 and shown["latency_ms"] == 5
        assert main(["fault", "--url", pair.resco_url, "--reset", *common]) == 0
        assert json.loads(capsys.readouterr().out)["throttle_burst"] == 0

        context = ssl.create_default_context(cafile=str(pair.ca_path))
        with httpx.Client(verify=context) as client:
            flow = client.post(
                f"{pair.authority}/oauth2/v2.0/devicecode",
                data={
                    "client_id": pair.public_client_id,
                    "scope": f"{pair.dataverse_url}/user_impersonation",
                },
            ).json()
            assert (
                main(
                    [
                        "approve-device-code",
                        flow["user_code"],
                        "--url",
                        pair.identity_url,
                        "--data-dir",
                        str(tmp_path),
                    ]
                )
                == 0
            )
            assert json.loads(capsys.readouterr().out)["username"] == pair.user_upn
            token = client.post(
                f"{pair.authority}/oauth2/v2.0/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                    "client_id": pair.public_client_id,
                    "device_code": flow["device_code"],
                },
            )
            assert token.status_code == 200
        assert main(["approve-device-code", "NOSUCHCODE", "--url", pair.identity_url, *common]) == 1
