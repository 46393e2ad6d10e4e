"""``DataverseOrg``: one emulated organization backed by its own SQLite file, plus its run-time admin API.

The org owns the SQLite connection (one connection, guarded by a lock: SQLite has one writer anyway),
the metadata model, the org-wide row-version counter, the configuration (limits, latency, faults,
change-tracking token lifetime, Resco tracking) and the clock. The HTTP layer (``app.py``) and the
seed generator work through it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import standard, tracking
from .config import Faults, Performance, ServiceLimits, as_dict, update_dataclass
from .metadata import Metadata, q
from .values import fmt_dt

_STATE_DDL = """
CREATE TABLE IF NOT EXISTS _state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _tombstone (entity TEXT NOT NULL, id TEXT NOT NULL, versionnumber INTEGER NOT NULL,
    deletedon TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_tombstone ON _tombstone (entity, versionnumber);
"""
FIRST_VERSION = 100000
DEFAULT_CHANGE_TRACKING_DAYS = 7  # the documented current default of ExpireChangeTrackingInDays


@dataclass(frozen=True, slots=True)
class Caller:
    """The systemuser a request runs as."""

    userid: str
    businessunitid: str
    object_id: str
    fullname: str


class DataverseOrg:
    """An emulated Dataverse organization (see ``create`` / ``open``)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self.lock = threading.RLock()
        self.md = Metadata(conn)
        self.md.on_entity_created = self._publish_bulk_filters  # type: ignore[method-assign]
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
        self._tx_depth = 0
        info = json.loads(self._state("org"))
        self.url: str = info["url"]
        self.base_url: str | None = info.get("base_url")
        self.name: str = info["name"]
        self.unique_name: str = info["unique_name"]
        self.org_id: str = info["org_id"]
        self.root_business_unit_id: str = info["root_business_unit_id"]
        self.system_user_id: str = info["system_user_id"]
        cfg = json.loads(self._state("config"))
        self.limits = ServiceLimits(**cfg["limits"])
        self.performance = Performance(**cfg["performance"])
        self.faults = Faults(**cfg["faults"])
        legacy_tracking: dict[str, Any] = cfg.get("tracking") or {}
        self.expired_below_version: int = cfg["expired_below_version"]
        self.denied_privileges: dict[str, list[str]] = cfg["denied_privileges"]
        self._version = int(self._state("version"))
        self.md.load()
        self.callers: dict[str, Caller] = {}
        self.listeners: list[Callable[[str], None]] = []  # notified on admin changes (the app resets dice)
        if tracking.CONFIG_ENTITY not in self.md.entities:
            self._upgrade_tracking_config(legacy_tracking)
        self._request_lock = threading.Lock()
        self.request_counts: Counter[str] = Counter()  # "GET accounts" -> data requests received (not persisted)

    # ---- lifecycle -----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, url: str = "https://contoso.crm.dynamics.com", name: str = "Contoso",
               unique_name: str | None = None, org_id: str | None = None, base_url: str | None = None,
               limits: ServiceLimits | None = None, performance: Performance | None = None,
               faults: Faults | None = None,
               change_tracking_days: int = DEFAULT_CHANGE_TRACKING_DAYS) -> DataverseOrg:
        """Create a new org file with the standard schema (the file must not exist yet)."""
        path = Path(path)
        if path.exists():
            raise FileExistsError(path)
        conn = _connect(path)
        conn.executescript(_STATE_DDL)
        Metadata.create_tables(conn)
        org_id = org_id or str(uuid.uuid4())
        ids = uuid.UUID(org_id)
        info = {"url": url.rstrip("/"), "base_url": base_url.rstrip("/") if base_url else None, "name": name,
                "unique_name": unique_name or name.lower().replace(" ", ""), "org_id": org_id,
                "root_business_unit_id": str(uuid.uuid5(ids, "root-business-unit")),
                "system_user_id": str(uuid.uuid5(ids, "SYSTEM"))}
        cfg = {"limits": as_dict(limits or ServiceLimits()), "performance": as_dict(performance or Performance()),
               "faults": as_dict(faults or Faults()), "tracking": tracking.default_config(),
               "expired_below_version": 0, "denied_privileges": {}}
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO _state VALUES (?,?)", [
            ("org", json.dumps(info)), ("config", json.dumps(cfg)), ("version", str(FIRST_VERSION))])
        b = standard.build_standard_schema()
        md = Metadata(conn)
        md.install(b.entities, b.attributes, b.relationships, b.keys)
        conn.execute("COMMIT")
        org = cls(path, conn)
        org._bootstrap(change_tracking_days)
        return org

    @classmethod
    def open(cls, path: str | Path, *, url: str | None = None, base_url: str | None = None) -> DataverseOrg:
        """Open an existing org file; ``url``/``base_url`` replace the stored ones (e.g. a new port)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(path)
        conn = _connect(path)
        if url is not None or base_url is not None:
            row = conn.execute("SELECT value FROM _state WHERE key = 'org'").fetchone()
            info = json.loads(row[0])
            if url is not None:
                info["url"] = url.rstrip("/")
            if base_url is not None:
                info["base_url"] = base_url.rstrip("/")
            conn.execute("UPDATE _state SET value = ? WHERE key = 'org'", (json.dumps(info),))
        return cls(path, conn)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def __enter__(self) -> DataverseOrg:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bootstrap(self, change_tracking_days: int) -> None:
        from .records import insert_raw

        now = self.now_text()
        with self.transaction():
            insert_raw(self, "businessunit", {"businessunitid": self.root_business_unit_id, "name": self.name,
                                              "isdisabled": 0}, self.system_user_id, now)
            insert_raw(self, "systemuser", {"systemuserid": self.system_user_id, "fullname": "SYSTEM",
                                            "lastname": "SYSTEM", "domainname": "",
                                            "businessunitid": self.root_business_unit_id,
                                            "businessunitid__type": "businessunit", "isdisabled": 0,
                                            "accessmode": 1}, self.system_user_id, now)
            insert_raw(self, "organization", {"organizationid": self.org_id, "name": self.name,
                                              "expirechangetrackingindays": change_tracking_days},
                       self.system_user_id, now)
            ids = uuid.UUID(self.org_id)
            message_ids = {}
            for m in standard.SDK_MESSAGES:
                message_ids[m] = str(uuid.uuid5(ids, f"sdkmessage:{m}"))
                insert_raw(self, "sdkmessage", {"sdkmessageid": message_ids[m], "name": m, "isprivate": 0,
                                                "categoryname": "Bulk" if m.endswith("Multiple") else "Data"},
                           self.system_user_id, now)
            for ent in self.md.entities.values():
                if ent.is_intersect:
                    continue
                for m in standard.SDK_MESSAGES:
                    if m in standard.BULK_MESSAGES and ent.logical not in standard.BULK_TABLES:
                        continue
                    if m in ("Assign",) and not ent.user_owned:
                        continue
                    self._filter_row(message_ids[m], m, ent.logical, now)

    def _filter_row(self, message_id: str, message: str, logical: str, now: str) -> None:
        from .records import insert_raw

        insert_raw(self, "sdkmessagefilter", {
            "sdkmessagefilterid": str(uuid.uuid5(uuid.UUID(self.org_id), f"filter:{message}:{logical}")),
            "name": f"{message} {logical}", "sdkmessageid": message_id, "sdkmessageid__type": "sdkmessage",
            "primaryobjecttypecode": logical, "secondaryobjecttypecode": "none", "isvisible": 1,
            "iscustomprocessingstepallowed": 1, "availability": 4}, self.system_user_id, now)

    def _publish_bulk_filters(self, logical: str) -> None:
        now = self.now_text()
        for m in standard.SDK_MESSAGES:
            row = self.conn.execute("SELECT sdkmessageid FROM sdkmessage WHERE name = ?", (m,)).fetchone()
            if row and (m != "Assign" or "ownerid" in self.md.entities[logical].attrs):
                self._filter_row(row[0], m, logical, now)

    # ---- state -----------------------------------------------------------------------------------
    def _state(self, key: str) -> str:
        row = self.conn.execute("SELECT value FROM _state WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise ValueError(f"{self.path} is not an emulated Dataverse org (missing {key})")
        return str(row[0])

    def save_config(self) -> None:
        cfg = {"limits": as_dict(self.limits), "performance": as_dict(self.performance),
               "faults": as_dict(self.faults), "tracking": tracking.default_config(),
               "expired_below_version": self.expired_below_version, "denied_privileges": self.denied_privileges}
        with self.lock:
            self.conn.execute("UPDATE _state SET value = ? WHERE key = 'config'", (json.dumps(cfg),))
        for listener in list(self.listeners):
            listener("config")

    def now(self) -> dt.datetime:
        return self.clock()

    def now_text(self) -> str:
        return fmt_dt(self.clock())

    def next_version(self) -> int:
        self._version += 1
        return self._version

    @property
    def current_version(self) -> int:
        return self._version

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Atomic unit of work; nests with savepoints (change sets inside ``$batch``)."""
        with self.lock:
            depth = self._tx_depth
            name = f"sp{depth}"
            self.conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {name}")
            self._tx_depth += 1
            start_version = self._version
            try:
                yield
            except BaseException:
                self._tx_depth -= 1
                if depth == 0:
                    self.conn.execute("ROLLBACK")
                else:
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
                if start_version > self._version:  # pragma: no cover - defensive
                    self._version = start_version
                raise
            self._tx_depth -= 1
            if depth == 0:
                self.conn.execute("UPDATE _state SET value = ? WHERE key = 'version'", (str(self._version),))
                self.conn.execute("COMMIT")
            else:
                self.conn.execute(f"RELEASE {name}")

    # ---- run-time admin API ----------------------------------------------------------------------
    @property
    def change_tracking_days(self) -> int:
        with self.lock:
            row = self.conn.execute("SELECT expirechangetrackingindays FROM organization").fetchone()
        return int(row[0])

    @change_tracking_days.setter
    def change_tracking_days(self, days: int) -> None:
        with self.lock, self.transaction():
            self.conn.execute("UPDATE organization SET expirechangetrackingindays = ?, versionnumber = ?",
                              (int(days), self.next_version()))

    def set_faults(self, **values: Any) -> None:
        """Change injected faults, e.g. ``set_faults(error_rate=0.1, drop_rate=0.05)``."""
        update_dataclass(self.faults, values)
        self.save_config()

    def clear_faults(self) -> None:
        self.faults = Faults()
        self.save_config()

    def set_offline(self, offline: bool = True) -> None:
        self.set_faults(offline=offline)

    def throttle_burst(self, count: int, retry_after_s: int = 5) -> None:
        self.set_faults(throttle_burst=count, throttle_retry_after_s=retry_after_s)

    def set_limits(self, **values: Any) -> None:
        """Change service-protection limits, e.g. ``set_limits(enabled=False)``."""
        update_dataclass(self.limits, values)
        self.save_config()

    def set_performance(self, **values: Any) -> None:
        """Change ``latency_ms`` / ``cost_per_record_ms``."""
        update_dataclass(self.performance, values)
        self.save_config()

    def expire_delta_tokens(self) -> None:
        """Every delta token issued so far fails with ExpiredVersionStamp from now on."""
        with self.lock:
            self.expired_below_version = self.next_version()
            self.conn.execute("UPDATE _state SET value = ? WHERE key = 'version'", (str(self._version),))
        self.save_config()

    @property
    def tracking(self) -> dict[str, Any]:
        """The Resco plugin setup as read from ``resco_mobiletrackingconfig`` (see ``tracking.config_rows``)."""
        with self.lock:
            return tracking.config_rows(self.conn)

    def configure_tracking(self, entity: str, *, delete: bool | None = None, owner: bool | None = None) -> None:
        """Resco plugin setup for one table: track deletions and/or ownership changes (writes the config row)."""
        self.md.entity(entity)
        self._write_tracking_config("resco_entityname", entity,
                                    {"resco_trackdelete": delete, "resco_trackowner": owner})

    def configure_relationship_tracking(self, schema_name: str, enabled: bool = True) -> None:
        """Resco plugin setup for one N:N relationship: track disassociations (writes the config row)."""
        rel = self.md.relationships.get(schema_name)
        if rel is None or rel["RelationshipType"] != "ManyToManyRelationship":
            raise KeyError(f"no many-to-many relationship {schema_name!r}")
        self._write_tracking_config("resco_relationshipname", schema_name, {"resco_trackdisassociate": enabled})

    def _write_tracking_config(self, column: str, name: str, flags: dict[str, bool | None]) -> None:
        """Update the configuration row(s) of a table / relationship as SYSTEM, or create one."""
        from .records import insert_raw, write_columns

        values = {k: int(bool(v)) for k, v in flags.items() if v is not None}
        ent = self.md.entities[tracking.CONFIG_ENTITY]
        with self.transaction():
            rows = self.conn.execute(f"SELECT {q(ent.pk)} FROM {q(ent.logical)} WHERE {q(column)} = ? "
                                     "COLLATE NOCASE", (name,)).fetchall()
            for (rid,) in rows:
                write_columns(self, None, ent, rid, values)
            if not rows:
                insert_raw(self, ent.logical, {"resco_name": name, column: name, "resco_trackdelete": 0,
                                               "resco_trackowner": 0, "resco_trackdisassociate": 0, **values},
                           self.system_user_id, self.now_text())

    def _upgrade_tracking_config(self, legacy: dict[str, Any]) -> None:
        """An org file from before ``resco_mobiletrackingconfig``: add the table, move the old JSON setup into it."""
        b = standard.SchemaBuilder()
        tracking.add_config_schema(b)
        with self.transaction():
            self.md.install_partial(b.entities, b.attributes, b.relationships, b.keys)
            self.md._create_physical(self.md.entities[tracking.CONFIG_ENTITY])
            self._publish_bulk_filters(tracking.CONFIG_ENTITY)
        for entity, flags in (legacy.get("entities") or {}).items():
            if entity in self.md.entities:
                self.configure_tracking(entity, delete=bool(flags.get("delete")), owner=bool(flags.get("owner")))
        for schema_name, enabled in (legacy.get("relationships") or {}).items():
            if schema_name in self.md.relationships:
                self.configure_relationship_tracking(schema_name, bool(enabled))

    def deny_privilege(self, object_id: str, privilege: str) -> None:
        """Make a principal lack a privilege such as ``prvWriteAccount`` (403 PrivilegeDenied)."""
        denied = self.denied_privileges.setdefault(object_id, [])
        if privilege not in denied:
            denied.append(privilege)
        self.save_config()

    def allow_privilege(self, object_id: str, privilege: str) -> None:
        denied = self.denied_privileges.get(object_id, [])
        if privilege in denied:
            denied.remove(privilege)
        self.save_config()

    def config_snapshot(self) -> dict[str, Any]:
        return {"url": self.url, "base_url": self.base_url, "name": self.name, "unique_name": self.unique_name,
                "org_id": self.org_id, "root_business_unit_id": self.root_business_unit_id,
                "change_tracking_days": self.change_tracking_days, "limits": as_dict(self.limits),
                "performance": as_dict(self.performance), "faults": as_dict(self.faults),
                "tracking": self.tracking, "denied_privileges": self.denied_privileges,
                "expired_below_version": self.expired_below_version}

    # ---- request counter (tests assert request costs; in memory, never persisted) ---------------
    def count_request(self, method: str, path: str) -> None:
        """Count one data request under ``"<METHOD> <first path segment without key or query>"``."""
        segment = path.split("/", 1)[0].split("(", 1)[0] or "/"
        with self._request_lock:
            self.request_counts[f"{method.upper()} {segment}"] += 1

    def request_counts_snapshot(self) -> dict[str, Any]:
        with self._request_lock:
            counts = dict(sorted(self.request_counts.items()))
        return {"total": sum(counts.values()), "counts": counts}

    def reset_request_counts(self) -> None:
        with self._request_lock:
            self.request_counts.clear()

    def count(self, entity: str) -> int:
        with self.lock:
            return int(self.conn.execute(f"SELECT COUNT(*) FROM {q(entity)}").fetchone()[0])


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA mmap_size=1073741824")  # reads from the mapped file, without a read() per page
    return conn
