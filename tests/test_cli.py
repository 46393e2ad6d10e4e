"""The headless CLI: exit codes, --json output, export/import through the real store."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crmsync_desktop import __version__
from crmsync_desktop.cli import main
from crmsync_desktop.domain import ConnectionProfile, ConnectionState, EntityConfig, ProfileConfig
from crmsync_desktop.sync.config_file import export_config

CONFIG = ProfileConfig(
    profile=ConnectionProfile(name="Fabrikam", server_url="https://fabrikam.crm.dynamics.com",
                              client_url="https://eu.rescocrm.com", client_user="it@fabrikam.com"),
    entities=(EntityConfig("account"), EntityConfig("lead", enabled=False)),
)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_import_list_export_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "fabrikam.json"
    source.write_bytes(export_config(CONFIG))
    assert main(["--json", "config", "import", str(source)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True, "result": {"profile": "Fabrikam", "entities": 2, "enabled": 1}
    }
    assert main(["--json", "profiles", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)["result"]
    assert [p["name"] for p in listed] == ["Fabrikam"]
    target = tmp_path / "out.json"
    assert main(["config", "export", "Fabrikam", str(target)]) == 0
    assert "Exported profile 'Fabrikam'" in capsys.readouterr().out
    a, b = json.loads(source.read_bytes()), json.loads(target.read_bytes())
    a.pop("exported_at"), b.pop("exported_at")
    assert a == b


def test_bad_file_exit_code_and_json_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(export_config(CONFIG)[:-40])  # truncated
    assert main(["--json", "config", "import", str(bad)]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["error"]["type"] == "ConfigFileError"
    assert main(["--json", "profiles", "list"]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == []  # nothing was imported


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    return json.loads(capsys.readouterr().out)["result"]  # type: ignore[no-any-return]


def test_schedule_every_daily_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "fabrikam.json"
    connected = replace(CONFIG, profile=replace(CONFIG.profile, state=ConnectionState.CONNECTED))
    source.write_bytes(export_config(connected))
    assert main(["config", "import", str(source)]) == 0
    capsys.readouterr()

    assert main(["--json", "schedule", "Fabrikam"]) == 0  # no option: show it
    shown = _json(capsys)
    assert (shown["changed"], shown["enabled"], shown["mode"], shown["interval_minutes"], shown["daily_at"]) == (
        False, True, "interval", 60, None
    )
    assert shown["state"] == "idle" and shown["next_run_at"] is not None  # never synced: due now

    before = datetime.now(UTC)
    assert main(["--json", "schedule", "Fabrikam", "--daily", "6:30"]) == 0
    daily = _json(capsys)
    assert (daily["changed"], daily["enabled"], daily["mode"], daily["interval_minutes"], daily["daily_at"]) == (
        True, True, "daily", 60, "06:30"
    )
    assert datetime.fromisoformat(str(daily["next_run_at"])) >= before.replace(microsecond=0)
    assert main(["schedule", "Fabrikam"]) == 0
    text = capsys.readouterr().out
    assert "Schedule of 'Fabrikam': daily at 06:30 (local time)." in text and "Next run at " in text

    assert main(["schedule", "Fabrikam", "--every", "15"]) == 0
    text = capsys.readouterr().out
    assert "Schedule of 'Fabrikam': every 15 min." in text and "picks this change up within a minute" in text
    assert main(["--json", "schedule", "Fabrikam", "--off"]) == 0
    off = _json(capsys)
    assert (off["enabled"], off["mode"], off["interval_minutes"], off["state"], off["next_run_at"]) == (
        False, "interval", 15, "disabled", None
    )

    assert main(["schedule", "Fabrikam", "--daily", "07:00"]) == 0  # switches it on again
    capsys.readouterr()
    target = tmp_path / "out.json"
    assert main(["config", "export", "Fabrikam", str(target)]) == 0
    assert json.loads(target.read_bytes())["schedule"] == {"enabled": True, "interval_minutes": 15, "daily_at": "07:00"}
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["schedule", "Fabrikam", "--daily", "24:00"], 2, "--daily: '24:00' is not a time of day"),
        (["schedule", "Fabrikam", "--every", "0"], 2, "--every 0: use 1 to 10080 minutes (one week)."),
        (["schedule", "Nobody", "--every", "5"], 8, "Nobody"),
    ],
)
def test_schedule_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    source = tmp_path / "fabrikam.json"
    source.write_bytes(export_config(CONFIG))
    assert main(["config", "import", str(source)]) == 0
    capsys.readouterr()
    assert main(argv) == code
    assert message in capsys.readouterr().err
    assert main(["--json", "schedule", "Fabrikam"]) == 0
    assert _json(capsys)["interval_minutes"] == 60  # nothing was changed
    assert main(["schedule", "Fabrikam"]) == 0
    assert "Not scheduled until the profile is connected ('crmsync connect Fabrikam')." in capsys.readouterr().out


def test_schedule_options_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["schedule", "Fabrikam", "--every", "5", "--off"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_unknown_profile_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "export", "Nobody", str(tmp_path / "x.json")]) == 8
    assert "Nobody" in capsys.readouterr().err


def test_console_script_runs_headless(tmp_path: Path) -> None:
    """The installed CLI never imports Qt (works on a machine without a display or Qt libraries)."""
    code = "import sys; from crmsync_desktop.cli import main; rc = main(['profiles','list']); " \
           "assert not [m for m in sys.modules if m.startswith('PySide6')]; sys.exit(rc)"
    result = subprocess.run([sys.executable, "-c", code, ], capture_output=True, text=True, timeout=120,
                            env={"CRMSYNC_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "No connection profiles yet" in result.stdout
