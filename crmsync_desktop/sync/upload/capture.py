"""Change capture: client changes become offline transactions, durably, before the client token moves.

Per enabled entity: a cheap probe (``has_changes`` on the client: Resco's GetMaxRowVersion), and
when it moved, the client's changes since the entity's client token (kept in ``sync_state`` as
``"client:<entity>"``, apart from the download's server token). For each changed record:

* its content hash (same field plan and hash as the download) equals ``record_state``: the engine
  wrote it (its own echo) or nothing that travels changed: never queued;
* it equals the upload baseline (the version capture last saw): already captured (a page read
  again after a crash): never queued twice;
* no ``record_state``: the server does not have it yet: **create** (the whole record);
* otherwise **update** with only the fields whose digest differs from the baseline (all fields
  when there is no baseline), and **assign** when ``ownerid`` changed;
* intersect (N:N) rows: a new row is **associate**, a removed one **disassociate**;
* deleted records (tombstones, or for a client without tombstones the periodic id sweep of
  :meth:`ChangeCapture.sweep`) become **delete**, but only for records the server has (a
  ``record_state``) or that still have undelivered transactions: a record the download itself
  removed from the client (deleted on the server, or out of the sync filter) is never deleted on
  the server.

Creates, updates and assigns of records that do not match the entity's upload filter are counted
as "not_uploaded" and dropped. The transactions, the new baselines and the token are committed in
one SQLite transaction (``repos.commit_capture``).

The very first capture of an entity (no client token yet) only learns the client-only records
(baselines) and the token: records the server never had that were there before capture started
are not uploaded, unless ``upload_existing`` is set. Records the download wrote are compared with
what it wrote, so an edit made between a Sync All and the first capture is still uploaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from crmsync_desktop.domain import TransactionOperation
from crmsync_desktop.errors import FullResyncRequired
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.values import NewTransaction, RecordState, SyncState, UploadBaseline
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import ChangePage, ChangeToken, LookupValue, Record
from crmsync_desktop.sync.download import ID_CHUNK, state_to_token, token_to_state, with_ids
from crmsync_desktop.sync.filters import EvaluationContext, evaluate
from crmsync_desktop.sync.owner_mapping import USER_ENTITY, UserMapping, load_stored_mapping
from crmsync_desktop.sync.records import content_hash, project
from crmsync_desktop.sync.upload.plans import (
    CLIENT_TOKEN_PREFIX,
    UploadPlan,
    encode_record,
    encode_value,
    field_digests,
)
from crmsync_desktop.sync.upload.report import UploadLog

__all__ = ["ChangeCapture", "client_token_key"]

log = logging.getLogger(__name__)
BASELINE_PAGE = 10_000


def client_token_key(entity: str) -> str:
    """The ``sync_state`` key of an entity's client change token."""
    return f"{CLIENT_TOKEN_PREFIX}{entity}"


class ChangeCapture:
    """Reads the client's changes and queues them as offline transactions."""

    def __init__(
        self,
        db: Database,
        profile: str,
        client: Connector,
        *,
        clock: Callable[[], datetime],
        upload_existing: bool = False,
    ) -> None:
        self._db = db
        self._profile = profile
        self._client = client
        self._clock = clock
        self._upload_existing = upload_existing
        self._identity: tuple[str, str] | None = None
        self._users: UserMapping | None = None  # owner mapping as the last sync stored it (read once)

    # -- the change feed -------------------------------------------------------------------------

    async def capture(self, plans: Sequence[UploadPlan], report: UploadLog, *, probe: bool = True) -> int:
        """One pass over every plan (parents first); returns how many transactions were queued."""
        queued = 0
        for plan in plans:
            queued += await self.capture_entity(plan, report, probe=probe)
        return queued

    async def capture_entity(self, plan: UploadPlan, report: UploadLog, *, probe: bool = True) -> int:
        key = client_token_key(plan.entity)
        state = await repos.get_sync_state(self._db, self._profile, key)
        initial = state is None
        token = state_to_token(state)
        if token is not None and probe:
            try:
                if not await self._client.has_changes(plan.entity, token):
                    return 0
            except FullResyncRequired:
                token = None
        try:
            return await self._follow(plan, token, state or SyncState(entity=key), initial, report)
        except FullResyncRequired:
            if token is None:
                raise
        report.warning("The client's change token expired; reading every client record again", plan.entity)
        return await self._follow(plan, None, state or SyncState(entity=key), initial, report)

    async def _follow(
        self, plan: UploadPlan, token: ChangeToken | None, state: SyncState, initial: bool, report: UploadLog
    ) -> int:
        queued = 0
        async for page in self._client.read_changes(plan.entity, plan.client_read_fields, token):
            page = replace(page, upserts=tuple(plan.fields.from_client(r) for r in page.upserts))
            new_state = None
            if page.token is not None:
                value, kind = token_to_state(page.token)
                state = new_state = replace(state, token=value, strategy=kind, last_sync_at=self._clock())
            queued += await self._apply_page(plan, page, initial, new_state, report)
        return queued

    async def _apply_page(
        self, plan: UploadPlan, page: ChangePage, initial: bool, state: SyncState | None, report: UploadLog
    ) -> int:
        entity, pid = plan.entity, plan.primary_id
        raw = {str(r[pid]).lower(): r for r in page.upserts if r.get(pid)}
        if self._users is None:
            self._users = await load_stored_mapping(self._db, self._profile)
        users = self._users
        if entity == USER_ENTITY and users:  # the client's own users that server users map to: not uploaded
            raw = {rid: r for rid, r in raw.items() if rid not in users.to_server}
        # Owner mapping: client user ids back to server user ids before hashing (the download hashed
        # the server form), so the engine's own writes are echoes and transactions carry server ids.
        projected = {rid: project(users.server_record(r), plan.fields) for rid, r in raw.items()}
        states = await repos.get_record_states(self._db, self._profile, entity, list(projected))
        baselines = await repos.get_upload_baselines(self._db, self._profile, entity, list(projected))
        keep: list[UploadBaseline] = []
        candidates: list[tuple[str, Record, str]] = []
        existing = 0
        for rid, record in projected.items():
            digest = content_hash(record, plan.fields.fields)
            keep.append(UploadBaseline(rid, digest, field_digests(record, plan)))
            seen, synced = baselines.get(rid), states.get(rid)
            if seen is not None and seen.content_hash == digest:
                continue  # captured before (a page read again)
            if synced is not None and synced.content_hash == digest:
                report.count(entity, "echo")
                continue  # the engine's own write, or nothing that travels changed
            if initial and seen is None and synced is None and not self._upload_existing:
                existing += 1  # a client-only record from before capture started
                continue
            candidates.append((rid, record, digest))
        if existing:
            report.count(entity, "existing", existing)
        items: list[NewTransaction] = []
        if plan.intersect is not None:
            items += self._associations(plan, candidates, baselines, report)
        elif candidates:
            matching = await self._matching(plan, [raw[rid] for rid, _, _ in candidates])
            skipped = [rid for rid, _, _ in candidates if rid not in matching]
            if skipped:
                report.count(entity, "not_uploaded", len(skipped))
                report.count(entity, "skipped", len(skipped))
                report.info(f"{len(skipped)} client change(s) not uploaded: they do not match the upload filter",
                            entity)
            for rid, record, digest in candidates:
                if rid in matching:
                    items += self._record_changes(plan, rid, record, digest, raw[rid], states.get(rid),
                                                  baselines.get(rid), report)
        forget: list[str] = []
        if page.deleted_ids:
            gone = [str(i).lower() for i in page.deleted_ids]
            more, forget = await self._deletions(plan, gone, report)
            items += more
            keep = [b for b in keep if b.record_id not in set(forget)]
        ids = await repos.commit_capture(self._db, self._profile, entity, transactions=items, baselines=keep,
                                         forget=forget, sync_state=state)
        if ids:
            report.count(entity, "captured", len(ids))
        return len(ids)

    # -- one record ------------------------------------------------------------------------------

    def _record_changes(
        self,
        plan: UploadPlan,
        rid: str,
        record: Record,
        digest: str,
        raw: Record,
        synced: RecordState | None,
        seen: UploadBaseline | None,
        report: UploadLog,
    ) -> list[NewTransaction]:
        entity = plan.entity
        base: dict[str, Any] = {"values": encode_record(record), "hash": digest}
        if plan.modified_field and raw.get(plan.modified_field) is not None:
            base["modified_on"] = raw[plan.modified_field]
        if synced is None:
            return [NewTransaction(entity, TransactionOperation.CREATE, base, rid)]
        data = plan.fields.data_fields
        now = field_digests(record, plan)
        if seen is None:
            changed = [f for f in data if f in record]
        else:
            changed = [f for f in data if now.get(f) != seen.fields.get(f)]
            if not changed:  # the field plan changed since the baseline: send everything
                changed = [f for f in data if f in record]
        out: list[NewTransaction] = []
        owner = plan.owner_field
        owner_changed = owner is not None and owner in changed
        rest = [f for f in changed if f != owner]
        if rest:
            out.append(NewTransaction(entity, TransactionOperation.UPDATE, {**base, "changed": rest}, rid))
        if owner_changed and owner is not None:
            value = record.get(owner)
            if isinstance(value, LookupValue):
                out.append(NewTransaction(entity, TransactionOperation.ASSIGN,
                                          {"owner": encode_value(value), "hash": digest}, rid))
            else:
                report.warning(f"The owner of {rid} was cleared on the client; a record needs an owner, "
                               "so the change is not uploaded", entity)
        return out

    def _associations(
        self,
        plan: UploadPlan,
        candidates: list[tuple[str, Record, str]],
        baselines: Mapping[str, UploadBaseline],
        report: UploadLog,
    ) -> list[NewTransaction]:
        link = plan.intersect
        assert link is not None
        out: list[NewTransaction] = []
        for rid, record, digest in candidates:
            if rid in baselines:
                continue  # intersect rows do not change; only appear and disappear
            id1, id2 = _plain_id(record.get(link.attribute1)), _plain_id(record.get(link.attribute2))
            if not id1 or not id2:
                report.warning(f"The link {rid} has no {link.attribute1} or {link.attribute2}; not uploaded",
                               plan.entity)
                continue
            payload = {"relationship": link.relationship, "entity1_id": id1, "entity2_id": id2, "hash": digest}
            out.append(NewTransaction(plan.entity, TransactionOperation.ASSOCIATE, payload, rid))
        return out

    async def _deletions(
        self, plan: UploadPlan, ids: list[str], report: UploadLog
    ) -> tuple[list[NewTransaction], list[str]]:
        """Delete/disassociate transactions for records gone from the client, and the baselines to forget."""
        entity = plan.entity
        states = await repos.get_record_states(self._db, self._profile, entity, ids)
        waiting = await repos.undelivered_records(self._db, self._profile, entity, ids)
        baselines = await repos.get_upload_baselines(self._db, self._profile, entity, ids)
        out: list[NewTransaction] = []
        for rid in ids:
            if rid not in states and rid not in waiting:
                continue  # the engine removed it (or it never reached the server): nothing to do there
            if plan.intersect is not None:
                seen = baselines.get(rid)
                link = plan.intersect
                id1 = seen.fields.get(link.attribute1) if seen else None
                id2 = seen.fields.get(link.attribute2) if seen else None
                if not id1 or not id2:
                    report.warning(f"The removed link {rid} cannot be uploaded: which records it joined is unknown",
                                   entity)
                    continue
                payload = {"relationship": link.relationship, "entity1_id": id1, "entity2_id": id2}
                out.append(NewTransaction(entity, TransactionOperation.DISASSOCIATE, payload, rid))
            else:
                out.append(NewTransaction(entity, TransactionOperation.DELETE, {}, rid))
        return out, ids

    # -- deletion sweep (clients without tombstones) ---------------------------------------------

    async def sweep(self, plan: UploadPlan, report: UploadLog) -> int:
        """Find records capture saw that are gone from the client; queue their deletion.

        Reads every client id of the entity (one request per page) and compares with the baselines.
        """
        present: set[str] = set()
        async for page in self._client.read_ids(plan.entity):
            present.update(i.lower() for i in page)
        missing: list[str] = []
        after: str | None = None
        while True:
            ids = await repos.list_upload_baseline_ids(self._db, self._profile, plan.entity,
                                                       after_record_id=after, limit=BASELINE_PAGE)
            missing += [i for i in ids if i not in present]
            if len(ids) < BASELINE_PAGE:
                break
            after = ids[-1]
        if not missing:
            return 0
        items, forget = await self._deletions(plan, missing, report)
        created = await repos.commit_capture(self._db, self._profile, plan.entity, transactions=items,
                                             forget=forget)
        if created:
            report.count(plan.entity, "captured", len(created))
        return len(created)

    # -- upload filter -----------------------------------------------------------------------------

    async def _matching(self, plan: UploadPlan, records: Sequence[Record]) -> set[str]:
        pid = plan.primary_id
        ids = [str(r[pid]).lower() for r in records]
        f = plan.upload_filter
        if f.is_empty:
            return set(ids)
        if plan.filter_is_local:
            context = await self._context()
            return {str(r[pid]).lower() for r in records if evaluate(f, _evaluable(r), context)}
        matching: set[str] = set()
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            xml = with_ids(f, plan.entity, plan.fields.client_id_name, chunk)
            async for page in self._client.read_ids(plan.entity, fetch_filter=xml):
                matching.update(i.lower() for i in page)
        return matching

    async def _context(self) -> EvaluationContext:
        if self._identity is None:
            who = await self._client.whoami()
            self._identity = (who.user_id, who.business_unit_id)
        return EvaluationContext(self._identity[0], self._identity[1], self._clock())


def _plain_id(value: object) -> str:
    if isinstance(value, LookupValue):
        return value.id.lower()
    return str(value).lower() if value else ""


def _evaluable(record: Record) -> dict[str, Any]:
    """Lookups become their id, which is what ``evaluate`` compares GUID conditions with."""
    return {k: (v.id if isinstance(v, LookupValue) else v) for k, v in record.items()}
