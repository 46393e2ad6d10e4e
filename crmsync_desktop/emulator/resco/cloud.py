"""The set of organizations one emulated Resco Cloud server hosts (``data_dir/resco/{org}.sqlite``).

Real Resco Cloud provisions organizations through its sign-up pages (resco.md §1.2); the
emulator does it through ``/_emulator/orgs`` and this registry, which reopens existing files so
an emulator restart keeps its organizations.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from crmsync_desktop.emulator.resco.schema import SchemaError
from crmsync_desktop.emulator.resco.store import NotFound, RescoOrg

__all__ = ["RescoCloud"]

_ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class RescoCloud:
    def __init__(self, data_dir: Path | str) -> None:
        self.folder = Path(data_dir) / "resco"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._orgs: dict[str, RescoOrg] = {}
        for path in sorted(self.folder.glob("*.sqlite")):
            self._orgs[path.stem] = RescoOrg(path)

    def names(self) -> list[str]:
        return sorted(self._orgs)

    def get(self, name: str) -> RescoOrg:
        try:
            return self._orgs[name.lower()]
        except KeyError:
            raise NotFound(f"Organization '{name}' does not exist.") from None

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._orgs

    def provision(
        self, name: str, *, username: str, password: str, fullname: str = "Administrator"
    ) -> RescoOrg:
        key = name.lower()
        if not _ORG_NAME.match(key):
            raise SchemaError(f"Invalid organization name '{name}': lower-case letters, digits and '-'.")
        with self._lock:
            if key in self._orgs:
                raise SchemaError(f"Organization '{name}' already exists.")
            org = RescoOrg.provision(
                self.folder / f"{key}.sqlite", key, username=username, password=password, fullname=fullname
            )
            self._orgs[key] = org
        return org

    def delete(self, name: str) -> None:
        with self._lock:
            org = self.get(name)
            org.close()
            del self._orgs[org.name]
            for suffix in ("", "-wal", "-shm"):
                Path(f"{org.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        for org in self._orgs.values():
            org.close()
