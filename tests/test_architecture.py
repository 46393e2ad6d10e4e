"""The architecture is enforced, not hoped for: the import contracts hold, and would catch a violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS, "import-linter is part of the [test] extra"
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "crmsync_desktop", tmp_path / "crmsync_desktop", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contracts_hold_on_a_copy(package_copy: Path) -> None:
    result = _lint(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("sync/_violation.py", "import PySide6.QtCore\n", "Qt-free"),
        ("store/_violation.py", "import qasync\n", "Qt-free"),
        ("sync/_violation.py", "from crmsync_desktop.views import main_window\n", "Layers"),
        ("sync/_violation.py", "from crmsync_desktop.emulator import auth_protocol\n", "never imports the emulator"),
        ("emulator/_violation.py", "from crmsync_desktop import errors\n", "shares no code"),
    ],
)
def test_a_deliberate_violation_fails(package_copy: Path, module: str, source: str, broken: str) -> None:
    (package_copy / "crmsync_desktop" / module).write_text(source)
    result = _lint(package_copy)
    assert result.returncode != 0
    assert broken in result.stdout
    assert "BROKEN" in result.stdout


def test_no_import_time_side_effects() -> None:
    """Importing the engine, store and CLI must not pull in Qt or touch the data folder."""
    code = (
        "import sys, crmsync_desktop.cli, crmsync_desktop.sync.profiles, crmsync_desktop.auth.credentials;"
        "bad=[m for m in sys.modules if m.startswith(('PySide6','qasync','shiboken6'))];"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "CRMSYNC_HOME": "/nonexistent/crmsync-test"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert not Path("/nonexistent/crmsync-test").exists()
