"""Download: server changes of one entity to the client organization, page by page, resumable.

Per page: project the records onto the fields both sides have, keep those that match the sync
filter (checked locally when the filter allows it, otherwise re-checked on the server by id in one
request per page), skip records whose content hash equals what was last written, upsert the rest
in bulk, remember what was written (record state), and only then move the change cursor. A crash
at any point re-reads at most the pages since the last cursor and writes nothing twice: records
already written (recorded after each slice of ``WRITE_SLICE`` records) have the same hash and are
skipped; only the slice in flight at the crash is written again.

A record that fails to write never falls behind the cursor: its id goes to the durable retry set
and is fetched again by id at the end of this sync and of every later one. A lookup to a record
the client does not have yet (a later entity, or a cycle) is left out of the first write and the
record is rewritten whole at the end of the run, once its targets exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from crmsync_desktop.domain import DeletionStrategy
from crmsync_desktop.errors import FullResyncRequired
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.values import RecordState, SyncState, UploadBaseline
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import ChangePage, ChangeToken, LookupValue, Record, TokenKind
from crmsync_desktop.sync.filters import (
    Condition,
    EvaluationContext,
    FetchFilter,
    FilterGroup,
    FilterType,
    can_evaluate_locally,
    evaluate,
    render_filter,
)
from crmsync_desktop.sync.owner_mapping import USER_ENTITY, UserMapping
from crmsync_desktop.sync.records import FieldPlan, content_hash, evaluable, project, record_digests
from crmsync_desktop.sync.run_recorder import RunRecorder

log = logging.getLogger(__name__)
T = TypeVar("T")

ID_CHUNK = 500  # ids per server re-check / by-id fetch (keeps FetchXML well under URL limits)
WRITE_SLICE = 500  # records written to the client, then recorded, at a time: one bulk request (what a crash may rewrite)
WRITES_IN_FLIGHT = 3  # bulk writes to the client running at once within a page
# CPU work over a batch at least this big (projection, hashing, lookup checks) runs in a worker
# thread, so the event loop (the console's, under qasync) is never blocked for a whole page.
OFFLOAD_AT = 200
DEFERRED_LOOKUP = "lookup target not on the client yet; rewritten at the end of the run"
WAITING_UPLOAD = "a client change to this record is waiting to upload; fetched again after it is delivered"
CLIENT_EDITED = "edited on the client since the last capture; fetched again after the edit is captured"


@dataclass(frozen=True, slots=True)
class EntityPlan:
    """Everything the downloader needs to know about one entity for this run."""

    entity: str
    fields: FieldPlan
    sync_filter: FetchFilter
    deletion: DeletionStrategy  # resolved: OFF, SWEEP, TRACKING or CHANGE_TRACKING
    synced_entities: frozenset[str] = frozenset()  # lookup targets that this profile synchronizes
    filter_fields: tuple[str, ...] = ()  # extra fields the local filter check needs

    @property
    def read_fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.fields.fields, *self.filter_fields)))

    @property
    def removes_records(self) -> bool:
        return self.deletion is not DeletionStrategy.OFF


def token_to_state(token: ChangeToken) -> tuple[str, str]:
    return token.value, token.kind.value


def state_to_token(state: SyncState | None) -> ChangeToken | None:
    if state is None or not state.token:
        return None
    try:
        return ChangeToken(TokenKind(state.strategy), state.token)
    except ValueError:
        return None


def with_ids(f: FetchFilter, entity: str, primary_id: str, ids: Sequence[str]) -> str:
    """``f`` narrowed to the given record ids, as FetchXML (the server re-check and by-id fetches)."""
    condition = Condition(attribute=primary_id, operator="in", values=tuple(ids))
    if f.is_empty or f.filter is None:
        group = FilterGroup(FilterType.AND, (condition,))
    else:
        group = FilterGroup(FilterType.AND, (condition, f.filter))
    return render_filter(replace(f, entity=entity, filter=group))


async def read_ahead(source: AsyncIterable[T]) -> AsyncIterator[T]:
    """``source``'s items, with the next one already being fetched while the caller handles the current.

    The server's next page then arrives while the client organization writes this one (the two
    overlap instead of adding up). Only one item is read ahead, so memory stays at two pages; an
    error of the read surfaces where that item would have been consumed; the read-ahead is
    cancelled when the caller stops early.
    """
    iterator = source.__aiter__()

    async def fetch() -> T:
        return await iterator.__anext__()

    pending: asyncio.Task[T] = asyncio.ensure_future(fetch())
    try:
        while True:
            try:
                item = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(fetch())
            yield item
    finally:
        if not pending.done():
            pending.cancel()
        try:
            await pending
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this task is being cancelled: do not swallow it
        except Exception as exc:  # noqa: BLE001 - the read-ahead's own outcome no longer matters
            log.debug("read-ahead of %r discarded: %s", source, exc)
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()


class EntityDownloader:
    """Downloads one entity's server changes into the client organization."""

    def __init__(
        self,
        *,
        db: Database,
        profile: str,
        server: Connector,
        client: Connector,
        recorder: RunRecorder,
        context: EvaluationContext,
        dry_run: bool = False,
        users: UserMapping | None = None,
        remapped_users: frozenset[str] = frozenset(),
        captured_entities: frozenset[str] = frozenset(),
    ) -> None:
        self.dry_run = dry_run
        # Entities whose client changes are captured for upload: a client edit capture has not seen
        # yet is never overwritten there (see _hold_client_edits).
        self._captured = captured_entities
        # Owner mapping (sync/owner_mapping.py): lookups to server users mapped to the client's own
        # users are written as those client users; hashes and record states stay in server form.
        self._users = users or UserMapping()
        self._remapped = remapped_users  # server users whose mapping changed: records owned by them are rewritten
        self.examples: dict[tuple[str, str], list[str]] = {}  # (entity, action) -> a few record ids
        self._db = db
        self._profile = profile
        self._server = server
        self._client = client
        self._rec = recorder
        self._context = context
        self.arrived: dict[str, set[str]] = {}  # entity -> ids newly written to the client in this run

    # -- the change feed ------------------------------------------------------------------

    async def sync(self, plan: EntityPlan, *, full: bool = False) -> None:
        """Apply the server's changes since the stored cursor (everything when ``full`` or none stored)."""
        state = await repos.get_sync_state(self._db, self._profile, plan.entity)
        token = None if full else state_to_token(state)
        if token is None:
            self._rec.info("Reading all records (full sync)", plan.entity)
        try:
            await self._follow(plan, token, state)
        except FullResyncRequired:
            self._rec.warning(
                "The server's change token expired; reading all records again (full resync)", plan.entity
            )
            await self._follow(plan, None, state)

    async def _follow(self, plan: EntityPlan, token: ChangeToken | None, state: SyncState | None) -> None:
        full = token is None
        done = 0
        state = state or SyncState(entity=plan.entity)
        pages = read_ahead(self._server.read_changes(plan.entity, plan.read_fields, token))
        async with contextlib.aclosing(pages):
            async for page in pages:
                done += len(page.upserts) + len(page.deleted_ids)
                await self.apply_page(plan, page)
                if page.token is not None and not self.dry_run:
                    value, kind = token_to_state(page.token)
                    now = datetime.now(UTC)
                    state = replace(state, token=value, strategy=kind, last_sync_at=now)
                    await repos.put_sync_state(self._db, self._profile, state)
                await self._rec.flush()
                self._rec.progress(plan.entity, "download", done)
        now = datetime.now(UTC)
        state = replace(state, last_sync_at=now, last_full_sync_at=now if full else state.last_full_sync_at)
        if not self.dry_run:
            await repos.put_sync_state(self._db, self._profile, state)
        self._rec.progress(plan.entity, "download", done, done, force=True)
        counts = self._rec.counts.get(plan.entity, {})
        parts = [f"{counts[k]} {k}" for k in ("read", "created", "updated", "mapped", "unchanged", "deleted", "skipped", "failed")
                 if counts.get(k)]
        self._rec.info(("Would change: " if self.dry_run else "Done: ") + (", ".join(parts) or "no changes"),
                       plan.entity)

    # -- one page -----------------------------------------------------------------------

    async def apply_page(self, plan: EntityPlan, page: ChangePage) -> None:
        entity = plan.entity
        self._rec.count(entity, "read", len(page.upserts))
        matching, leaving = await self._split_by_filter(plan, page.upserts)
        if leaving:
            await self._remove_left_filter(plan, leaving)
        if matching:
            await self._write(plan, matching, page.etags)
        if page.deleted_ids:
            if plan.removes_records:
                await self._delete_on_client(plan, list(page.deleted_ids), reason="deleted on the server")
            else:
                self._rec.count(entity, "skipped", len(page.deleted_ids))

    async def _split_by_filter(self, plan: EntityPlan, records: Sequence[Record]) -> tuple[list[Record], list[str]]:
        """Records that match the sync filter, and the ids of those that do not (any more)."""
        if plan.sync_filter.is_empty or not records:
            return list(records), []
        pid = plan.fields.primary_id
        if can_evaluate_locally(plan.sync_filter):
            keep = [r for r in records if evaluate(plan.sync_filter, evaluable(r), self._context)]
        else:
            ids = [str(r[pid]).lower() for r in records]
            matching: set[str] = set()
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ids[start : start + ID_CHUNK]
                xml = with_ids(plan.sync_filter, plan.entity, pid, chunk)
                async for page_ids in self._server.read_ids(plan.entity, fetch_filter=xml):
                    matching.update(i.lower() for i in page_ids)
            keep = [r for r in records if str(r[pid]).lower() in matching]
        kept = {str(r[pid]).lower() for r in keep}
        return keep, [str(r[pid]).lower() for r in records if str(r[pid]).lower() not in kept]

    async def _remove_left_filter(self, plan: EntityPlan, ids: list[str]) -> None:
        held = await repos.get_record_states(self._db, self._profile, plan.entity, ids)
        held_ids = [i for i in ids if i in held]
        self._rec.count(plan.entity, "skipped", len(ids) - len(held_ids))
        if not held_ids:
            return
        if plan.removes_records:
            await self._delete_on_client(plan, held_ids, reason="no longer match the sync filter")
        else:
            self._rec.count(plan.entity, "skipped", len(held_ids))

    def _example(self, entity: str, action: str, ids: Sequence[str]) -> None:
        bucket = self.examples.setdefault((entity, action), [])
        bucket.extend(ids[: max(0, 5 - len(bucket))])

    async def _delete_on_client(self, plan: EntityPlan, ids: list[str], *, reason: str) -> None:
        if self.dry_run:
            self._rec.count(plan.entity, "deleted", len(ids))
            self._example(plan.entity, f"delete ({reason})", ids)
            return
        results = await self._client.delete_many(plan.entity, ids)
        ok = [r.id for r in results if r.ok]
        failed = [r for r in results if not r.ok]
        await repos.delete_record_states(self._db, self._profile, plan.entity, ok)
        self._rec.count(plan.entity, "deleted", len(ok))
        if ok:
            self._rec.info(f"Removed {len(ok)} record(s) from the client: {reason}", plan.entity)
        for r in failed:
            self._rec.count(plan.entity, "failed")
            self._rec.error(f"Could not remove {r.id} from the client: {r.error}", plan.entity)

    async def _write(self, plan: EntityPlan, records: list[Record], etags: Mapping[str, str]) -> None:
        entity, pid = plan.entity, plan.fields.primary_id
        projected = await _cpu(len(records), lambda: [project(r, plan.fields) for r in records])
        # A record with a client change still waiting to upload is not overwritten now: the upload
        # decides the conflict first, and the record is fetched again by id afterwards.
        waiting = await repos.undelivered_records(self._db, self._profile, entity, [str(r[pid]) for r in projected])
        if waiting:
            projected = [r for r in projected if str(r[pid]) not in waiting]
            self._rec.count(entity, "skipped", len(waiting))
            if not self.dry_run:
                await repos.add_download_retries(self._db, self._profile, entity,
                                                 {rid: WAITING_UPLOAD for rid in waiting})
        if entity == USER_ENTITY and self._users.not_created:  # owner mapping: not created a second time
            kept = [r for r in projected if str(r[pid]) not in self._users.not_created]
            self._rec.count(entity, "mapped", len(projected) - len(kept))
            projected = kept
        projected, deferred = await self._defer_missing_lookups(plan, projected)
        ids = [str(r[pid]) for r in projected]
        held = await repos.get_record_states(self._db, self._profile, entity, ids)
        hashes = await _cpu(len(projected),
                            lambda: {str(r[pid]): content_hash(r, plan.fields.fields) for r in projected})
        changed = [r for r in projected if (held.get(str(r[pid])) or _NO_STATE).content_hash != hashes[str(r[pid])]
                   or (self._remapped and _points_at(r, self._remapped))]
        self._rec.count(entity, "unchanged", len(projected) - len(changed))
        if changed and not self.dry_run and entity in self._captured:
            changed = await self._hold_client_edits(plan, changed, held, hashes)
        if not changed:
            return
        if self.dry_run:
            created = [str(r[pid]) for r in changed if str(r[pid]) not in held]
            updated = [str(r[pid]) for r in changed if str(r[pid]) in held]
            self._rec.count(entity, "created", len(created))
            self._rec.count(entity, "updated", len(updated))
            self._example(entity, "create", created)
            self._example(entity, "update", updated)
            return
        # Written and recorded slice by slice: a crash mid-page rewrites at most the slices in flight
        # (records of finished slices have their state and hash, so the re-read page skips them).
        # A few slices are in flight at once, so the client's round trips overlap instead of adding
        # up (ten 500-record requests per 5,000-record page); each slice is recorded after its own
        # write, and a failing slice cancels the others (the page is read again on the next run).
        slices = [changed[start : start + WRITE_SLICE] for start in range(0, len(changed), WRITE_SLICE)]
        if len(slices) == 1:
            await self._write_slice(plan, slices[0], etags, held, hashes, deferred)
            return
        gate = asyncio.Semaphore(WRITES_IN_FLIGHT)

        async def write(part: list[Record]) -> None:
            async with gate:
                await self._write_slice(plan, part, etags, held, hashes, deferred)

        try:
            async with asyncio.TaskGroup() as group:
                for part in slices:
                    group.create_task(write(part))
        except BaseExceptionGroup as failed:  # callers handle the error itself (offline, throttled, ...)
            raise failed.exceptions[0] from None

    async def _write_slice(
        self, plan: EntityPlan, changed: list[Record], etags: Mapping[str, str], held: Mapping[str, RecordState],
        hashes: Mapping[str, str], deferred: set[str],
    ) -> None:
        entity = plan.entity
        # Owner mapping: the client gets its own users' ids; the hashes above stay on the server form.
        outgoing = await _cpu(len(changed), lambda: [plan.fields.to_client(self._users.client_record(r))
                                                     for r in changed])
        results = await self._client.upsert_many(entity, outgoing)
        now = datetime.now(UTC)
        pid = plan.fields.primary_id
        written_records = {str(r[pid]).lower(): r for r in changed}
        states: list[RecordState] = []
        failures: dict[str, str] = {}
        succeeded: list[str] = []
        for result in results:
            rid = result.id.lower()
            if result.ok:
                succeeded.append(rid)
                states.append(
                    RecordState(
                        record_id=rid,
                        last_synced_at=now,
                        server_row_version=etags.get(rid),
                        content_hash=hashes.get(rid),
                    )
                )
                self._rec.count(entity, "updated" if rid in held else "created")
                if rid not in held:
                    self.arrived.setdefault(entity, set()).add(rid)
            else:
                failures[rid] = result.error or "rejected by the client organization"
                self._rec.count(entity, "failed")
        # What capture compares a later client edit with, field by field (off the event loop: the
        # per-field digests of a 500-record slice take tens of milliseconds).
        baselines = await _cpu(len(succeeded), lambda: [
            UploadBaseline(rid, hashes[rid], record_digests(written_records[rid], plan.fields))
            for rid in succeeded if rid in written_records])
        await repos.record_client_writes(self._db, self._profile, entity, states, baselines)
        written = set(succeeded)
        retry = {rid: DEFERRED_LOOKUP for rid in deferred if rid in written}
        retry.update(failures)
        if retry:
            await repos.add_download_retries(self._db, self._profile, entity, retry)
        for rid, error in failures.items():
            self._rec.error(f"Record {rid} was not written to the client: {error} (it will be retried)", entity)

    async def _hold_client_edits(
        self, plan: EntityPlan, changed: list[Record], held: Mapping[str, RecordState], hashes: Mapping[str, str]
    ) -> list[Record]:
        """Leave out records a user edited on the client that change capture has not seen yet.

        Capture probes every few seconds (and once more just before each download); an edit made
        in between would be overwritten by the server's version before it is captured, and lost.
        The client copy of every record about to be overwritten is read (one request per 500; none
        for new records) and a record is held back when its content is none of: what the engine
        last wrote (``record_state``), what capture last saw (the upload baseline), or the version
        being written now (a write that reached the client before a crash, whose state was not
        recorded). A held record goes to the retry set: capture queues the edit, the upload goes
        first (conflict rules apply there), then the record is fetched again.
        """
        pid = plan.fields.primary_id
        # Records rewritten because an owner mapping changed differ from what was written on purpose.
        existing = [str(r[pid]) for r in changed
                    if str(r[pid]) in held and not (self._remapped and _points_at(r, self._remapped))]
        if not existing:
            return changed
        baselines = await repos.get_upload_baselines(self._db, self._profile, plan.entity, existing)
        client_copies: list[Record] = []
        for start in range(0, len(existing), ID_CHUNK):
            chunk = existing[start : start + ID_CHUNK]
            xml = with_ids(FetchFilter(entity=plan.entity), plan.entity, plan.fields.client_id_name, chunk)
            async for page in self._client.read_pages(plan.entity, plan.fields.client_fields, fetch_filter=xml):
                client_copies.extend(page.records)

        def edited_ids() -> set[str]:
            edited: set[str] = set()
            for raw in client_copies:
                record = project(self._users.server_record(plan.fields.from_client(raw)), plan.fields)
                rid = str(record.get(pid, "")).lower()
                if rid not in held:
                    continue
                now = content_hash(record, plan.fields.fields)
                seen = baselines.get(rid)
                known = {held[rid].content_hash, hashes.get(rid), seen.content_hash if seen else None}
                if now not in known:
                    edited.add(rid)
            return edited

        edited = await _cpu(len(client_copies), edited_ids)
        if not edited:
            return changed
        self._rec.count(plan.entity, "skipped", len(edited))
        self._rec.info(f"{len(edited)} record(s) were edited on the client and not captured yet: the edit is "
                       "uploaded first, then they are fetched again", plan.entity)
        await repos.add_download_retries(self._db, self._profile, plan.entity, {rid: CLIENT_EDITED for rid in edited})
        return [r for r in changed if str(r[pid]).lower() not in edited]

    async def _defer_missing_lookups(self, plan: EntityPlan, records: list[Record]) -> tuple[list[Record], set[str]]:
        """Leave out lookups whose target the client cannot have yet; return the ids to rewrite later."""
        def targets() -> dict[str, set[str]]:
            wanted: dict[str, set[str]] = {}
            for record in records:
                for value in record.values():
                    if isinstance(value, LookupValue) and value.entity in plan.synced_entities:
                        wanted.setdefault(value.entity, set()).add(value.id.lower())
            return wanted

        wanted = await _cpu(len(records), targets)
        if not wanted:
            return records, set()
        present: dict[str, set[str]] = {}
        for target, ids in wanted.items():
            found = await repos.get_record_states(self._db, self._profile, target, sorted(ids))
            present[target] = set(found)
        pid = plan.fields.primary_id

        def leave_out() -> tuple[list[Record], set[str]]:
            out: list[Record] = []
            deferred: set[str] = set()
            for record in records:
                rid = str(record[pid])
                kept = dict(record)
                for name, value in record.items():
                    if (
                        isinstance(value, LookupValue)
                        and value.entity in plan.synced_entities
                        and value.id.lower() != rid
                        and value.id.lower() not in present[value.entity]
                    ):
                        del kept[name]
                        deferred.add(rid)
                out.append(kept)
            return out, deferred

        return await _cpu(len(records), leave_out)

    # -- lookups to records that arrived -----------------------------------------------------

    async def complete_lookups(self, plans: Sequence[EntityPlan], lookups: Mapping[str, Mapping[str, tuple[str, ...]]]) -> None:
        """Rewrite records whose lookup points at a record that arrived on the client in this run.

        A lookup to a record the client does not hold is left out when its record is written; when
        the target arrives later (it entered its sync filter, or was created), the records pointing
        at it are unchanged on the server, so the change feed never brings them again. They are read
        here by lookup value (one request per 500 arrived ids, per lookup column pointing at that
        entity) and written where the lookup is now complete; already complete ones hash equal.
        ``lookups``: entity -> lookup column -> target entities.
        """
        arrived = {entity: sorted(ids) for entity, ids in self.arrived.items() if ids}
        if not arrived or self.dry_run:
            return
        for plan in plans:
            for column, targets in lookups.get(plan.entity, {}).items():
                if column not in plan.fields.fields:
                    continue
                ids = sorted({i for t in targets if t in plan.synced_entities for i in arrived.get(t, ())})
                for start in range(0, len(ids), ID_CHUNK):
                    condition = Condition(attribute=column, operator="in", values=tuple(ids[start : start + ID_CHUNK]))
                    xml = render_filter(FetchFilter(entity=plan.entity, filter=FilterGroup(FilterType.AND, (condition,))))
                    async for page in self._server.read_pages(plan.entity, plan.read_fields, fetch_filter=xml):
                        await self.apply_page(plan, ChangePage(upserts=page.records, etags=page.etags))

    # -- retries --------------------------------------------------------------------------

    async def retry_pending(self, plan: EntityPlan) -> int:
        """Fetch the retry set's records by id and write them again; returns how many still wait.

        A record written without a missing lookup was stored with the hash of what was written, so
        its whole version differs and is written now; one whose target still does not exist is
        written the same way again, hashes equal, and leaves the set.
        """
        waiting = await repos.list_download_retries(self._db, self._profile, plan.entity)
        if not waiting or self.dry_run:
            return len(waiting)
        ids = sorted(waiting)
        self._rec.info(f"Retrying {len(ids)} record(s) by id", plan.entity)
        pid = plan.fields.primary_id
        seen: set[str] = set()
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            xml = with_ids(FetchFilter(entity=plan.entity), plan.entity, pid, chunk)
            await repos.clear_download_retries(self._db, self._profile, plan.entity, chunk)
            async for page in self._server.read_pages(plan.entity, plan.read_fields, fetch_filter=xml):
                seen.update(str(r[pid]).lower() for r in page.records)
                await self.apply_page(plan, ChangePage(upserts=page.records, etags=page.etags))
        gone = [i for i in ids if i not in seen]
        if gone:
            self._rec.info(f"{len(gone)} record(s) waiting for a retry were deleted on the server", plan.entity)
        remaining = await repos.list_download_retries(self._db, self._profile, plan.entity)
        return len(remaining)


async def _cpu(size: int, work: Callable[[], T]) -> T:
    """``work()``, in a worker thread when the batch is big enough to hold up the event loop."""
    if size < OFFLOAD_AT:
        return work()
    return await asyncio.to_thread(work)


def _points_at(record: Record, users: frozenset[str]) -> bool:
    """Whether ``record`` has a lookup to one of the given server users (owner mapping changed)."""
    return any(isinstance(v, LookupValue) and v.entity == USER_ENTITY and v.id.lower() in users
               for v in record.values())


_NO_STATE = RecordState(record_id="", last_synced_at=datetime.min.replace(tzinfo=UTC))

