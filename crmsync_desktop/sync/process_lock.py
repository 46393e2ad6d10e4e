"""One process at a time per profile: an OS file lock, so the console and ``crmsync`` never sync the same profile twice.

The lock is advisory and held by an open file descriptor, so the OS releases it when the process
dies (even by kill -9): a crash never leaves a stale lock behind. The lock file records the pid
of the holder for the error message.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from types import TracebackType

from crmsync_desktop.errors import CrmSyncError


class ProfileBusyError(CrmSyncError):
    default_title = "Profile is busy"
    exit_code = 11


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


class ProcessLock:
    """A non-blocking exclusive lock on ``<lock_dir>/<name>.lock``."""

    def __init__(self, lock_dir: Path, name: str, *, purpose: str = "synchronizing") -> None:
        self.path = lock_dir / f"{_safe(name)}.lock"
        self.name = name
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ProfileBusyError naming the process that holds it."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (process {holder})" if holder else ""
            raise ProfileBusyError(
                f"Another crmsync process{who} is already {self.purpose} profile '{self.name}'. "
                "Wait for it to finish, or stop it (close the console or the 'crmsync run' service) and try again.",
                profile=self.name,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            _unlock(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode(errors="replace").strip()
    except OSError:
        return ""


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
