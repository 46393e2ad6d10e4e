"""Owner mapping: server users -> the client organization's own users, matched by email / domain name.

Users, teams and business units synchronize like any entity, so owners resolve: a server user is
created on the client with the same GUID. When the client organization already has its own users
(Connect to an existing organization), a server user whose email / user name matches one of them
is *mapped* to it instead of being created a second time:

* ``same-id``: the server user's GUID exists on the client (created by an earlier sync): itself.
* ``mapped-by-email``: exactly one client user (whose GUID is not a server user's) has the same
  ``domainname`` / ``internalemailaddress`` / ``emailaddress1`` (case-insensitive); failing that,
  ``DOMAIN\\user`` on one side and ``user@domain`` on the other with the same local part, when
  exactly one candidate exists. Records the download writes point at that client user.
* ``created``: no match: created on the client with the server GUID (as before).
* ``ambiguous``: several client users match (or several server users match one client user): not
  mapped, so created with the server GUID like an unmatched user (its records then have a real
  owner; leaving the lookup out would let the client put its default owner there, which capture
  would upload as a reassignment), and reported as a warning so the admin can sort the client
  users out. Once created, the user is ``same-id`` from then on.

How the content hash and echo suppression stay consistent (the choice made here): the download
hashes and stores the **server form** of a record (server user ids), writes the client the
mapped form, and capture maps a client record **back** (client user id -> server user id) before
hashing and before building transactions. So ``record_state`` hashes, upload baselines and
transactions all speak server ids; an engine write read back by capture hashes equal (no echo),
and an Assign / owner on create reaches delivery already as the server user. Delivery maps again
defensively (transactions queued before a mapping existed) and maps forward when it writes a
server version to the client (conflict: server wins).

The mapping is persisted where capture and delivery can read it without the server (they run
while it is offline): a mapped server user gets a ``record_state`` row (entity ``systemuser``)
whose content hash is ``"mapped:<client id>"``. That row also makes the server user count as
"on the client" for deferred lookups and for delivery's client-only-owner check. When a mapping
goes away the row is removed and the user is fetched again by id (retry set), so it is created.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from crmsync_desktop.errors import CrmSyncError
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.values import RecordState
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import LookupValue, Record

__all__ = [
    "USER_ENTITY",
    "UserMapping",
    "UserMatch",
    "UserStatus",
    "load_stored_mapping",
    "match_users",
    "read_user_mapping",
    "save_user_mapping",
]

log = logging.getLogger(__name__)

USER_ENTITY = "systemuser"
IDENTITY_FIELDS = ("domainname", "internalemailaddress", "emailaddress1")
MAPPED_PREFIX = "mapped:"
NO_LONGER_MAPPED = "no longer mapped to a client user; created on the client"


class UserStatus(StrEnum):
    SAME_ID = "same-id"
    MAPPED = "mapped-by-email"
    CREATED = "created"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class UserMatch:
    """One server user and what it is on the client."""

    server_id: str
    server_email: str | None
    client_id: str | None
    status: UserStatus
    candidates: tuple[str, ...] = ()  # ambiguous: the client users that matched

    @property
    def advice(self) -> str:
        """What the admin can do about it (empty when nothing is needed)."""
        if self.status is UserStatus.AMBIGUOUS:
            return ("several client users match, so it is not mapped and is created on the client with the server's "
                    "id; to map it instead, give the client users distinct email addresses / user names before "
                    "the next Sync All")
        if self.status is UserStatus.CREATED:
            return ("no client user matches: created on the client with the server's id; add a client user with "
                    "the same email before the next Sync All to map it instead")
        return ""

    def as_dict(self) -> dict[str, object]:
        return {"server_id": self.server_id, "server_email": self.server_email, "client_id": self.client_id,
                "status": self.status.value, "candidates": list(self.candidates)}


@dataclass(frozen=True, slots=True)
class UserMapping:
    """Server user id <-> client user id for the users mapped by email (ids differ); identity otherwise."""

    matches: tuple[UserMatch, ...] = ()
    to_client: Mapping[str, str] = field(default_factory=dict)  # server id -> client id
    to_server: Mapping[str, str] = field(default_factory=dict)  # client id -> server id

    @classmethod
    def of(cls, pairs: Mapping[str, str], matches: Sequence[UserMatch] = ()) -> UserMapping:
        forward = {s.lower(): c.lower() for s, c in pairs.items()}
        return cls(tuple(matches), forward, {c: s for s, c in forward.items()})

    def __bool__(self) -> bool:
        return bool(self.to_client)

    @property
    def not_created(self) -> frozenset[str]:
        """Server users the download does not create on the client: those mapped to a client user."""
        return frozenset(self.to_client)

    def client_record(self, record: Record) -> Record:
        """``record`` with its lookups to mapped server users pointing at their client users."""
        return _rewrite(record, self.to_client)

    def server_record(self, record: Record) -> Record:
        """``record`` (read from the client) with its lookups to mapped client users pointing at server users."""
        return _rewrite(record, self.to_server)

    def server_value(self, value: object) -> object:
        if isinstance(value, LookupValue) and value.entity == USER_ENTITY:
            mapped = self.to_server.get(value.id.lower())
            if mapped is not None:
                return LookupValue(USER_ENTITY, mapped)
        return value

    def log_lines(self) -> tuple[list[str], list[str]]:
        """(info lines, warning lines) for the run log."""
        counts: dict[UserStatus, int] = defaultdict(int)
        for m in self.matches:
            counts[m.status] += 1
        summary = (f"User mapping: {counts[UserStatus.MAPPED]} server user(s) mapped by email to the client's own "
                   f"users, {counts[UserStatus.SAME_ID]} with the same id, {counts[UserStatus.CREATED]} created on "
                   f"the client, {counts[UserStatus.AMBIGUOUS]} ambiguous")
        info = [summary]
        warnings: list[str] = []
        for m in self.matches:
            who = m.server_email or m.server_id
            if m.status is UserStatus.MAPPED:
                info.append(f"User {who} ({m.server_id}) -> client user {m.client_id}")
            elif m.status is UserStatus.CREATED:
                info.append(f"User {who} ({m.server_id}): {m.advice}")
            elif m.status is UserStatus.AMBIGUOUS:
                warnings.append(f"User {who} ({m.server_id}) is not mapped: {', '.join(m.candidates)} "
                                f"all match; {m.advice}")
        return info, warnings


def _rewrite(record: Record, ids: Mapping[str, str]) -> Record:
    if not ids:
        return record
    out: Record | None = None
    for name, value in record.items():
        if isinstance(value, LookupValue) and value.entity == USER_ENTITY:
            mapped = ids.get(value.id.lower())
            if mapped is not None:
                if out is None:
                    out = dict(record)
                out[name] = LookupValue(USER_ENTITY, mapped)
    return record if out is None else out


# -- matching -------------------------------------------------------------------------------------


def _identities(record: Mapping[str, object]) -> list[str]:
    out = []
    for name in IDENTITY_FIELDS:
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            out.append(value.strip().lower())
    return list(dict.fromkeys(out))


def _local(value: str) -> tuple[str, str] | None:
    """("bs", user) for ``DOMAIN\\user``, ("at", user) for ``user@domain``, None otherwise."""
    if "\\" in value:
        return "bs", value.rsplit("\\", 1)[1]
    if "@" in value:
        return "at", value.split("@", 1)[0]
    return None


def match_users(server_users: Iterable[Record], client_users: Iterable[Record], *,
                server_pid: str = "systemuserid", client_pid: str = "systemuserid") -> UserMapping:
    """Match server users to client users (see the module docstring). Pure: no I/O."""
    servers = [(str(u[server_pid]).lower(), _identities(u)) for u in server_users if u.get(server_pid)]
    clients = {str(u[client_pid]).lower(): _identities(u) for u in client_users if u.get(client_pid)}
    server_ids = {sid for sid, _ in servers}
    exact: dict[str, set[str]] = defaultdict(set)
    local: dict[tuple[str, str], set[str]] = defaultdict(set)
    for cid, values in clients.items():
        if cid in server_ids:
            continue  # a server user already on the client is never another user's match
        for v in values:
            exact[v].add(cid)
            if (key := _local(v)) is not None:
                local[key].add(cid)
    found: dict[str, set[str]] = {}
    for sid, values in servers:
        if sid in clients:
            continue
        hits: set[str] = set().union(*(exact.get(v, set()) for v in values)) if values else set()
        if not hits:
            for v in values:
                key = _local(v)
                if key is not None:  # the other form: DOMAIN\user <-> user@domain
                    hits |= local.get(("at" if key[0] == "bs" else "bs", key[1]), set())
        found[sid] = hits
    claimed: dict[str, int] = defaultdict(int)
    for hits in found.values():
        if len(hits) == 1:
            claimed[next(iter(hits))] += 1
    matches: list[UserMatch] = []
    pairs: dict[str, str] = {}
    for sid, values in servers:
        email = next((v for v in values if "@" in v), values[0] if values else None)
        if sid in clients:
            matches.append(UserMatch(sid, email, sid, UserStatus.SAME_ID))
            continue
        hits = found[sid]
        if not hits:
            matches.append(UserMatch(sid, email, None, UserStatus.CREATED))
        elif len(hits) == 1 and claimed[next(iter(hits))] == 1:
            cid = next(iter(hits))
            pairs[sid] = cid
            matches.append(UserMatch(sid, email, cid, UserStatus.MAPPED))
        else:
            matches.append(UserMatch(sid, email, None, UserStatus.AMBIGUOUS, tuple(sorted(hits))))
    matches.sort(key=lambda m: (m.status.value, m.server_email or "", m.server_id))
    return UserMapping.of(pairs, matches)


async def _read_users(org: Connector) -> tuple[list[Record], str]:
    meta = await org.get_entity(USER_ENTITY)
    pid = meta.primary_id or "systemuserid"
    fields = [pid, *(f for f in IDENTITY_FIELDS if meta.field(f) is not None)]
    users: list[Record] = []
    async for page in org.read_pages(USER_ENTITY, fields):
        users.extend(page.records)
    return users, pid


async def read_user_mapping(server: Connector, client: Connector) -> UserMapping | None:
    """The mapping from both organizations' users; None when either has no user entity (yet)."""
    try:
        server_users, spid = await _read_users(server)
        client_users, cpid = await _read_users(client)
    except CrmSyncError as exc:
        if getattr(exc, "status", None) == 404:
            log.debug("No user mapping: %s", exc)
            return None
        raise
    return match_users(server_users, client_users, server_pid=spid, client_pid=cpid)


# -- persisted (for capture and delivery, which may run while the server is offline) -------------


async def load_stored_mapping(db: Database, profile: str) -> UserMapping:
    """The mapping as the last sync stored it (``record_state`` rows of mapped server users)."""
    pairs: dict[str, str] = {}
    after: str | None = None
    while True:
        states = await repos.list_record_states(db, profile, USER_ENTITY, after_record_id=after, limit=5000)
        for s in states:
            if s.content_hash and s.content_hash.startswith(MAPPED_PREFIX):
                pairs[s.record_id] = s.content_hash[len(MAPPED_PREFIX):]
        if len(states) < 5000:
            break
        after = states[-1].record_id
    return UserMapping.of(pairs)


async def save_user_mapping(db: Database, profile: str, mapping: UserMapping) -> set[str]:
    """Store ``mapping``; returns the server users whose mapping changed (newly mapped, or no longer).

    Users no longer mapped lose their row and go to the download retry set, so they are created.
    """
    stored = await load_stored_mapping(db, profile)
    now = datetime.now(UTC)
    new = {s for s, c in mapping.to_client.items() if stored.to_client.get(s) != c}
    gone = set(stored.to_client) - set(mapping.to_client)
    if new:
        await repos.upsert_record_states(db, profile, USER_ENTITY, [
            RecordState(s, now, content_hash=f"{MAPPED_PREFIX}{mapping.to_client[s]}") for s in sorted(new)])
    if gone:
        await repos.delete_record_states(db, profile, USER_ENTITY, sorted(gone))
        await repos.add_download_retries(db, profile, USER_ENTITY, {s: NO_LONGER_MAPPED for s in gone})
    return new | gone
