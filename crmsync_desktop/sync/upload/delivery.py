"""Delivery: due Pending transactions to the server, in order, in bulk, exactly once in effect.

Order. A batch is the first due Pending transactions by id, minus those held back behind an earlier
transaction of the same record that waits (Error, or a retry not due yet). Within a batch every
transaction gets a level: after the previous transaction of its record and after the create of
every record it points to (parents before children, whatever the entity order), cycles broken.
Level by level, entity groups go in dependency order, each as one ``upsert_many`` (creates and
updates, by record GUID), one ``delete_many``, and single associate/disassociate/assign calls.

Outcomes. Success: Processed, and ``record_state`` gets the hash of the client version that was
sent and the server's new etag (read back in one request per entity), so the server's echo is not
downloaded and the next update can detect conflicts. Rejected (validation, privilege, ...): Error
with the server's message. Passing failures (a record's 5xx or throttling, a lookup target the
server does not have yet): stay Pending with exponential backoff until ``max_attempts`` (or
``missing_parent_attempts``), then Error. The server unreachable, throttling the whole call or
needing a sign-in: nothing is marked, the drain stops (``ServerUnavailable``) and the service
pauses delivery. A conflict (412, or 404 for an update sent with If-Match) goes to
:mod:`.conflicts`.

Crash safety. Sends are idempotent (upsert by GUID, delete of a missing record counts as done,
associate/disassociate/assign are idempotent), and bookkeeping is committed per level in one
SQLite transaction: a crash between the send and the commit resends the same change, which the
server absorbs (an update resent with a stale etag is recognised as already applied).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from crmsync_desktop.domain import TransactionOperation
from crmsync_desktop.errors import AuthError, CrmSyncError, NetworkError, NotFoundError, ThrottledError
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.values import OfflineTransaction, RecordState
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import LookupValue, Record, RecordResult
from crmsync_desktop.sync.download import ID_CHUNK, with_ids
from crmsync_desktop.sync.filters import FetchFilter
from crmsync_desktop.sync.owner_mapping import UserMapping, load_stored_mapping
from crmsync_desktop.sync.records import content_hash, project
from crmsync_desktop.sync.upload import conflicts
from crmsync_desktop.sync.upload.conflicts import Outcome
from crmsync_desktop.sync.upload.events import ConflictLogged
from crmsync_desktop.sync.upload.plans import UploadPlan, decode_record, decode_value
from crmsync_desktop.sync.upload.report import UploadLog

__all__ = ["Delivery", "DeliverySettings", "DrainResult", "ServerUnavailable"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_Key = tuple[str, str]
_UPSERTS = (TransactionOperation.CREATE, TransactionOperation.UPDATE)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Batch sizes and retry policy of delivery."""

    batch_size: int = 100  # transactions per batch read from the queue
    bulk_size: int = 100  # records per upsert_many / delete_many call
    retry_base_s: float = 2.0  # first retry delay; doubles per attempt
    retry_cap_s: float = 300.0
    max_attempts: int = 10  # passing failures of one transaction before it goes to Error
    missing_parent_attempts: int = 5  # "a record it points to is not on the server" before Error

    def backoff(self, attempts: int) -> float:
        return min(self.retry_base_s * 2 ** max(attempts - 1, 0), self.retry_cap_s)


class ServerUnavailable(Exception):
    """The server cannot take anything now (offline, throttled, sign-in needed): delivery pauses."""

    def __init__(self, error: CrmSyncError) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after: float | None = error.retry_after if isinstance(error, ThrottledError) else None


@dataclass(slots=True)
class DrainResult:
    """What one drain did."""

    delivered: int = 0
    failed: int = 0
    retrying: int = 0
    conflicts: int = 0
    unavailable: ServerUnavailable | None = None

    @property
    def reached_server(self) -> bool:
        return self.delivered + self.failed + self.retrying + self.conflicts > 0


@dataclass(frozen=True, slots=True)
class _ServerVersion:
    record: Record
    etag: str | None
    modified: object = None


@dataclass(slots=True)
class _Level:
    """Bookkeeping of one level, committed in one go."""

    processed: dict[int, str | None] = field(default_factory=dict)
    states: dict[str, list[RecordState]] = field(default_factory=lambda: defaultdict(list))
    forget_states: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    forget_baselines: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    retries: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    supersede: list[tuple[str, str, int, str]] = field(default_factory=list)
    events: list[ConflictLogged] = field(default_factory=list)

    def unsuccessful(self) -> set[int]:
        return set(self.retries) | set(self.errors)


class Delivery:
    """Sends queued client changes to the server."""

    def __init__(
        self,
        db: Database,
        profile: str,
        server: Connector,
        client: Connector,
        *,
        clock: Callable[[], datetime],
        settings: DeliverySettings | None = None,
        publish: Callable[[object], None] | None = None,
    ) -> None:
        self._db = db
        self._profile = profile
        self._server = server
        self._client = client
        self._clock = clock
        self.settings = settings or DeliverySettings()
        self._publish = publish or (lambda event: None)
        self._users = UserMapping()  # owner mapping (sync/owner_mapping.py), loaded per drain

    # -- the drain -------------------------------------------------------------------------------

    async def drain(self, plans: Sequence[UploadPlan], report: UploadLog) -> DrainResult:
        """Deliver every due transaction (batch after batch) until none is left or the server is away."""
        by_name = {p.entity: p for p in plans}
        order = {p.entity: i for i, p in enumerate(plans)}
        result = DrainResult()
        self._users = await load_stored_mapping(self._db, self._profile)
        attempted: set[int] = set()
        while True:
            batch = await repos.next_delivery_batch(
                self._db, self._profile, limit=self.settings.batch_size, now=self._clock()
            )
            batch = [t for t in batch if t.id not in attempted]
            if not batch:
                return result
            attempted.update(t.id for t in batch)
            try:
                await self._batch(batch, by_name, order, report, result)
            except ServerUnavailable as exc:
                result.unavailable = exc
                return result

    async def _batch(
        self,
        batch: list[OfflineTransaction],
        plans: Mapping[str, UploadPlan],
        order: Mapping[str, int],
        report: UploadLog,
        result: DrainResult,
    ) -> None:
        level_of = _levels(batch, plans)
        failed: set[_Key] = set()
        for depth in sorted(set(level_of.values())):
            txns = [t for t in batch if level_of[t.id] == depth and _key(t) not in failed]
            work = _Level()
            try:
                for entity in sorted({t.entity for t in txns}, key=lambda e: (order.get(e, len(order)), e)):
                    group = [t for t in txns if t.entity == entity]
                    plan = plans.get(entity)
                    if plan is None:
                        for t in group:
                            work.errors[t.id] = (
                                f"{entity} is not enabled for synchronization any more: enable it and "
                                "Set to Pending, or Set to Archived."
                            )
                        continue
                    await self._entity_group(plan, group, work, report)
            finally:
                await self._commit(work, report, result)
            bad = work.unsuccessful()
            failed.update(_key(t) for t in txns if t.id in bad)
            failed.update((entity, rid) for entity, rid, _, _ in work.supersede)  # already Processed

    async def _entity_group(
        self, plan: UploadPlan, txns: list[OfflineTransaction], work: _Level, report: UploadLog
    ) -> None:
        upserts = [t for t in txns if t.operation in _UPSERTS]
        for start in range(0, len(upserts), self.settings.bulk_size):
            await self._upserts(plan, upserts[start : start + self.settings.bulk_size], work, report)
        assigns = [t for t in txns if t.operation is TransactionOperation.ASSIGN]
        if assigns:
            await self._assigns(plan, assigns, work, report)
        for t in txns:
            if t.operation in (TransactionOperation.ASSOCIATE, TransactionOperation.DISASSOCIATE):
                await self._link(plan, t, work, report)
        deletes = [t for t in txns if t.operation is TransactionOperation.DELETE]
        for start in range(0, len(deletes), self.settings.bulk_size):
            await self._deletes(plan, deletes[start : start + self.settings.bulk_size], work, report)

    # -- creates and updates ---------------------------------------------------------------------

    async def _upserts(self, plan: UploadPlan, txns: list[OfflineTransaction], work: _Level, report: UploadLog) -> None:
        entity = plan.entity
        states = await repos.get_record_states(self._db, self._profile, entity, [_rid(t) for t in txns])
        records: list[Record] = []
        if_match: dict[str, str] = {}
        admin: set[int] = set()
        local_owners = await self._client_only_owners(plan, txns)
        for t in txns:
            rid = _rid(t)
            values = self._users.server_record(decode_record(t.payload.get("values", {})))  # client user -> server
            if t.operation is TransactionOperation.CREATE:
                record = _shape(plan, rid, values, None, create=True)
                owner = record.get(plan.owner_field) if plan.owner_field else None
                if isinstance(owner, LookupValue) and (owner.entity, owner.id.lower()) in local_owners:
                    del record[plan.owner_field]  # type: ignore[arg-type]  # the server's default owner (the caller)
                records.append(record)
                continue
            records.append(_shape(plan, rid, values, _changed(t), create=False))
            state = states.get(rid)
            if conflicts.is_admin_resolved(t.last_error):
                admin.add(t.id)
            elif state is not None and state.server_row_version:
                if_match[rid] = state.server_row_version
        outcome = await self._call(lambda: self._server.upsert_many(entity, records, if_match=if_match or None))
        if isinstance(outcome, CrmSyncError):
            for t in txns:
                self._failed(t, outcome.message, work, report, retryable=_retryable(outcome))
            return
        done: list[OfflineTransaction] = []
        clashing: list[OfflineTransaction] = []
        for t, r in zip(txns, outcome, strict=True):
            rid = _rid(t)
            if r.ok:
                done.append(t)
            elif r.conflict or (r.status == 404 and rid in if_match):
                clashing.append(t)
            else:
                self._result_failed(t, r, work, report)
        notes = {t.id: "client wins: set to Pending by the admin after a conflict" for t in done if t.id in admin}
        await self._succeeded(plan, done, work, report, notes)
        if clashing:
            await self._conflicts(plan, clashing, work, report)

    async def _client_only_owners(self, plan: UploadPlan, txns: Sequence[OfflineTransaction]) -> set[_Key]:
        """Owners of created records that exist only in the client organization (e.g. its own admin user).

        Records created on the client are owned by the client's user; when that user is not one the
        engine brought from the server (no record state) and is not waiting to be uploaded, the server
        can never resolve it, so the create is sent without an owner and the server assigns its default.
        """
        if plan.owner_field is None:
            return set()
        owners: dict[str, set[str]] = defaultdict(set)
        for t in txns:
            if t.operation is TransactionOperation.CREATE:
                owner = self._users.server_value(decode_record(t.payload.get("values", {})).get(plan.owner_field))
                if isinstance(owner, LookupValue):
                    owners[owner.entity].add(owner.id.lower())
        local: set[_Key] = set()
        for entity, ids in owners.items():
            known = await repos.get_record_states(self._db, self._profile, entity, sorted(ids))
            waiting = await repos.undelivered_records(self._db, self._profile, entity, sorted(ids))
            local.update((entity, i) for i in ids if i not in known and i not in waiting)
        return local

    async def _succeeded(
        self,
        plan: UploadPlan,
        txns: Sequence[OfflineTransaction],
        work: _Level,
        report: UploadLog,
        notes: Mapping[int, str] | None = None,
        etags: Mapping[str, str | None] | None = None,
    ) -> None:
        """Creates/updates/assigns the server accepted: Processed, record state = what was sent + new etag."""
        if not txns:
            return
        known = dict(etags or {})
        missing = [_rid(t) for t in txns if _rid(t) not in known]
        if missing:
            known.update(await self._etags(plan, missing))
        states = await repos.get_record_states(self._db, self._profile, plan.entity, [_rid(t) for t in txns])
        now = self._clock()
        for t in txns:
            rid = _rid(t)
            previous = states.get(rid)
            digest = t.payload.get("hash") or (previous.content_hash if previous else None)
            work.states[plan.entity].append(
                RecordState(record_id=rid, last_synced_at=now, server_row_version=known.get(rid),
                            client_row_version=previous.client_row_version if previous else None,
                            content_hash=digest)
            )
            work.processed[t.id] = (notes or {}).get(t.id)
            report.count(plan.entity, "uploaded")
            report.count(plan.entity, {TransactionOperation.CREATE: "created", TransactionOperation.UPDATE: "updated",
                                       TransactionOperation.ASSIGN: "assigned"}.get(t.operation, "uploaded_other"))

    async def _etags(self, plan: UploadPlan, ids: Sequence[str]) -> dict[str, str | None]:
        """The server's current etags of the given records (None where unknown)."""
        found: dict[str, str | None] = dict.fromkeys(ids)
        base = FetchFilter(entity=plan.entity)
        try:
            for start in range(0, len(ids), ID_CHUNK):
                xml = with_ids(base, plan.entity, plan.primary_id, list(ids[start : start + ID_CHUNK]))
                async for page in self._server.read_pages(plan.entity, [], fetch_filter=xml):
                    found.update({k.lower(): v for k, v in page.etags.items()})
        except CrmSyncError as exc:  # unknown etag: the next update is sent without If-Match
            log.warning("Could not read back the etags of %d %s record(s): %s", len(ids), plan.entity, exc)
        return found

    # -- conflicts -------------------------------------------------------------------------------

    async def _conflicts(
        self, plan: UploadPlan, txns: list[OfflineTransaction], work: _Level, report: UploadLog
    ) -> None:
        entity = plan.entity
        current = await self._server_records(plan, [_rid(t) for t in txns])
        if current is None:  # the server went away while we looked: try again later
            for t in txns:
                self._retry(t, "conflict check postponed: the server could not be read", work, report)
            return
        already: list[OfflineTransaction] = []
        etags: dict[str, str | None] = {}
        send_changed: list[OfflineTransaction] = []
        send_full: list[OfflineTransaction] = []
        take_server: list[tuple[OfflineTransaction, str]] = []
        for t in txns:
            rid = _rid(t)
            values = self._users.server_record(decode_record(t.payload.get("values", {})))  # client user -> server
            changed = _changed(t) or list(plan.fields.data_fields)
            found = current.get(rid)
            server_record = found.record if found else None
            outcome = conflicts.resolve(
                plan.conflict_policy, changed=changed, client=values, server=server_record,
                client_modified=t.payload.get("modified_on") or t.created_at,
                server_modified=found.modified if found else None,
                admin_resolved=conflicts.is_admin_resolved(t.last_error),
            )
            text = conflicts.describe(plan.conflict_policy, outcome, changed, values, server_record)
            if outcome is Outcome.ALREADY_APPLIED:  # a resend after a crash: no conflict, nothing to report
                already.append(t)
                etags[rid] = found.etag if found else None
                continue
            mine, theirs = conflicts.changed_versions(changed, values, server_record)
            work.events.append(ConflictLogged(self._profile, entity, rid, plan.conflict_policy, outcome.value,
                                              mine, theirs, t.id))
            report.count(entity, "conflicts")
            if outcome is Outcome.MANUAL:
                report.warning(f"Record {rid}: {text}", entity)
                work.errors[t.id] = text
                report.count(entity, "failed")
            elif outcome is Outcome.SERVER_WINS:
                take_server.append((t, text))
            else:
                report.warning(f"Record {rid}: {text}", entity)
                (send_changed if outcome is Outcome.CLIENT_WINS else send_full).append(t)
        await self._succeeded(plan, already, work, report, etags=etags)
        if send_changed or send_full:
            await self._resend(plan, send_changed, send_full, work, report)
        if take_server:
            await self._take_server(plan, take_server, current, work, report)

    async def _resend(
        self,
        plan: UploadPlan,
        changed: list[OfflineTransaction],
        full: list[OfflineTransaction],
        work: _Level,
        report: UploadLog,
    ) -> None:
        txns = changed + full
        current = {t.id for t in full}
        records = []
        for t in txns:
            values = self._users.server_record(decode_record(t.payload.get("values", {})))  # client user -> server
            if t.id in current:
                records.append(_shape(plan, _rid(t), values, None, create=True))
            else:
                records.append(_shape(plan, _rid(t), values, _changed(t), create=False))
        outcome = await self._call(lambda: self._server.upsert_many(plan.entity, records))
        if isinstance(outcome, CrmSyncError):
            for t in txns:
                self._failed(t, outcome.message, work, report, retryable=_retryable(outcome))
            return
        done = []
        for t, r in zip(txns, outcome, strict=True):
            if r.ok:
                done.append(t)
            else:
                self._result_failed(t, r, work, report)
        label = {False: "conflict resolved: client wins (changed fields sent)",
                 True: "conflict resolved: client wins (whole record sent)"}
        await self._succeeded(plan, done, work, report, {t.id: label[t.id in current] for t in done})

    async def _take_server(
        self,
        plan: UploadPlan,
        items: list[tuple[OfflineTransaction, str]],
        current: Mapping[str, _ServerVersion],
        work: _Level,
        report: UploadLog,
    ) -> None:
        """Server wins: the server's version (or its deletion) is written to the client."""
        entity = plan.entity
        present = [(t, text) for t, text in items if _rid(t) in current]
        gone = [(t, text) for t, text in items if _rid(t) not in current]
        now = self._clock()
        ok: list[tuple[OfflineTransaction, str]] = []
        if present:
            # Owner mapping: the server's version is written with the client's own users.
            records = [plan.fields.to_client(self._users.client_record(current[_rid(t)].record)) for t, _ in present]
            try:
                results = await self._client.upsert_many(entity, records)
            except CrmSyncError as exc:
                results = [RecordResult(_rid(t), False, exc.message, retryable=True) for t, _ in present]
            for (t, text), r in zip(present, results, strict=True):
                if r.ok:
                    rid = _rid(t)
                    version = current[rid]
                    work.states[entity].append(RecordState(rid, now, version.etag, None,
                                                           content_hash(version.record, plan.fields.fields)))
                    ok.append((t, text))
                else:
                    self._retry(t, f"Server wins, but the client could not be updated: {r.error}", work, report)
        if gone:
            try:
                results = await self._client.delete_many(entity, [_rid(t) for t, _ in gone])
            except CrmSyncError as exc:
                results = [RecordResult(_rid(t), False, exc.message, retryable=True) for t, _ in gone]
            for (t, text), r in zip(gone, results, strict=True):
                if r.ok:
                    work.forget_states[entity].append(_rid(t))
                    work.forget_baselines[entity].append(_rid(t))
                    ok.append((t, text))
                else:
                    self._retry(t, f"Server wins, but the client could not be updated: {r.error}", work, report)
        for t, text in ok:
            report.warning(f"Record {_rid(t)}: {text}", entity)
            work.processed[t.id] = text
            work.supersede.append((entity, _rid(t), t.id, "superseded: the server's version was kept (conflict)"))

    async def _server_records(self, plan: UploadPlan, ids: Sequence[str]) -> dict[str, _ServerVersion] | None:
        """The server's current version of the records (projected) with etags; None if unreadable."""
        fields = list(plan.fields.data_fields)
        extra = plan.server_modified_field
        if extra and extra not in fields:
            fields.append(extra)
        base = FetchFilter(entity=plan.entity)
        out: dict[str, _ServerVersion] = {}
        try:
            for start in range(0, len(ids), ID_CHUNK):
                xml = with_ids(base, plan.entity, plan.primary_id, list(ids[start : start + ID_CHUNK]))
                async for page in self._server.read_pages(plan.entity, fields, fetch_filter=xml):
                    for record in page.records:
                        rid = str(record[plan.primary_id]).lower()
                        modified = record.get(extra) if extra else None
                        out[rid] = _ServerVersion(project(record, plan.fields), page.etags.get(rid), modified)
        except (NetworkError, ThrottledError, AuthError) as exc:
            raise ServerUnavailable(exc) from exc
        except CrmSyncError as exc:
            log.warning("Could not read the server's version of %d %s record(s): %s", len(ids), plan.entity, exc)
            return None
        return out

    # -- assign, links, deletes ------------------------------------------------------------------

    async def _assigns(self, plan: UploadPlan, txns: list[OfflineTransaction], work: _Level, report: UploadLog) -> None:
        done = []
        for t in txns:
            owner = self._users.server_value(decode_value(t.payload.get("owner")))  # client user -> server user
            if not isinstance(owner, LookupValue):
                work.errors[t.id] = "The new owner is missing from the transaction."
                continue
            rid = _rid(t)
            outcome = await self._call(lambda rid=rid, owner=owner: self._server.assign(plan.entity, rid, owner))
            if isinstance(outcome, CrmSyncError):
                self._failed(t, outcome.message, work, report, retryable=_retryable(outcome),
                             missing_parent=isinstance(outcome, NotFoundError))
            else:
                done.append(t)
        await self._succeeded(plan, done, work, report)

    async def _link(self, plan: UploadPlan, t: OfflineTransaction, work: _Level, report: UploadLog) -> None:
        payload = t.payload
        rel, id1, id2 = str(payload.get("relationship")), str(payload.get("entity1_id")), str(payload.get("entity2_id"))
        associate = t.operation is TransactionOperation.ASSOCIATE
        call = self._server.associate if associate else self._server.disassociate
        outcome = await self._call(lambda: call(rel, id1, id2))
        if isinstance(outcome, CrmSyncError):
            self._failed(t, outcome.message, work, report, retryable=_retryable(outcome),
                         missing_parent=associate and isinstance(outcome, NotFoundError))
            return
        rid = _rid(t)
        if associate:
            work.states[plan.entity].append(RecordState(rid, self._clock(), None, None, payload.get("hash")))
            report.count(plan.entity, "associated")
        else:
            work.forget_states[plan.entity].append(rid)
            report.count(plan.entity, "disassociated")
        report.count(plan.entity, "uploaded")
        work.processed[t.id] = None

    async def _deletes(self, plan: UploadPlan, txns: list[OfflineTransaction], work: _Level, report: UploadLog) -> None:
        outcome = await self._call(lambda: self._server.delete_many(plan.entity, [_rid(t) for t in txns]))
        if isinstance(outcome, CrmSyncError):
            for t in txns:
                self._failed(t, outcome.message, work, report, retryable=_retryable(outcome))
            return
        for t, r in zip(txns, outcome, strict=True):
            if r.ok:
                work.processed[t.id] = None
                work.forget_states[plan.entity].append(_rid(t))
                report.count(plan.entity, "uploaded")
                report.count(plan.entity, "deleted")
            else:
                self._result_failed(t, r, work, report)

    # -- failures --------------------------------------------------------------------------------

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T | CrmSyncError:
        """Run one server call; unreachable/throttled/sign-in pause the drain, other errors are returned."""
        try:
            return await fn()
        except (NetworkError, ThrottledError, AuthError) as exc:
            raise ServerUnavailable(exc) from exc
        except CrmSyncError as exc:
            return exc

    def _result_failed(self, t: OfflineTransaction, r: RecordResult, work: _Level, report: UploadLog) -> None:
        message = r.error or f"rejected by the server (status {r.status})"
        self._failed(t, message, work, report, retryable=r.retryable, missing_parent=r.status == 404)

    def _failed(
        self,
        t: OfflineTransaction,
        message: str,
        work: _Level,
        report: UploadLog,
        *,
        retryable: bool,
        missing_parent: bool = False,
    ) -> None:
        message = _keep_admin_choice(t, message)
        if missing_parent:
            limit = self.settings.missing_parent_attempts
            if t.attempts + 1 < limit:
                self._retry(t, message, work, report)
                return
            message = f"{message} (a record it points to is still missing after {t.attempts + 1} attempts)"
        elif retryable:
            if t.attempts + 1 < self.settings.max_attempts:
                self._retry(t, message, work, report)
                return
            message = f"{message} (gave up after {t.attempts + 1} attempts)"
        work.errors[t.id] = message
        report.count(t.entity, "failed")
        report.error(f"{t.operation.value.capitalize()} of {t.record_id} was rejected by the server: {message}",
                     t.entity)

    def _retry(self, t: OfflineTransaction, message: str, work: _Level, report: UploadLog) -> None:
        message = _keep_admin_choice(t, message)
        when = self._clock() + timedelta(seconds=self.settings.backoff(t.attempts + 1))
        work.retries[t.id] = (message, when)
        report.count(t.entity, "retrying")

    async def _commit(self, work: _Level, report: UploadLog, result: DrainResult) -> None:
        now = self._clock()
        if work.processed or work.states or work.forget_states or work.forget_baselines:
            await repos.finish_delivery(
                self._db, self._profile, processed=work.processed, at=now, record_states=work.states,
                forget_record_states=work.forget_states, forget_baselines=work.forget_baselines,
            )
        for entity, rid, after_id, note in work.supersede:
            await repos.supersede_transactions(self._db, self._profile, entity, rid, after_id=after_id, note=note,
                                               at=now)
        if work.retries:
            await repos.retry_transactions(self._db, self._profile, work.retries)
        if work.errors:
            await repos.fail_transactions(self._db, self._profile, work.errors)
        result.delivered += len(work.processed)
        result.failed += len(work.errors)
        result.retrying += len(work.retries)
        result.conflicts += len(work.events)
        for event in work.events:
            self._publish(event)


# -- helpers ------------------------------------------------------------------------------------------


def _rid(t: OfflineTransaction) -> str:
    return str(t.record_id or "").lower()


def _key(t: OfflineTransaction) -> _Key:
    return (t.entity, _rid(t))


def _changed(t: OfflineTransaction) -> list[str]:
    return [str(f) for f in t.payload.get("changed", ())]


def _keep_admin_choice(t: OfflineTransaction, message: str) -> str:
    """A transaction the admin set to Pending after a conflict keeps saying so when it fails again."""
    if conflicts.is_admin_resolved(t.last_error) and not conflicts.is_admin_resolved(message):
        return f"{conflicts.CONFLICT_PREFIX} set to Pending by the admin (client wins); the last attempt failed: {message}"
    return message


def _retryable(exc: CrmSyncError) -> bool:
    return bool(getattr(exc, "retryable", False))


def _shape(plan: UploadPlan, rid: str, values: Mapping[str, Any], changed: Sequence[str] | None, *, create: bool) -> Record:
    """The record to send: the primary id plus the changed (or all) fields the server accepts."""
    allowed = plan.create_fields if create else plan.update_fields
    names = changed if changed is not None else [f for f in plan.fields.data_fields if f in values]
    record: Record = {plan.primary_id: rid}
    for name in names:
        if name in values and (allowed is None or name in allowed):
            record[name] = values[name]
    return record


def _references(t: OfflineTransaction, plans: Mapping[str, UploadPlan]) -> list[_Key]:
    """The records a transaction needs on the server first (lookup targets, linked records)."""
    payload = t.payload
    if t.operation in (TransactionOperation.ASSOCIATE, TransactionOperation.DISASSOCIATE):
        plan = plans.get(t.entity)
        if plan is None or plan.intersect is None:
            return []
        link = plan.intersect
        return [(link.entity1, str(payload.get("entity1_id", "")).lower()),
                (link.entity2, str(payload.get("entity2_id", "")).lower())]
    if t.operation is TransactionOperation.ASSIGN:
        owner = decode_value(payload.get("owner"))
        return [(owner.entity, owner.id.lower())] if isinstance(owner, LookupValue) else []
    if t.operation in _UPSERTS:
        values = decode_record(payload.get("values", {}))
        names = _changed(t) if t.operation is TransactionOperation.UPDATE else list(values)
        return [(v.entity, v.id.lower()) for n in names if isinstance(v := values.get(n), LookupValue)]
    return []


def _levels(batch: Sequence[OfflineTransaction], plans: Mapping[str, UploadPlan]) -> dict[int, int]:
    """Level of each transaction: after its record's previous transaction and its parents' creates."""
    previous: dict[int, int] = {}
    last: dict[_Key, int] = {}
    creates: dict[_Key, int] = {}
    for t in batch:
        key = _key(t)
        if key in last:
            previous[t.id] = last[key]
        last[key] = t.id
        if t.operation is TransactionOperation.CREATE and key not in creates:
            creates[key] = t.id
    deps: dict[int, list[int]] = {}
    for t in batch:
        needs = [previous[t.id]] if t.id in previous else []
        needs += [creates[k] for k in _references(t, plans) if k in creates and creates[k] != t.id]
        deps[t.id] = needs
    level: dict[int, int] = {}
    visiting: set[int] = set()

    def depth(tid: int) -> int:
        if tid in level:
            return level[tid]
        visiting.add(tid)
        below = [depth(d) for d in deps[tid] if d not in visiting]  # a cycle: that edge is ignored
        visiting.discard(tid)
        level[tid] = 1 + max(below) if below else 0
        return level[tid]

    for t in batch:
        depth(t.id)
    return level

