"""Conflict policies: pure functions deciding what happens when both sides changed a record.

A conflict is detected at delivery: the update is sent with ``If-Match`` = the server etag stored
when the record was last synchronized, and the server answers "changed since" (412; or 404 when it
was deleted meanwhile). Delivery then reads the server's current version and asks
:func:`resolve` what to do. Before any policy applies, a "conflict" where the server already holds
the client's values for every changed field is no conflict at all (``ALREADY_APPLIED``): that is
what a resend after a crash between delivery and bookkeeping looks like.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from crmsync_desktop.domain import ConflictPolicy
from crmsync_desktop.sync.connectors.types import LookupValue
from crmsync_desktop.sync.upload.plans import same_value

__all__ = [
    "CONFLICT_PREFIX",
    "POLICY_DESCRIPTIONS",
    "POLICY_LABELS",
    "Outcome",
    "changed_versions",
    "describe",
    "is_admin_resolved",
    "resolve",
]

CONFLICT_PREFIX = "conflict:"
"""``last_error`` of a transaction kept for the admin starts with this (and Set to Pending keeps it)."""


class Outcome(enum.StrEnum):
    ALREADY_APPLIED = "already_applied"  # the server has the client's values: deliver as done
    SERVER_WINS = "server_wins"  # drop the client's change, write the server's version to the client
    CLIENT_WINS = "client_wins"  # send the client's changed fields without If-Match
    CLIENT_WINS_FULL = "client_wins_full"  # send the whole client record without If-Match
    MANUAL = "manual"  # keep in Error with both versions until the admin decides


POLICY_LABELS: Mapping[ConflictPolicy, str] = {
    ConflictPolicy.SERVER_WINS: "Server wins",
    ConflictPolicy.CLIENT_WINS: "Client wins",
    ConflictPolicy.CLIENT_WINS_FULL: "Client wins (full)",
    ConflictPolicy.NEWER_WINS: "Newer wins",
    ConflictPolicy.MANUAL: "Manual",
}
"""How the admin sees each policy (run log, transaction errors, the console's Conflicts column)."""

POLICY_DESCRIPTIONS: Mapping[ConflictPolicy, str] = {
    ConflictPolicy.SERVER_WINS: "The client's change is dropped; the server's version is kept and written back to "
    "the client",
    ConflictPolicy.CLIENT_WINS: "The fields the client changed are sent and overwrite the server's; the server's "
    "changes to other fields are kept",
    ConflictPolicy.CLIENT_WINS_FULL: "The whole client record is sent; the server's changes are overwritten, "
    "even in fields the client did not change",
    ConflictPolicy.NEWER_WINS: "The later modification wins: Client wins if the client changed the record last, "
    "otherwise Server wins",
    ConflictPolicy.MANUAL: "The client's change waits in Offline Transactions (Error) with both versions; "
    "Set to Pending sends it, Set to Archived keeps the server's",
}
"""One line per policy: what happens to the client's change and to the server's (tooltips, docs)."""


@dataclass(frozen=True, slots=True)
class _Times:
    client: datetime | None
    server: datetime | None


def resolve(
    policy: ConflictPolicy,
    *,
    changed: Sequence[str],
    client: Mapping[str, object],
    server: Mapping[str, object] | None,
    client_modified: object = None,
    server_modified: object = None,
    admin_resolved: bool = False,
) -> Outcome:
    """What to do with a client change whose record the server changed (``server`` None: deleted).

    Args:
        changed: the fields the client changed.
        client: the client's values (at least the changed fields).
        server: the server's current record, or None when it was deleted on the server.
        client_modified / server_modified: the two "modified on" values, for Newer wins.
        admin_resolved: the admin set the transaction back to Pending after a Manual conflict:
            that is the admin choosing the client's version.
    """
    if server is not None and all(same_value(client.get(f), server.get(f)) for f in changed):
        return Outcome.ALREADY_APPLIED
    client_side = Outcome.CLIENT_WINS if server is not None else Outcome.CLIENT_WINS_FULL
    if admin_resolved:
        return client_side
    if policy is ConflictPolicy.CLIENT_WINS:
        return client_side
    if policy is ConflictPolicy.CLIENT_WINS_FULL:
        return Outcome.CLIENT_WINS_FULL
    if policy is ConflictPolicy.MANUAL:
        return Outcome.MANUAL
    if policy is ConflictPolicy.NEWER_WINS:
        times = _Times(_moment(client_modified), _moment(server_modified))
        if server is not None and times.client is not None and times.server is not None and times.client > times.server:
            return client_side
        return Outcome.SERVER_WINS
    return Outcome.SERVER_WINS


def is_admin_resolved(last_error: str | None) -> bool:
    """A Pending transaction that still carries a conflict note was set to Pending by the admin."""
    return bool(last_error) and str(last_error).startswith(CONFLICT_PREFIX)


def changed_versions(
    changed: Sequence[str], client: Mapping[str, object], server: Mapping[str, object] | None
) -> tuple[dict[str, object], dict[str, object]]:
    """The changed fields' client and server values (server values empty when it was deleted)."""
    mine = {f: client.get(f) for f in changed}
    theirs = {f: server.get(f) for f in changed} if server is not None else {}
    return mine, theirs


def describe(
    policy: ConflictPolicy,
    outcome: Outcome,
    changed: Sequence[str],
    client: Mapping[str, object],
    server: Mapping[str, object] | None,
) -> str:
    """The conflict as the admin reads it in the run log and the transaction's error text."""
    if server is None:
        what = "the record was deleted on the server after it was last synchronized"
    else:
        what = "the server changed the record after it was last synchronized"
    mine, theirs = changed_versions(changed, client, server)
    fields = "; ".join(
        f"{f}: client {_show(mine.get(f))}, server {_show(theirs.get(f)) if server is not None else '(deleted)'}"
        for f in changed
    )
    decision = {
        Outcome.SERVER_WINS: "the server's version was kept and written to the client",
        Outcome.CLIENT_WINS: "the client's changed fields were sent",
        Outcome.CLIENT_WINS_FULL: "the whole client record was sent",
        Outcome.MANUAL: "waiting for the admin: Set to Pending sends the client's values, "
        "Set to Archived keeps the server's",
        Outcome.ALREADY_APPLIED: "the server already had the client's values",
    }[outcome]
    label = POLICY_LABELS.get(policy, str(policy))
    return f"{CONFLICT_PREFIX} {what} ({label}: {decision}). {fields}"


def _show(value: object) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, LookupValue):
        return f"{value.entity}:{value.id}"
    return repr(value)


def _moment(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None
