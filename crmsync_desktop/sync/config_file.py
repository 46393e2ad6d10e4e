"""Configuration Export/Import: one profile's settings as a versioned JSON file (docs/config-format.md).

``export_config`` writes a ``ProfileConfig`` (which has no secret fields) deterministically;
``parse_config`` reads one back, checking everything and raising ``ConfigFileError`` with the JSON
path of the first problem and what to do about it. It only returns a value: nothing is applied, so
a bad file never half-changes a profile. Keys that look like secrets are refused outright: secrets
live in the OS keyring and are never read from, or written to, a file.
"""

from __future__ import annotations

import difflib
import enum
import json
import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, TypeVar
from urllib.parse import urlsplit

from crmsync_desktop.domain import (
    AuthKind,
    ConflictPolicy,
    ConnectionProfile,
    ConnectionState,
    DeletionStrategy,
    EntityConfig,
    ProfileConfig,
    ScheduleConfig,
    ServerKind,
    parse_daily_at,
)
from crmsync_desktop.errors import ConfigFileError, FilterError
from crmsync_desktop.sync.filters import FilterMetadata, as_metadata, parse_filter, validate_filter

FORMAT_MARKER = "crmsync-desktop/config"
CURRENT_VERSION = 3
"""1: the first format. 2: ``schedule.daily_at`` (run once a day at a local time instead of every N
minutes). 3: ``profile.certificate_path`` (certificate sign-in: the file's path, never its content or
passphrase). Version 1 and 2 files stay importable: their schedule is the interval one (v1) and their
profile has no certificate file (v1, v2)."""
MAX_CONFIG_FILE_BYTES = 10 * 1024 * 1024
"""Files larger than this (10 MiB) are refused before they are parsed."""
MAX_INTERVAL_MINUTES = 7 * 24 * 60

Migration = Callable[[dict[str, Any]], dict[str, Any]]


def _v1_to_v2(document: dict[str, Any]) -> dict[str, Any]:
    """Version 2 only added the optional ``schedule.daily_at``: a version-1 schedule is an interval one."""
    return document


def _v2_to_v3(document: dict[str, Any]) -> dict[str, Any]:
    """Version 3 only added the optional ``profile.certificate_path``: a version-2 profile has no certificate file."""
    return document


MIGRATIONS: dict[int, Migration] = {1: _v1_to_v2, 2: _v2_to_v3}
"""``MIGRATIONS[n]`` turns a version-``n`` document into a version-``n + 1`` one (a pure dict → dict
function). When ``CURRENT_VERSION`` is bumped, add the step from the previous version here: files of
every version with an unbroken chain of steps up to ``CURRENT_VERSION`` stay importable."""

_SECRET_WORDS = (
    "secret",
    "password",
    "passwd",
    "pwd",
    "token",
    "private_key",
    "privatekey",
    "api_key",
    "apikey",
    "access_key",
    "credential",
    "certificate",
    "pfx",
    "pem",
)
_NOT_SECRETS = frozenset({"profile.certificate_path"})
"""Keys that contain a secret-looking word but hold no secret: where a secret is, never what it is."""
MAX_PATH_CHARS = 4096
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_TOP_KEYS = ("format", "version", "exported_at", "profile", "entities", "schedule")
_SECRETS_RULE = (
    "Secrets are never imported from files: remove it, import the file, then enter the secret in the "
    "connection dialog (it is kept in the OS keyring)."
)

E = TypeVar("E", bound=enum.Enum)
MetadataLike = FilterMetadata | Mapping[str, Mapping[str, Any]]
"""A ``FilterMetadata`` or a plain ``{entity: {attribute: type}}`` mapping (see ``MetadataMap.from_mapping``)."""


# --- export -------------------------------------------------------------------------------------


def format_datetime(value: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` (a naive value is taken as UTC)."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def config_to_document(cfg: ProfileConfig, *, exported_at: datetime | None = None) -> dict[str, Any]:
    """The JSON document (as plain dicts and lists) ``export_config`` writes."""
    p = cfg.profile
    return {
        "format": FORMAT_MARKER,
        "version": CURRENT_VERSION,
        "exported_at": format_datetime(exported_at or datetime.now(UTC).replace(microsecond=0)),
        "profile": {
            "name": p.name,
            "server_kind": p.server_kind.value,
            "server_url": p.server_url,
            "server_auth_kind": p.server_auth_kind.value,
            "tenant_id": p.tenant_id,
            "client_id": p.client_id,
            "server_user": p.server_user,
            "client_url": p.client_url,
            "client_user": p.client_user,
            "state": p.state.value,
            "metadata_updated_at": None
            if p.metadata_updated_at is None
            else format_datetime(p.metadata_updated_at),
            "verify_tls": p.verify_tls,
            "certificate_path": p.certificate_path,
        },
        "entities": [
            {
                "logical_name": e.logical_name,
                "enabled": e.enabled,
                "sync_filter": e.sync_filter,
                "upload_filter": e.upload_filter,
                "sync_deletion": e.sync_deletion,
                "deletion_strategy": e.deletion_strategy.value,
                "conflict_policy": e.conflict_policy.value,
                "fields": list(e.fields),
            }
            for e in cfg.entities
        ],
        "schedule": {
            "enabled": cfg.schedule.enabled,
            "interval_minutes": cfg.schedule.interval_minutes,
            "daily_at": cfg.schedule.daily_at,
        },
    }


def export_config(cfg: ProfileConfig, *, exported_at: datetime | None = None) -> bytes:
    """Serialize ``cfg`` as a configuration file: UTF-8 JSON, keys sorted, 2-space indent, final newline.

    Args:
        cfg: the profile's settings; it holds no secrets, so neither does the file.
        exported_at: the time stamped into the file (default: now, whole seconds). The output is a
            pure function of ``cfg`` and ``exported_at``.

    ``cfg`` is written as it is, not checked: ``parse_config`` is where a file is judged.
    """
    document = config_to_document(cfg, exported_at=exported_at)
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# --- import -------------------------------------------------------------------------------------


def _fail(path: str, problem: str, *, entity: str | None = None) -> ConfigFileError:
    return ConfigFileError(f"{path}: {problem}" if path else problem, entity=entity)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value[:60]!r}"
    return "a list" if isinstance(value, list) else "an object"


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _load_json(data: bytes) -> Any:
    if len(data) > MAX_CONFIG_FILE_BYTES:
        raise ConfigFileError(
            f"The file is {len(data):,} bytes; configuration files are at most {MAX_CONFIG_FILE_BYTES:,} bytes "
            "(10 MB). Check that you picked a crmsync-desktop configuration export."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(
            f"The file is not UTF-8 text (invalid byte at offset {exc.start}). "
            "Pick a crmsync-desktop configuration export, or save the file as UTF-8."
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark added by a Windows editor is harmless
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        if exc.pos >= len(text.rstrip()):
            raise ConfigFileError(
                f"The file ends unexpectedly at {where}: it looks truncated (an interrupted copy or "
                "download?). Export the configuration again."
            ) from None
        raise ConfigFileError(
            f"The file is not valid JSON: {exc.msg} at {where}. Export the configuration again, or fix "
            "the file at that position."
        ) from None
    except _DuplicateKeyError as exc:
        raise ConfigFileError(
            f"The key {exc.key!r} appears twice in one object; keep only one of them."
        ) from None
    except RecursionError:
        raise ConfigFileError("The file is nested too deeply to be a configuration file.") from None
    except ValueError as exc:  # NaN/Infinity, or an integer with thousands of digits
        raise ConfigFileError(f"The file is not valid JSON: {exc}.") from None


def supported_versions(
    migrations: Mapping[int, Migration] | None = None, current: int = CURRENT_VERSION
) -> tuple[int, ...]:
    """The format versions that can be read: the current one and every one migratable to it."""
    steps = MIGRATIONS if migrations is None else migrations
    versions = [current]
    while versions[0] - 1 in steps:
        versions.insert(0, versions[0] - 1)
    return tuple(versions)


def migrate_document(
    document: dict[str, Any],
    version: int,
    *,
    migrations: Mapping[int, Migration] | None = None,
    current: int = CURRENT_VERSION,
) -> dict[str, Any]:
    """Upgrade a version-``version`` document to ``current`` through ``MIGRATIONS``, one step at a time."""
    steps = MIGRATIONS if migrations is None else migrations
    supported = supported_versions(steps, current)
    listed = ", ".join(str(v) for v in supported)
    if version > current:
        raise _fail(
            "version",
            f"this file has format version {version}, written by a newer crmsync-desktop; "
            f"this version reads format version {listed}. Update crmsync-desktop, or "
            "export the configuration again from the version you use.",
        )
    if version not in supported:
        raise _fail("version", f"format version {version} is not supported; supported versions: {listed}.")
    while version < current:
        try:
            document = steps[version](dict(document))
        except (KeyError, TypeError, ValueError) as exc:
            raise _fail(
                "version", f"the file could not be upgraded from format version {version}: {exc}."
            ) from None
        version += 1
        document["version"] = version
    return document


def _find_secret_key(value: Any, path: str) -> str | None:
    if isinstance(value, dict):
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            normalized = key.lower().replace("-", "_")
            if child_path in _NOT_SECRETS and not isinstance(child, (dict, list)):
                continue  # its value is checked where it is read
            if any(word in normalized for word in _SECRET_WORDS):
                return child_path
            found = _find_secret_key(child, child_path)
            if found:
                return found
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found = _find_secret_key(child, f"{path}[{index}]")
            if found:
                return found
    return None


class _Reader:
    """Reads the version-current document, checking every field; stops at the first problem."""

    def __init__(self, known_entities: Collection[str] | None, metadata: MetadataLike | None) -> None:
        self._known = known_entities
        self._metadata = None if metadata is None else as_metadata(metadata)

    @staticmethod
    def _object(value: Any, path: str, allowed: Collection[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(path, f"expected an object {{…}}, got {_describe(value)}.")
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise _fail(
                    f"{path}.{key}" if path else key,
                    f"unknown field {key!r}.{hint} Allowed here: {', '.join(allowed)}. Remove it.",
                )
        return value

    @staticmethod
    def _str(obj: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = obj.get(key, default)
        if value is None:
            raise _fail(f"{path}.{key}", "this field is required.")
        if not isinstance(value, str):
            raise _fail(f"{path}.{key}", f"expected text, got {_describe(value)}.")
        return value

    @staticmethod
    def _bool(obj: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = obj.get(key, default)
        if not isinstance(value, bool):
            raise _fail(f"{path}.{key}", f"expected true or false, got {_describe(value)}.")
        return value

    @staticmethod
    def _enum(obj: dict[str, Any], key: str, path: str, cls: type[E], default: E) -> E:
        value = obj.get(key, default.value)
        allowed = ", ".join(str(member.value) for member in cls)
        if not isinstance(value, str):
            raise _fail(f"{path}.{key}", f"expected one of {allowed}; got {_describe(value)}.")
        try:
            return cls(value)
        except ValueError:
            raise _fail(f"{path}.{key}", f"{value!r} is not allowed; use one of: {allowed}.") from None

    @staticmethod
    def _url(obj: dict[str, Any], key: str, path: str) -> str:
        value = _Reader._str(obj, key, path, "")
        if not value:
            return value
        where = f"{path}.{key}"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise _fail(where, f"{value!r} is not a valid URL.") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
            raise _fail(
                where,
                f"{value!r} is not an http(s) URL; use the organization address, like "
                "https://contoso.crm.dynamics.com.",
            )
        if "@" in parts.netloc:
            raise _fail(where, f"the URL contains a user name or password. {_SECRETS_RULE}")
        return value

    @staticmethod
    def _datetime(obj: dict[str, Any], key: str, path: str) -> datetime | None:
        value = obj.get(key)
        if value is None:
            return None
        where = f"{path}.{key}"
        if not isinstance(value, str):
            raise _fail(where, f"expected an ISO-8601 date-time text or null, got {_describe(value)}.")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _fail(where, f"{value!r} is not an ISO-8601 date-time like 2024-05-31T08:00:00Z.") from None
        if parsed.tzinfo is None:
            raise _fail(where, f"{value!r} has no time zone; write it in UTC with a trailing Z.")
        return parsed.astimezone(UTC)

    def document(self, doc: dict[str, Any]) -> ProfileConfig:
        self._object(doc, "", _TOP_KEYS)
        self._datetime(doc, "exported_at", "")
        if "profile" not in doc:
            raise _fail("profile", "this field is required.")
        profile = self.profile(doc["profile"])
        raw_entities = doc.get("entities", [])
        if not isinstance(raw_entities, list):
            raise _fail("entities", f"expected a list […], got {_describe(raw_entities)}.")
        entities: list[EntityConfig] = []
        first_index: dict[str, int] = {}
        for index, raw in enumerate(raw_entities):
            entity = self.entity(raw, f"entities[{index}]")
            if entity.logical_name in first_index:
                raise _fail(
                    f"entities[{index}].logical_name",
                    f"{entity.logical_name!r} is listed twice (also entities[{first_index[entity.logical_name]}]); "
                    "keep one entry per entity.",
                    entity=entity.logical_name,
                )
            first_index[entity.logical_name] = index
            entities.append(entity)
        schedule = self.schedule(doc.get("schedule", {}))
        return ProfileConfig(profile=profile, entities=tuple(entities), schedule=schedule)

    def profile(self, value: Any) -> ConnectionProfile:
        path = "profile"
        obj = self._object(
            value,
            path,
            (
                "name",
                "server_kind",
                "server_url",
                "server_auth_kind",
                "tenant_id",
                "client_id",
                "server_user",
                "client_url",
                "client_user",
                "state",
                "metadata_updated_at",
                "verify_tls",
                "certificate_path",
            ),
        )
        name = self._str(obj, "name", path)
        if not name.strip() or len(name) > 200 or _CONTROL_RE.search(name):
            raise _fail("profile.name", "a profile name must be 1 to 200 printable characters.")
        client_id = self._str(obj, "client_id", path, "")
        if client_id and not _GUID_RE.match(client_id):
            raise _fail(
                "profile.client_id",
                f"{client_id!r} is not an application (client) id; it is a GUID "
                "like 51f81489-12ee-4a9e-aaae-a2591f45987d.",
            )
        tenant_id = self._str(obj, "tenant_id", path, "")
        if tenant_id and not _TENANT_RE.match(tenant_id):
            raise _fail(
                "profile.tenant_id",
                f"{tenant_id!r} is not a tenant id (a GUID or a domain name like contoso.onmicrosoft.com).",
            )
        return ConnectionProfile(
            name=name,
            server_kind=self._enum(obj, "server_kind", path, ServerKind, ServerKind.DATAVERSE),
            server_url=self._url(obj, "server_url", path),
            server_auth_kind=self._enum(obj, "server_auth_kind", path, AuthKind, AuthKind.CLIENT_SECRET),
            tenant_id=tenant_id,
            client_id=client_id,
            server_user=self._str(obj, "server_user", path, ""),
            client_url=self._url(obj, "client_url", path),
            client_user=self._str(obj, "client_user", path, ""),
            state=self._enum(obj, "state", path, ConnectionState, ConnectionState.DISCONNECTED),
            metadata_updated_at=self._datetime(obj, "metadata_updated_at", path),
            verify_tls=self._bool(obj, "verify_tls", path, True),
            certificate_path=self._certificate_path(obj, path),
        )

    @staticmethod
    def _certificate_path(obj: dict[str, Any], path: str) -> str:
        value = _Reader._str(obj, "certificate_path", path, "")
        where = f"{path}.certificate_path"
        if not value:
            return value
        if "-----BEGIN" in value or "PRIVATE KEY" in value.upper():
            raise _fail(where, f"this is the certificate's content, not the path of its file. {_SECRETS_RULE}")
        if _CONTROL_RE.search(value) or len(value) > MAX_PATH_CHARS or value != value.strip():
            raise _fail(
                where,
                f"expected the path of a certificate file (at most {MAX_PATH_CHARS} printable characters, no "
                "leading or trailing spaces).",
            )
        if not (PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()):
            raise _fail(
                where,
                f"{value!r} is a relative path; write the full path of the certificate file (like "
                "/etc/crmsync/contoso.pfx or C:\\crmsync\\contoso.pfx), since crmsync may run from any folder.",
            )
        return value

    def entity(self, value: Any, path: str) -> EntityConfig:
        obj = self._object(
            value,
            path,
            (
                "logical_name",
                "enabled",
                "sync_filter",
                "upload_filter",
                "sync_deletion",
                "deletion_strategy",
                "conflict_policy",
                "fields",
            ),
        )
        name = self._str(obj, "logical_name", path)
        if not _NAME_RE.match(name):
            raise _fail(
                f"{path}.logical_name",
                f"{name!r} is not an entity logical name (lower-case letters, digits and _, like 'account').",
            )
        if self._known is not None and name not in self._known:
            close = difflib.get_close_matches(name, list(self._known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise _fail(
                f"{path}.logical_name",
                f"unknown entity {name!r}: the server organization has no such "
                f"table.{hint} Remove the entry or update the server metadata.",
                entity=name,
            )
        attributes = None
        if self._metadata is not None:
            attributes = self._metadata.attributes_of(name)
            if attributes is None:
                raise _fail(
                    f"{path}.logical_name",
                    f"unknown entity {name!r}: the server metadata has no such "
                    "table. Remove the entry or update the server metadata.",
                    entity=name,
                )
        return EntityConfig(
            logical_name=name,
            enabled=self._bool(obj, "enabled", path, True),
            sync_filter=self._filter(obj, "sync_filter", path, name),
            upload_filter=self._filter(obj, "upload_filter", path, name),
            sync_deletion=self._bool(obj, "sync_deletion", path, False),
            deletion_strategy=self._enum(
                obj, "deletion_strategy", path, DeletionStrategy, DeletionStrategy.OFF
            ),
            conflict_policy=self._enum(
                obj, "conflict_policy", path, ConflictPolicy, ConflictPolicy.SERVER_WINS
            ),
            fields=self._fields(obj, path, name, attributes),
        )

    def _filter(self, obj: dict[str, Any], key: str, path: str, entity: str) -> str:
        text = self._str(obj, key, path, "")
        where = f"{path}.{key}"
        try:
            parsed = parse_filter(text, entity=entity)
            if self._metadata is not None:
                validate_filter(parsed, self._metadata, raise_on_problems=True)
        except FilterError as exc:
            raise _fail(where, exc.message, entity=entity) from None
        return text

    def _fields(
        self, obj: dict[str, Any], path: str, entity: str, attributes: Mapping[str, Any] | None
    ) -> tuple[str, ...]:
        value = obj.get("fields", [])
        where = f"{path}.fields"
        if not isinstance(value, list):
            raise _fail(where, f"expected a list of column names, got {_describe(value)}.")
        seen: set[str] = set()
        for index, item in enumerate(value):
            if not isinstance(item, str) or not _NAME_RE.match(item):
                raise _fail(f"{where}[{index}]", f"expected a column logical name, got {_describe(item)}.")
            if item in seen:
                raise _fail(f"{where}[{index}]", f"{item!r} is listed twice; keep it once.", entity=entity)
            if attributes is not None and item not in attributes:
                raise _fail(
                    f"{where}[{index}]",
                    f"unknown column {item!r} of {entity!r}. Remove it or update the server metadata.",
                    entity=entity,
                )
            seen.add(item)
        return tuple(value)

    def schedule(self, value: Any) -> ScheduleConfig:
        obj = self._object(value, "schedule", ("enabled", "interval_minutes", "daily_at"))
        interval = obj.get("interval_minutes", ScheduleConfig().interval_minutes)
        if isinstance(interval, bool) or not isinstance(interval, int):
            raise _fail(
                "schedule.interval_minutes", f"expected a whole number of minutes, got {_describe(interval)}."
            )
        if not 1 <= interval <= MAX_INTERVAL_MINUTES:
            raise _fail(
                "schedule.interval_minutes",
                f"{interval} is out of range; use 1 to {MAX_INTERVAL_MINUTES} minutes (one week).",
            )
        daily_at = obj.get("daily_at")
        if daily_at is not None:
            if not isinstance(daily_at, str):
                raise _fail(
                    "schedule.daily_at",
                    f'expected a time of day like "06:30" or null, got {_describe(daily_at)}.',
                )
            try:
                daily_at = parse_daily_at(daily_at)
            except ValueError:
                raise _fail(
                    "schedule.daily_at",
                    f"{daily_at!r} is not a time of day; use HH:MM on the 24-hour clock (local time), like "
                    "06:30, or null to run every interval_minutes.",
                ) from None
        return ScheduleConfig(
            enabled=self._bool(obj, "enabled", "schedule", True), interval_minutes=interval, daily_at=daily_at
        )


def parse_config(
    data: bytes,
    *,
    known_entities: Collection[str] | None = None,
    metadata: MetadataLike | None = None,
) -> ProfileConfig:
    """Read and check a configuration file; nothing is applied, the value is only returned.

    Args:
        data: the file's bytes (at most ``MAX_CONFIG_FILE_BYTES``).
        known_entities: if given, every entity must be one of these logical names.
        metadata: if given (a ``FilterMetadata`` or ``{entity: {attribute: type}}``), entities,
            fields and filters are also checked against the server's metadata (``validate_filter``).

    Raises:
        ConfigFileError: the first problem, prefixed by its JSON path (``entities[3].sync_filter``),
            saying what to do. Keys that look like secrets are always refused.
    """
    document = _load_json(data)
    if not isinstance(document, dict) or document.get("format") != FORMAT_MARKER:
        found = document.get("format") if isinstance(document, dict) else None
        detail = f" (its format is {found!r})" if found is not None else ""
        raise _fail(
            "format",
            f"this is not a crmsync-desktop configuration file{detail}; expected "
            f'"format": "{FORMAT_MARKER}". Pick a file made with Export Configuration.',
        )
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _fail("version", f"expected a whole number, got {_describe(version)}.")
    secret = _find_secret_key(document, "")
    if secret is not None:
        raise _fail(secret, f"this looks like a secret. {_SECRETS_RULE}")
    document = migrate_document(document, version)
    return _Reader(known_entities, metadata).document(document)
