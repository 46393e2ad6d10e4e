"""The headless CLI: exit codes, --json output, export/import through the real store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crmsync_desktop import __version__
from crmsync_desktop.cli import main
from crmsync_desktop.domain import ConnectionProfile, EntityConfig, ProfileConfig
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
