"""Where the app keeps its files: platformdirs locations, overridable for tests and portable use.

Precedence: an explicit ``--data-dir`` argument, then the ``CRMSYNC_HOME`` environment variable,
then the platform's standard folders. With an override every folder lives under that one root, so
a test or a USB-stick install never touches the user's real profile. Nothing is created at import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "crmsync-desktop"
APP_AUTHOR = "crmsync"
HOME_ENV = "CRMSYNC_HOME"


@dataclass(frozen=True, slots=True)
class AppPaths:
    """The folders and files of one installation."""

    data_dir: Path
    config_dir: Path
    log_dir: Path
    cache_dir: Path

    @property
    def database(self) -> Path:
        return self.data_dir / "crmsync.sqlite3"

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "crmsync.log"

    @property
    def token_cache(self) -> Path:
        """MSAL token cache, encrypted by the OS (too large for the Windows credential store)."""
        return self.cache_dir / "msal_token_cache.bin"

    def ensure(self) -> AppPaths:
        """Create the folders (owner-only where the platform allows) and return self."""
        for folder in (self.data_dir, self.config_dir, self.log_dir, self.cache_dir, self.backups_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


def resolve_paths(data_dir: str | os.PathLike[str] | None = None) -> AppPaths:
    """Return the app's folders; an explicit ``data_dir`` or ``CRMSYNC_HOME`` puts them all under one root."""
    root = data_dir if data_dir is not None else os.environ.get(HOME_ENV) or None
    if root is not None:
        base = Path(root).expanduser().resolve()
        return AppPaths(
            data_dir=base / "data", config_dir=base / "config", log_dir=base / "logs", cache_dir=base / "cache"
        )
    dirs = platformdirs.PlatformDirs(APP_NAME, APP_AUTHOR)
    return AppPaths(
        data_dir=Path(dirs.user_data_dir),
        config_dir=Path(dirs.user_config_dir),
        log_dir=Path(dirs.user_log_dir),
        cache_dir=Path(dirs.user_cache_dir),
    )
