"""Plain domain values shared by every layer: connection profiles, entity configuration, schedules.

These are frozen dataclasses and enums, so the store, the configuration file format, the engine
and the console all speak of an "organization", an "entity", a "sync filter" or an "offline
transaction" the same way, and no ORM row or HTTP response ever crosses a layer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime, time


class ServerKind(enum.StrEnum):
    """What product the server (master) organization runs."""

    DATAVERSE = "dataverse"
    RESCO = "resco"  # experimental: another Resco Cloud organization as the server


class AuthKind(enum.StrEnum):
    """How the console signs in to an organization."""

    CLIENT_SECRET = "client_secret"
    CERTIFICATE = "certificate"
    DEVICE_CODE = "device_code"
    INTERACTIVE = "interactive"
    PASSWORD = "password"  # Resco Cloud basic authentication


class ConnectionState(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"


class DeletionStrategy(enum.StrEnum):
    """How deletions and ownership changes on the server reach the client for one entity."""

    OFF = "off"  # fastest: incremental only, nothing removed
    SWEEP = "sweep"  # Sync Deletion: id-only sweep of the filtered server set
    TRACKING = "tracking"  # Advanced sync deletion: resco_mobiletracking records
    CHANGE_TRACKING = "change_tracking"  # Dataverse change-tracking tombstones


class ConflictPolicy(enum.StrEnum):
    """Who wins when a record changed on both sides since the last sync.

    Server wins (default): the client's change is dropped and the server's version written back to
    the client. Client wins: only the fields the client changed are sent, overwriting the server's
    values of those fields. Client wins (full): the whole client record is sent. Newer wins: the
    later modification decides between server wins and client wins. Manual: the transaction waits
    in Error with both versions until the admin sets it to Pending (client wins) or archives it.
    """

    SERVER_WINS = "server_wins"
    CLIENT_WINS = "client_wins"
    NEWER_WINS = "newer_wins"
    CLIENT_WINS_FULL = "client_wins_full"
    MANUAL = "manual"


class TransactionStatus(enum.StrEnum):
    """Status of an offline transaction (a client change on its way to the server)."""

    PENDING = "Pending"
    PROCESSED = "Processed"
    ERROR = "Error"
    ARCHIVED = "Archived"


class TransactionOperation(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ASSOCIATE = "associate"
    DISASSOCIATE = "disassociate"
    ASSIGN = "assign"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunTrigger(enum.StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    CONNECT = "connect"
    UPDATE_SERVER = "update_server"
    CLI = "cli"


DEFAULT_SYNC_INTERVAL_MINUTES = 60


@dataclass(frozen=True, slots=True)
class EntityConfig:
    """What the admin chose for one entity: sync it or not, which records, deletions, conflicts.

    Filters are FetchXML documents (``<fetch><entity><filter>…``), the format Resco itself uses;
    an empty string means "no filter" (all records).
    """

    logical_name: str
    enabled: bool = True
    sync_filter: str = ""
    upload_filter: str = ""
    sync_deletion: bool = False
    deletion_strategy: DeletionStrategy = DeletionStrategy.OFF
    conflict_policy: ConflictPolicy = ConflictPolicy.SERVER_WINS
    fields: tuple[str, ...] = ()  # empty: every field the client organization has


_DAILY_AT_RE = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def parse_daily_at(text: str) -> str:
    """A time of day as ``"HH:MM"`` (24-hour clock); ``"6:30"`` becomes ``"06:30"``.

    Raises:
        ValueError: ``text`` is not a time of day from 00:00 to 23:59.
    """
    match = _DAILY_AT_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time of day; use HH:MM on the 24-hour clock, like 06:30")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """The periodic sync job of a profile: every ``interval_minutes``, or once a day at ``daily_at``.

    ``daily_at`` is a wall-clock time ``"HH:MM"`` in the machine's local time zone; when it is set
    the job runs daily and ``interval_minutes`` is only kept for switching back.
    """

    enabled: bool = True
    interval_minutes: int = DEFAULT_SYNC_INTERVAL_MINUTES
    daily_at: str | None = None

    @property
    def daily_time(self) -> time | None:
        """``daily_at`` as a ``time`` (None: the interval schedule, or an unreadable time)."""
        if self.daily_at is None:
            return None
        try:
            hours, minutes = parse_daily_at(self.daily_at).split(":")
        except ValueError:
            return None
        return time(int(hours), int(minutes))


@dataclass(frozen=True, slots=True)
class ConnectionProfile:
    """One server/client organization pair. Never holds a secret: those live in the OS keyring
    (a certificate's file path is kept here; its passphrase is not)."""

    name: str
    server_kind: ServerKind = ServerKind.DATAVERSE
    server_url: str = ""
    server_auth_kind: AuthKind = AuthKind.CLIENT_SECRET
    tenant_id: str = ""
    client_id: str = ""
    server_user: str = ""
    client_url: str = ""
    client_user: str = ""
    state: ConnectionState = ConnectionState.DISCONNECTED
    metadata_updated_at: datetime | None = None
    verify_tls: bool = True
    certificate_path: str = ""
    """Certificate sign-in (``AuthKind.CERTIFICATE``): the absolute path of a PEM or PFX file with the
    private key. A path, not a secret: the file's passphrase is in the OS keyring."""


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    """Everything the Export/Import file carries for one profile (never secrets)."""

    profile: ConnectionProfile
    entities: tuple[EntityConfig, ...] = field(default=())
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
