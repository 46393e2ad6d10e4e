"""Upload events, published on the engine's ``EventBus`` next to :mod:`crmsync_desktop.sync.events`.

Small frozen values, like the engine's own: the console's bridge turns them into signals (the
Offline Transactions tab refreshes its counts, the status bar shows whether the server is
reachable), the CLI prints them, tests record them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from crmsync_desktop.domain import ConflictPolicy, TransactionStatus

__all__ = ["ConflictLogged", "QueueChanged", "ServerReachability", "UploadEvent"]


@dataclass(frozen=True, slots=True)
class QueueChanged:
    """The offline transaction queue of ``profile`` changed; ``counts`` has every status."""

    profile: str
    counts: Mapping[TransactionStatus, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServerReachability:
    """Whether delivery can reach the server; published when it changes.

    ``retry_at`` is when delivery tries again while unreachable (throttled or offline). ``side`` is
    "server" (delivery) or "client" (change capture could not read the client organization).
    """

    profile: str
    reachable: bool
    detail: str = ""
    retry_at: datetime | None = None
    side: str = "server"


@dataclass(frozen=True, slots=True)
class ConflictLogged:
    """A record changed on both sides; ``client``/``server`` hold the changed fields' two versions."""

    profile: str
    entity: str
    record_id: str
    policy: ConflictPolicy
    outcome: str  # "server_wins", "client_wins", "client_wins_full", "manual", "already_applied"
    client: Mapping[str, object] = field(default_factory=dict)
    server: Mapping[str, object] = field(default_factory=dict)
    transaction_id: int | None = None


UploadEvent = QueueChanged | ServerReachability | ConflictLogged
