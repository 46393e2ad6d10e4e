"""Connection profiles and their configuration files, for the console, the tray and the CLI alike.

Export writes a profile's settings (never its secrets) to the documented file format; Import
checks the whole file first and then replaces the profile's settings in one database transaction,
so a bad file changes nothing. File reading, parsing and database work all run off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from crmsync_desktop.domain import ConnectionProfile, ProfileConfig
from crmsync_desktop.errors import ConfigFileError, ProfileNotFoundError
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.sync.config_file import MAX_CONFIG_FILE_BYTES, export_config, parse_config

log = logging.getLogger(__name__)


class ProfileService:
    """Lists, exports and imports connection profiles stored in the local database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_profiles(self) -> list[ConnectionProfile]:
        return await repos.list_profiles(self._db)

    async def load_config(self, name: str) -> ProfileConfig:
        return await repos.load_profile_config(self._db, name)

    async def export_config(self, name: str) -> bytes:
        cfg = await repos.load_profile_config(self._db, name)
        return export_config(cfg)

    async def export_to_file(self, name: str, path: str | os.PathLike[str]) -> Path:
        """Write the profile's configuration to ``path`` atomically (temp file, then rename)."""
        data = await self.export_config(name)
        target = Path(path)

        def write() -> None:
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise ConfigFileError(
                f"Cannot write '{target}': {exc.strerror or exc}. Choose another folder.",
                title="Export failed",
            ) from exc
        log.info("Exported profile %r to %s", name, target)
        return target

    async def import_config(self, data: bytes) -> ProfileConfig:
        """Check ``data`` completely, then store it in one transaction; raise ConfigFileError otherwise."""
        known = await self._known_entities(data)
        cfg = await asyncio.to_thread(parse_config, data, known_entities=known)
        await repos.replace_profile_config(self._db, cfg)
        log.info("Imported configuration of profile %r (%d entities)", cfg.profile.name, len(cfg.entities))
        return cfg

    async def import_from_file(self, path: str | os.PathLike[str]) -> ProfileConfig:
        source = Path(path)

        def read() -> bytes:
            with source.open("rb") as fh:
                return fh.read(MAX_CONFIG_FILE_BYTES + 1)

        try:
            data = await asyncio.to_thread(read)
        except OSError as exc:
            raise ConfigFileError(f"Cannot read '{source}': {exc.strerror or exc}. Check the path.") from exc
        return await self.import_config(data)

    async def _known_entities(self, data: bytes) -> set[str] | None:
        """Entity names of the target profile's replicated metadata, when it has any.

        A profile that has never connected has no metadata yet; its entity names are then checked
        for form only, and against the server when it connects.
        """
        try:
            name = await asyncio.to_thread(_peek_profile_name, data)
            if name is None:
                return None
            snapshot = await repos.load_metadata_snapshot(self._db, name)
        except ProfileNotFoundError:
            return None
        names = {entity.logical_name for entity in snapshot.entities}
        return names or None


def _peek_profile_name(data: bytes) -> str | None:
    """The profile name in a configuration file, or None if the file is unreadable (parse reports why)."""
    import json

    try:
        document = json.loads(data[:MAX_CONFIG_FILE_BYTES])
        name = document["profile"]["name"]
    except (ValueError, TypeError, KeyError):
        return None
    return name if isinstance(name, str) else None
