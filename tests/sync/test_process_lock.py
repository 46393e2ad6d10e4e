"""Two processes never sync one profile at once; a killed holder leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crmsync_desktop.sync.process_lock import ProcessLock, ProfileBusyError

HOLD = (
    "import sys, time; from pathlib import Path; from crmsync_desktop.sync.process_lock import ProcessLock;"
    "lock = ProcessLock(Path(sys.argv[1]), 'Contoso'); lock.acquire(); print('held', flush=True); time.sleep(60)"
)


def test_second_holder_is_refused_with_the_pid(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(ProfileBusyError) as info:
            ProcessLock(tmp_path, "Contoso").acquire()
        assert f"process {child.pid}" in info.value.message
        ProcessLock(tmp_path, "Fabrikam").acquire()  # other profiles are free
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    lock = ProcessLock(tmp_path, "Contoso")  # the kill released it: no stale lock
    lock.acquire()
    assert lock.held
    lock.release()


def test_reentrant_in_one_process_and_released(tmp_path: Path) -> None:
    with ProcessLock(tmp_path, "A/B weird name") as lock:
        lock.acquire()  # idempotent
        assert lock.path.name == "A_B_weird_name.lock"
    again = ProcessLock(tmp_path, "A/B weird name")
    again.acquire()
    assert again.held
    again.release()
    assert not again.held
