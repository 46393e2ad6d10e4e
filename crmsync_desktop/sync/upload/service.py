"""``UploadService``: client changes reach the server within seconds, and the Offline Transactions queue.

One service per profile. ``run_forever`` ticks every ``probe_interval_s`` (2 s): capture client
changes into the queue, every ``sweep_interval_s`` look for client deletions on entities whose
client has no tombstones, deliver due transactions, and now and then prune old Processed ones.
A tick that did something is stored as one "upload" run (counts and log lines); quiet ticks leave
no trace. Each step is also callable on its own (``capture_once``, ``drain_once``, ``sweep_once``,
``prune``), and the queue operations of the Offline Transactions tab are here too.

Delivery pauses while the server is unreachable, throttling or needs a sign-in (exponential
backoff up to ``retry_cap_s``, or the server's Retry-After), publishing ``ServerReachability``;
capture keeps queueing meanwhile, so nothing the client does is lost. Queue operations and
delivery take turns (one lock), so a transaction archived by the admin is never sent after that.

Time is injected (``clock`` and ``sleep``), so tests run a day of ticks in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crmsync_desktop.domain import ConnectionProfile, RunTrigger, TransactionStatus
from crmsync_desktop.errors import AuthError, CrmSyncError, NetworkError, ThrottledError
from crmsync_desktop.store import repos
from crmsync_desktop.store.db import Database
from crmsync_desktop.store.values import TransactionPage
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.events import EventBus
from crmsync_desktop.sync.upload.capture import ChangeCapture
from crmsync_desktop.sync.upload.delivery import Delivery, DeliverySettings, DrainResult, ServerUnavailable
from crmsync_desktop.sync.upload.events import QueueChanged, ServerReachability
from crmsync_desktop.sync.upload.plans import UploadPlan, build_upload_plans
from crmsync_desktop.sync.upload.report import UploadLog

__all__ = ["OrganizationPairLike", "PairFactory", "Planner", "UploadService", "UploadSettings"]

log = logging.getLogger(__name__)


class OrganizationPairLike(Protocol):
    """The two signed-in connectors of a profile (``engine.OrganizationPair`` fits)."""

    server: Connector
    client: Connector

    async def aclose(self) -> None: ...


class PairFactory(Protocol):
    """Opens the connectors of a profile (``engine.ConnectorFactory`` fits)."""

    async def open(self, profile: ConnectionProfile) -> Any: ...


Planner = Callable[[OrganizationPairLike], Awaitable[Sequence[UploadPlan]]]
"""Builds the upload plans (parents first) from the signed-in pair; the engine can pass its own."""


@dataclass(frozen=True, slots=True)
class UploadSettings:
    """How often the service does what, and how long Processed transactions are kept."""

    probe_interval_s: float = 2.0
    sweep_interval_s: float = 300.0  # client deletion sweep (clients without tombstones)
    retention: timedelta = timedelta(days=30)  # Processed transactions older than this are pruned
    prune_interval_s: float = 3600.0
    plans_ttl_s: float = 300.0  # plans are rebuilt this often (and on ``invalidate_plans``)
    upload_existing: bool = False  # the first capture uploads client-only records that were already there
    delivery: DeliverySettings = field(default_factory=DeliverySettings)


class _Unreachable:
    """Backoff state of one side (server for delivery, client for capture)."""

    def __init__(self) -> None:
        self.failures = 0
        self.until: datetime | None = None
        self.detail = ""

    @property
    def reachable(self) -> bool:
        return self.failures == 0


class UploadService:
    """Change capture, delivery and the Offline Transactions queue of one profile.

    Args:
        db: the store.
        profile: the connection profile name.
        connectors: the signed-in pair (``.server``, ``.client``) or a factory with
            ``async open(profile) -> pair`` (the pair is then opened on first use and closed by
            ``aclose``).
        bus: where events go (``QueueChanged``, ``ServerReachability``, ``ConflictLogged``, and the
            run events of stored "upload" runs).
        clock: the current aware UTC time; ``sleep``: waits between ticks (both injectable).
        probe_interval_s: overrides ``settings.probe_interval_s``.
        planner: builds the upload plans; default :func:`build_upload_plans` (enabled entities).
        exclusive: a lock held by whatever else writes the client (the engine's run lock): capture
            and the deletion sweep skip a tick while it is held and hold it while they run, so a
            download in progress is never mistaken for client edits. Delivery does not take it
            (``drain_once`` may be called from inside an engine run).
        trigger: the trigger recorded on the "upload" runs.
    """

    def __init__(
        self,
        db: Database,
        profile: str,
        connectors: OrganizationPairLike | PairFactory,
        bus: EventBus | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        probe_interval_s: float | None = None,
        settings: UploadSettings | None = None,
        planner: Planner | None = None,
        exclusive: asyncio.Lock | None = None,
        trigger: RunTrigger = RunTrigger.SCHEDULE,
    ) -> None:
        self._db = db
        self.profile = profile
        self._connectors = connectors
        self.bus = bus or EventBus()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self.settings = settings or UploadSettings()
        self.probe_interval_s = probe_interval_s if probe_interval_s is not None else self.settings.probe_interval_s
        self._planner = planner
        self._exclusive = exclusive
        self._trigger = trigger
        self._pair: OrganizationPairLike | None = None
        self._owns_pair = False
        self._plans: list[UploadPlan] | None = None
        self._plans_at: datetime | None = None
        self._no_tombstones: set[str] | None = None
        self._server = _Unreachable()
        self._client = _Unreachable()
        self._queue_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_sweep: datetime | None = None
        self._last_prune: datetime | None = None

    # -- wiring ------------------------------------------------------------------------------------

    async def _open(self) -> OrganizationPairLike:
        if self._pair is None:
            source = self._connectors
            if hasattr(source, "server") and hasattr(source, "client"):
                self._pair = source  # type: ignore[assignment]
            else:
                profile = await repos.get_profile(self._db, self.profile)
                self._pair = await source.open(profile)  # type: ignore[union-attr]
                self._owns_pair = True
        assert self._pair is not None
        return self._pair

    async def plans(self) -> list[UploadPlan]:
        """The upload plans in use (built on first use, then every ``plans_ttl_s`` or after invalidation)."""
        now = self._clock()
        stale = self._plans_at is None or (now - self._plans_at).total_seconds() >= self.settings.plans_ttl_s
        if self._plans is None or stale:
            pair = await self._open()
            if self._planner is not None:
                self._plans = list(await self._planner(pair))
            else:
                self._plans = await build_upload_plans(self._db, self.profile, pair.server, pair.client)
            self._plans_at = now
            self._no_tombstones = None
        return self._plans

    def invalidate_plans(self) -> None:
        """Entity configuration or metadata changed: rebuild the plans before the next step."""
        self._plans = None
        self._no_tombstones = None

    async def aclose(self) -> None:
        """Close the connectors if this service opened them."""
        if self._pair is not None and self._owns_pair:
            await self._pair.aclose()
        self._pair = None

    # -- steps ------------------------------------------------------------------------------------

    async def capture_once(self, *, probe: bool = True, lock_held: bool = False) -> int:
        """Queue the client's changes since the last capture; returns how many transactions were queued.

        ``lock_held``: the caller already holds the ``exclusive`` lock (the engine, right before it
        downloads), so capture runs now instead of skipping.
        """
        report = UploadLog()
        try:
            return await self._capture(report, probe=probe, lock_held=lock_held)
        finally:
            await self._finish(report)

    async def sweep_once(self) -> int:
        """Queue deletions of records gone from the client (entities whose client has no tombstones)."""
        report = UploadLog()
        try:
            return await self._sweep(report)
        finally:
            await self._finish(report)

    async def drain_once(self) -> DrainResult:
        """Deliver every due transaction now (unless delivery is paused for the server)."""
        report = UploadLog()
        try:
            return await self._drain(report)
        finally:
            await self._finish(report)

    async def tick(self) -> None:
        """One round of the loop: capture, sweep when due, deliver, prune when due; stored as one run."""
        report = UploadLog()
        try:
            await self._capture(report)
            now = self._clock()
            if self._last_sweep is None:
                self._last_sweep = now
            elif (now - self._last_sweep).total_seconds() >= self.settings.sweep_interval_s:
                await self._sweep(report)
            await self._drain(report)
            if self._last_prune is None or (now - self._last_prune).total_seconds() >= self.settings.prune_interval_s:
                self._last_prune = now
                pruned = await self.prune()
                if pruned:
                    report.info(f"Removed {pruned} processed transaction(s) older than {self.settings.retention}")
        finally:
            await self._finish(report)

    async def run_forever(self) -> None:
        """Tick every ``probe_interval_s`` until ``stop()``; a failing tick is logged, never fatal."""
        self._stopping = False
        while not self._stopping:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Upload tick of %s failed", self.profile)
            if self._stopping:
                break
            await self._pause(self.probe_interval_s)

    def stop(self) -> None:
        """Make ``run_forever`` return after the current tick."""
        self._stopping = True
        self._wake.set()

    def wake(self) -> None:
        """Tick now instead of at the end of the interval (e.g. the admin set transactions to Pending)."""
        self._wake.set()

    async def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    # -- the queue (Offline Transactions tab, CLI) ----------------------------------------------

    async def list(
        self,
        status: TransactionStatus,
        after_id: int | None = None,
        limit: int = 100,
        *,
        newest_first: bool = True,
        entity: str | None = None,
        with_counts: bool = False,
    ) -> TransactionPage:
        """One page of a status tab (keyset paging: pass the previous page's ``next_after_id``)."""
        return await repos.list_transactions(self._db, self.profile, status, after_id=after_id, limit=limit,
                                             newest_first=newest_first, entity=entity, with_counts=with_counts)

    async def counts(self) -> dict[TransactionStatus, int]:
        """Transactions per status (every status present)."""
        return await repos.count_transactions(self._db, self.profile)

    async def set_pending(self, transaction_ids: Iterable[int]) -> int:
        """Set to Pending: Error and Archived transactions are delivered again (a Manual conflict set
        to Pending is delivered "client wins"). Returns how many changed."""
        async with self._queue_lock:
            changed = await repos.set_transaction_status(
                self._db, self.profile, transaction_ids, TransactionStatus.PENDING,
                only_from=(TransactionStatus.ERROR, TransactionStatus.ARCHIVED),
            )
        await self._queue_changed(changed)
        return changed

    async def archive(self, transaction_ids: Iterable[int]) -> int:
        """Set to Archived: Pending and Error transactions will never be delivered."""
        async with self._queue_lock:
            changed = await repos.set_transaction_status(
                self._db, self.profile, transaction_ids, TransactionStatus.ARCHIVED,
                only_from=(TransactionStatus.PENDING, TransactionStatus.ERROR),
            )
        await self._queue_changed(changed)
        return changed

    async def retry_errors(self) -> int:
        """Set all to Pending: every Error transaction is delivered again."""
        async with self._queue_lock:
            changed = await repos.set_all_error_to_pending(self._db, self.profile)
        await self._queue_changed(changed)
        return changed

    async def prune(self, older_than: timedelta | None = None) -> int:
        """Delete Processed transactions delivered more than ``older_than`` (default: retention) ago."""
        cutoff = self._clock() - (older_than if older_than is not None else self.settings.retention)
        async with self._queue_lock:
            removed = await repos.prune_processed_transactions(self._db, self.profile, older_than=cutoff)
        await self._queue_changed(removed)
        return removed

    @property
    def server_reachable(self) -> bool:
        return self._server.reachable

    @property
    def paused_until(self) -> datetime | None:
        """When delivery tries the server again (None: not paused)."""
        return self._server.until if not self._server.reachable else None

    # -- internals ----------------------------------------------------------------------------------

    async def _capture(self, report: UploadLog, *, probe: bool = True, lock_held: bool = False) -> int:
        if not self._due(self._client):
            return 0
        if not lock_held and self._exclusive is not None and self._exclusive.locked():
            return 0  # the engine is writing the client: capture after it
        try:
            async with (contextlib.nullcontext() if lock_held or self._exclusive is None else self._exclusive):
                plans = await self.plans()
                pair = await self._open()
                capture = self._capture_with(pair.client)
                queued = 0
                for plan in plans:
                    try:
                        queued += await capture.capture_entity(plan, report, probe=probe)
                    except (NetworkError, ThrottledError, AuthError):
                        raise
                    except CrmSyncError as exc:
                        report.error(f"Client changes could not be read: {exc.message}", plan.entity)
        except (NetworkError, ThrottledError, AuthError) as exc:
            self._unreachable(self._client, "client", exc, report)
            return 0
        self._reachable(self._client, "client", report)
        if queued:
            await self._queue_changed(queued)
        return queued

    async def _sweep(self, report: UploadLog) -> int:
        self._last_sweep = self._clock()
        if not self._due(self._client):
            return 0
        if self._exclusive is not None and self._exclusive.locked():
            return 0
        try:
            async with self._exclusive or contextlib.nullcontext():
                plans = await self.plans()
                pair = await self._open()
                if self._no_tombstones is None:
                    caps = await pair.client.capabilities([p.entity for p in plans])
                    self._no_tombstones = {p.entity for p in plans if not caps.change_tracking.get(p.entity, False)}
                capture = self._capture_with(pair.client)
                queued = 0
                for plan in plans:
                    if plan.entity in self._no_tombstones:
                        queued += await capture.sweep(plan, report)
        except (NetworkError, ThrottledError, AuthError) as exc:
            self._unreachable(self._client, "client", exc, report)
            return 0
        if queued:
            report.info(f"{queued} client deletion(s) found by the deletion sweep")
            await self._queue_changed(queued)
        return queued

    async def _drain(self, report: UploadLog) -> DrainResult:
        if not self._due(self._server):
            return DrainResult(unavailable=None)
        try:
            plans = await self.plans()
        except (NetworkError, ThrottledError, AuthError) as exc:  # plans read the server's metadata
            self._unreachable(self._server, "server", exc, report)
            return DrainResult(unavailable=ServerUnavailable(exc))
        pair = await self._open()
        delivery = Delivery(self._db, self.profile, pair.server, pair.client, clock=self._clock,
                            settings=self.settings.delivery, publish=self.bus.publish)  # type: ignore[arg-type]
        async with self._queue_lock:
            result = await delivery.drain(plans, report)
        if result.unavailable is not None:
            self._unreachable(self._server, "server", result.unavailable.error, report,
                              retry_after=result.unavailable.retry_after)
        elif result.reached_server:
            self._reachable(self._server, "server", report)
        if result.reached_server:
            await self._queue_changed(1)
        return result

    def _capture_with(self, client: Connector) -> ChangeCapture:
        return ChangeCapture(self._db, self.profile, client, clock=self._clock,
                             upload_existing=self.settings.upload_existing)

    def _due(self, side: _Unreachable) -> bool:
        return side.reachable or side.until is None or self._clock() >= side.until

    def _unreachable(
        self, side: _Unreachable, name: str, error: CrmSyncError, report: UploadLog, *, retry_after: float | None = None
    ) -> None:
        side.failures += 1
        cfg = self.settings.delivery
        delay = retry_after if retry_after is not None else cfg.backoff(side.failures)
        side.until = self._clock() + timedelta(seconds=delay)
        changed = side.failures == 1 or side.detail != error.message
        side.detail = error.message
        if changed:
            verb = "Delivery to the server" if name == "server" else "Reading client changes"
            report.warning(f"{verb} paused: {error.message} (trying again from {side.until:%H:%M:%S} UTC)")
        self.bus.publish(ServerReachability(self.profile, False, error.message, side.until, name))  # type: ignore[arg-type]

    def _reachable(self, side: _Unreachable, name: str, report: UploadLog) -> None:
        if side.reachable:
            return
        side.failures, side.until, side.detail = 0, None, ""
        report.info("The server can be reached again" if name == "server" else "The client can be read again")
        self.bus.publish(ServerReachability(self.profile, True, "", None, name))  # type: ignore[arg-type]

    async def _queue_changed(self, changed: int) -> None:
        if changed:
            counts = await repos.count_transactions(self._db, self.profile)
            self.bus.publish(QueueChanged(self.profile, counts))  # type: ignore[arg-type]

    async def _finish(self, report: UploadLog) -> None:
        await report.store(self._db, self.bus, self.profile, self._trigger)
