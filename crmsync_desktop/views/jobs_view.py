"""Jobs & Logs: what the sync is doing now, when it runs next, what every run did, and the app log.

Status you can trust (field survey §3 A): the engine state is shown as it is (syncing, throttled
until hh:mm:ss with a countdown, offline, sign-in needed, error), the running job shows entity,
phase, done/total, records per second and an ETA, and the history lists every run with its
trigger, duration, counts and error, with the run's own log one click away.

Everything arrives through the bridge (push) or ``run_op`` (engine coroutines); the GUI never
waits. The schedule editor appears only when a scheduler is given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QItemSelection, Qt, QTime, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTabWidget,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from crmsync_desktop.domain import RunStatus, RunTrigger, ScheduleConfig
from crmsync_desktop.logs import RingBufferHandler
from crmsync_desktop.sync.events import (
    EngineState,
    LogEmitted,
    Progress,
    RunFinished,
    RunStarted,
    StateChanged,
)
from crmsync_desktop.sync.scheduler import ScheduleKind, ScheduleStatus
from crmsync_desktop.ui.bridge import EngineBridge
from crmsync_desktop.ui.models.log_model import LogTableModel
from crmsync_desktop.ui.models.runs_model import (
    CHANGE_COUNTERS,
    LiveLogLine,
    RunLogModel,
    RunsTableModel,
    run_duration,
    run_totals,
)
from crmsync_desktop.ui.ops import run_op, show_error
from crmsync_desktop.ui.widgets.runs_chart import ChartPoint, RunsChart

if TYPE_CHECKING:
    from crmsync_desktop.store.values import JobRun, RunLogLine

__all__ = ["JobsEngine", "JobsScheduler", "JobsView", "format_eta"]

KIND_NAMES = {
    "connect": "Connect",
    "update_server": "Update Server",
    "sync_all": "Sync All",
    "incremental": "Incremental sync",
    "verify": "Verify",
    "upload": "Upload",
    "dry_run_sync_all": "Dry run (Sync All)",
    "dry_run_incremental": "Dry run",
    "tracking": "Tracking",
}
_STATE_TEXT = {
    EngineState.IDLE: ("Idle", "#1b6e2a"),
    EngineState.SYNCING: ("Syncing", "#0b57d0"),
    EngineState.THROTTLED: ("Throttled", "#8a5a00"),
    EngineState.OFFLINE: ("Offline", "#8a5a00"),
    EngineState.ERROR: ("Error", "#b3261e"),
    EngineState.SIGN_IN_NEEDED: ("Sign-in needed", "#b3261e"),
}


class JobsEngine(Protocol):
    """The part of ``SyncEngine`` this screen uses."""

    async def list_runs(self, profile: str | None = None, *, limit: int = 50) -> list[JobRun]: ...

    async def run_log(self, run_id: int, *, limit: int = 5000) -> list[RunLogLine]: ...

    async def sync(self, profile: str, *, trigger: RunTrigger = RunTrigger.MANUAL) -> Any: ...


class JobsScheduler(Protocol):
    """The part of ``Scheduler`` this screen uses."""

    def subscribe(self, listener: Callable[[ScheduleStatus], None]) -> Callable[[], None]: ...

    def status(self, profile: str) -> ScheduleStatus | None: ...

    def sync_now(self, profile: str) -> Any: ...

    async def configure(self, profile: str, config: ScheduleConfig) -> None: ...

    async def pause(self, profile: str | None = None) -> None: ...

    async def resume(self, profile: str | None = None) -> None: ...

    async def refresh(self) -> None: ...


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = round(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _in(delta_s: float) -> str:
    if delta_s < 60:
        return f"in {max(0, int(delta_s))} s"
    if delta_s < 3600:
        return f"in {int(delta_s // 60)} min"
    return f"in {delta_s / 3600:.1f} h"


class JobsView(QWidget):
    """The Jobs & Logs screen of the current profile.

    Args:
        engine: ``SyncEngine`` (runs, run logs; ``sync`` for Sync now when there is no scheduler).
        bridge: engine events (state, run started/finished, progress, log lines).
        profile_getter: the profile the console shows now (None: none selected); call
            :meth:`refresh` when it changes.
        ring: the in-memory log for the *Application log* sub-tab.
        scheduler: the ``Scheduler``; adds the schedule editor and Pause/Resume.
        schedule_config: reads a profile's stored ``ScheduleConfig`` for the editor (e.g.
            ``lambda p: profiles.load_config(p)`` returning ``ProfileConfig`` or ``ScheduleConfig``).

    Signals:
        run_selected(int): the admin picked a run in the history.
    """

    run_selected = Signal(int)

    def __init__(
        self,
        engine: JobsEngine,
        bridge: EngineBridge,
        profile_getter: Callable[[], str | None],
        ring: RingBufferHandler,
        scheduler: JobsScheduler | None = None,
        *,
        schedule_config: Callable[[str], Awaitable[Any]] | None = None,
        history_limit: int = 100,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("jobsView")
        self._engine = engine
        self._profile_getter = profile_getter
        self._scheduler = scheduler
        self._schedule_config = schedule_config
        self._history_limit = history_limit
        self._running_run: int | None = None
        self._running_kind = ""
        self._throttled_until: datetime | None = None
        self._schedule_status: ScheduleStatus | None = None
        self._selected_run: int | None = None
        self._manual_sync = False
        self._runs_request = 0

        # -- state + commands --------------------------------------------------------------------
        self.state_label = QLabel()
        self.state_label.setObjectName("engineState")
        self.state_label.setTextFormat(Qt.TextFormat.RichText)
        self.sync_now_button = QPushButton("Sync now")
        self.sync_now_button.setObjectName("syncNow")
        self.sync_now_button.clicked.connect(self.sync_now)
        self.pause_button = QPushButton("Pause schedule")
        self.pause_button.setObjectName("pauseResume")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.pause_button.setVisible(scheduler is not None)
        head = QHBoxLayout()
        head.addWidget(QLabel("Engine:"))
        head.addWidget(self.state_label, 1)
        head.addWidget(self.sync_now_button)
        head.addWidget(self.pause_button)

        # -- schedule editor ---------------------------------------------------------------------
        self.schedule_box = QGroupBox("Schedule")
        self.schedule_enabled = QCheckBox("Run on a schedule:")
        self.interval_mode = QRadioButton("Every")
        self.interval_mode.setObjectName("scheduleEvery")
        self.interval_mode.setChecked(True)
        self.interval_spin = QSpinBox()
        self.interval_spin.setRange(1, 7 * 24 * 60)
        self.interval_spin.setValue(60)
        self.interval_spin.setSuffix(" min")
        self.interval_spin.setAccelerated(True)
        self.daily_mode = QRadioButton("Daily at")
        self.daily_mode.setObjectName("scheduleDaily")
        self.daily_time = QTimeEdit(QTime(6, 0))
        self.daily_time.setObjectName("scheduleDailyTime")
        self.daily_time.setDisplayFormat("HH:mm")
        self.daily_time.setToolTip(
            "Local time of this computer; it stays at this time when daylight saving time starts or ends."
        )
        self.schedule_mode = QButtonGroup(self)
        self.schedule_mode.addButton(self.interval_mode)
        self.schedule_mode.addButton(self.daily_mode)
        self.apply_schedule_button = QPushButton("Apply")
        self.apply_schedule_button.clicked.connect(self.apply_schedule)
        self.next_run_label = QLabel("")
        self.next_run_label.setObjectName("nextRun")
        self.schedule_enabled.toggled.connect(self._update_schedule_inputs)
        self.interval_mode.toggled.connect(self._update_schedule_inputs)
        grid = QGridLayout(self.schedule_box)
        grid.addWidget(self.schedule_enabled, 0, 0)
        grid.addWidget(self.interval_mode, 0, 1)
        grid.addWidget(self.interval_spin, 0, 2)
        grid.addWidget(self.daily_mode, 0, 3)
        grid.addWidget(self.daily_time, 0, 4)
        grid.addWidget(self.apply_schedule_button, 0, 5)
        grid.addWidget(self.next_run_label, 0, 6)
        grid.setColumnStretch(6, 1)
        self.schedule_box.setVisible(scheduler is not None)
        self._update_schedule_inputs()

        # -- live progress -----------------------------------------------------------------------
        self.progress_box = QFrame()
        self.progress_box.setObjectName("progressBox")
        self.progress_box.setFrameShape(QFrame.Shape.StyledPanel)
        self.progress_title = QLabel("No job running.")
        self.progress_title.setObjectName("progressTitle")
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("progressBar")
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.progress_bar.setVisible(False)
        self.rate_label = QLabel("")
        self.rate_label.setObjectName("rateLabel")
        self.eta_label = QLabel("")
        self.eta_label.setObjectName("etaLabel")
        self.throttle_label = QLabel("")
        self.throttle_label.setTextFormat(Qt.TextFormat.PlainText)
        self.throttle_label.setObjectName("throttleBanner")
        self.throttle_label.setStyleSheet(
            "QLabel { background: #fff4d6; color: #6b4700; border: 1px solid #e8c66a; border-radius: 3px; "
            "padding: 3px 6px; }"
        )
        self.throttle_label.setVisible(False)
        progress_layout = QGridLayout(self.progress_box)
        progress_layout.addWidget(self.progress_title, 0, 0, 1, 3)
        progress_layout.addWidget(self.progress_bar, 1, 0)
        progress_layout.addWidget(self.rate_label, 1, 1)
        progress_layout.addWidget(self.eta_label, 1, 2)
        progress_layout.addWidget(self.throttle_label, 2, 0, 1, 3)
        progress_layout.setColumnStretch(0, 1)

        # -- history: chart, runs, run log -------------------------------------------------------
        self.chart = RunsChart()
        self.runs_model = RunsTableModel(self)
        self.runs_table = QTableView()
        self.runs_table.setObjectName("runsTable")
        self.runs_table.setModel(self.runs_model)
        self._table_defaults(self.runs_table)
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs_table.horizontalHeader().setSectionResizeMode(RunsTableModel.COL_RESULT, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 50), (1, 100), (2, 140), (3, 70), (4, 80)):
            self.runs_table.setColumnWidth(col, width)
        for col in RunsTableModel.COUNTER_COLUMNS:
            self.runs_table.setColumnWidth(col, 66)
        self.runs_table.selectionModel().selectionChanged.connect(self._run_selection_changed)
        self.run_log_model = RunLogModel(self)
        self.run_log_title = QLabel("Select a run to read its log.")
        self.run_log_title.setObjectName("runLogTitle")
        self.run_log_table = QTableView()
        self.run_log_table.setObjectName("runLogTable")
        self.run_log_table.setModel(self.run_log_model)
        self._table_defaults(self.run_log_table)
        self.run_log_table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.run_log_table.setColumnWidth(0, 70)
        self.run_log_table.setColumnWidth(1, 70)
        self.run_log_table.setColumnWidth(2, 100)
        log_pane = QWidget()
        log_layout = QVBoxLayout(log_pane)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.addWidget(self.run_log_title)
        log_layout.addWidget(self.run_log_table)
        self.history_splitter = QSplitter(Qt.Orientation.Vertical)
        self.history_splitter.addWidget(self.chart)
        self.history_splitter.addWidget(self.runs_table)
        self.history_splitter.addWidget(log_pane)
        self.history_splitter.setSizes([170, 220, 200])

        self.app_log_model = LogTableModel(ring, parent=self)
        self.app_log_table = QTableView()
        self.app_log_table.setObjectName("appLogTable")
        self.app_log_table.setModel(self.app_log_model)
        self._table_defaults(self.app_log_table)
        self.app_log_table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.app_log_table.setColumnWidth(0, 140)
        self.app_log_table.setColumnWidth(2, 200)
        self.app_log_model.rowsInserted.connect(lambda *_: self.app_log_table.scrollToBottom())

        self.tabs = QTabWidget()
        self.tabs.setObjectName("jobsTabs")
        self.tabs.addTab(self.history_splitter, "Run history")
        self.tabs.addTab(self.app_log_table, "Application log")

        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(self.schedule_box)
        layout.addWidget(self.progress_box)
        layout.addWidget(self.tabs, 1)

        # -- wiring ------------------------------------------------------------------------------
        bridge.state_changed.connect(self._state_changed)
        bridge.run_started.connect(self._run_started)
        bridge.progress.connect(self._progress)
        bridge.run_finished.connect(self._run_finished)
        bridge.log_emitted.connect(self._log_emitted)
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._every_second)
        self._tick.start()
        if scheduler is not None:
            unsubscribe = scheduler.subscribe(self._schedule_status_arrived)
            self.destroyed.connect(lambda *_: unsubscribe())
            self.destroyed.connect(lambda *_: self.app_log_model.detach())
        else:
            self.destroyed.connect(lambda *_: self.app_log_model.detach())
        self.engine_state = EngineState.IDLE
        self._show_state(EngineState.IDLE, "")
        self._update_buttons()

    @staticmethod
    def _table_defaults(table: QTableView) -> None:
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setAlternatingRowColors(True)
        table.setWordWrap(False)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(22)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)

    # -- public ----------------------------------------------------------------------------------

    @property
    def profile(self) -> str | None:
        return self._profile_getter()

    def detach(self) -> None:
        """Stop following the ring buffer (call before the view goes away for good)."""
        self.app_log_model.detach()

    def refresh(self) -> None:
        """Reload the run history (and the schedule) of the current profile."""
        profile = self.profile
        if profile is None:
            self.runs_model.set_runs([])
            self.chart.set_points([])
            self.run_log_model.set_lines(None, [])
            self._update_buttons()
            return
        self._runs_request += 1
        request = self._runs_request
        run_op(self, self._engine.list_runs(profile, limit=self._history_limit),
               on_success=lambda runs, p=profile: self._show_runs(p, runs, request))
        if self._scheduler is not None:
            status = self._scheduler.status(profile)
            if status is not None:
                self._schedule_status_arrived(status)
            if self._schedule_config is not None:
                run_op(self, self._schedule_config(profile), on_success=self._show_schedule_config)
        self._update_buttons()

    def sync_now(self) -> None:
        profile = self.profile
        if profile is None:
            return
        scheduler = self._scheduler
        if scheduler is not None:

            async def start() -> bool:  # the scheduler starts its task on the running loop
                return scheduler.sync_now(profile) is not None

            def started(ok: bool) -> None:
                if not ok:
                    self.progress_title.setText("The engine is busy with this profile; try again when it is done.")
                self._update_buttons()

            run_op(self, start(), on_success=started)
            return
        self._manual_sync = True
        self._update_buttons()

        def finished(_result: Any) -> None:
            self._manual_sync = False
            self._update_buttons()

        def failed(exc: BaseException) -> None:
            self._manual_sync = False
            self._update_buttons()
            show_error(self, exc)

        run_op(self, self._engine.sync(profile, trigger=RunTrigger.MANUAL), on_success=finished, on_error=failed)

    def toggle_pause(self) -> None:
        profile, scheduler = self.profile, self._scheduler
        if profile is None or scheduler is None:
            return
        paused = self._schedule_status is not None and self._schedule_status.kind is ScheduleKind.PAUSED
        self.pause_button.setEnabled(False)
        run_op(self, scheduler.resume(profile) if paused else scheduler.pause(profile),
               on_success=lambda _r: self._update_buttons(),
               on_error=lambda exc: (self._update_buttons(), show_error(self, exc)))

    def schedule_editor_config(self) -> ScheduleConfig:
        """The schedule the editor shows now (what Apply stores)."""
        return ScheduleConfig(
            enabled=self.schedule_enabled.isChecked(),
            interval_minutes=self.interval_spin.value(),
            daily_at=self.daily_time.time().toString("HH:mm") if self.daily_mode.isChecked() else None,
        )

    def apply_schedule(self) -> None:
        profile, scheduler = self.profile, self._scheduler
        if profile is None or scheduler is None:
            return
        config = self.schedule_editor_config()
        self.apply_schedule_button.setEnabled(False)

        def done(_r: object) -> None:
            self.apply_schedule_button.setEnabled(True)
            status = scheduler.status(profile)
            if status is not None:
                self._schedule_status_arrived(status)

        def failed(exc: BaseException) -> None:
            self.apply_schedule_button.setEnabled(True)
            show_error(self, exc)

        run_op(self, scheduler.configure(profile, config), on_success=done, on_error=failed)

    # -- history ---------------------------------------------------------------------------------

    def _show_runs(self, profile: str, runs: list[JobRun], request: int) -> None:
        if profile != self.profile or request != self._runs_request:
            return  # another profile, or a newer request is on its way (answers can overtake)
        keep = self._selected_run
        self.runs_model.set_runs(runs)
        self.chart.set_points([
            ChartPoint(
                run_id=r.id,
                started_at=r.started_at,
                records=sum(n for k, n in run_totals(r.counts).items() if k in CHANGE_COUNTERS),
                failed=run_totals(r.counts).get("failed", 0),
                duration_s=(d.total_seconds() if (d := run_duration(r)) is not None else None),
                status=r.status.value,
            )
            for r in runs if r.status is not RunStatus.RUNNING
        ])
        row = self.runs_model.row_of(keep) if keep is not None else None
        if row is None and self.runs_model.rowCount():
            row = 0
        if row is not None:
            self.runs_table.selectRow(row)

    def _run_selection_changed(self, _s: QItemSelection, _d: QItemSelection) -> None:
        rows = self.runs_table.selectionModel().selectedRows()
        if not rows:
            return
        run = self.runs_model.run(rows[0].row())
        if run.id == self._selected_run and self.run_log_model.run_id == run.id:
            return
        self._selected_run = run.id
        self.run_selected.emit(run.id)
        self.run_log_title.setText(f"Log of run #{run.id} ({run.trigger.value}, {run.status.value}) — loading…")
        run_op(self, self._engine.run_log(run.id), on_success=lambda lines, r=run: self._show_log(r, lines))

    def _show_log(self, run: JobRun, lines: list[RunLogLine]) -> None:
        if run.id != self._selected_run:
            return
        self.run_log_model.set_lines(run.id, lines)
        errors = sum(1 for line in lines if line.level in ("ERROR", "CRITICAL"))
        text = f"Log of run #{run.id} ({run.trigger.value}, {run.status.value}): {len(lines):,} lines"
        if errors:
            text += f", {errors} error{'s' if errors != 1 else ''}"
        self.run_log_title.setText(text)

    # -- live events -----------------------------------------------------------------------------

    def _mine(self, profile: str) -> bool:
        return profile == self.profile

    def _state_changed(self, event: StateChanged) -> None:
        if not self._mine(event.profile):
            return
        self._throttled_until = event.throttled_until if event.state is EngineState.THROTTLED else None
        self._show_state(event.state, event.detail)
        self._update_throttle()

    def _show_state(self, state: EngineState, detail: str) -> None:
        text, colour = _STATE_TEXT[state]
        if state is EngineState.THROTTLED and self._throttled_until is not None:
            text += f" until {self._throttled_until.astimezone():%H:%M:%S}"
        detail_html = f" — {_escape(detail)}" if detail and state is not EngineState.SYNCING else ""
        self.state_label.setText(f'<span style="color:{colour}">●</span> <b>{text}</b>{detail_html}')
        self.engine_state = state

    def _update_throttle(self) -> None:
        until = self._throttled_until
        if until is None:
            self.throttle_label.setVisible(False)
            return
        left = (until - datetime.now(UTC)).total_seconds()
        self.throttle_label.setText(
            f"Throttled by the server (service protection limits) until {until.astimezone():%H:%M:%S} — "
            + (f"retrying {_in(left)}." if left > 0 else "retrying now.")
        )
        self.throttle_label.setVisible(True)

    def _run_started(self, event: RunStarted) -> None:
        if not self._mine(event.profile):
            return
        self._running_run = event.run_id
        self._running_kind = event.kind
        self.progress_title.setText(f"{KIND_NAMES.get(event.kind, event.kind)} (run #{event.run_id}) started…")
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setVisible(True)
        self.rate_label.setText("")
        self.eta_label.setText("")
        self._update_buttons()
        self.refresh()

    def _progress(self, event: Progress) -> None:
        if not self._mine(event.profile):
            return
        if self._running_run != event.run_id:
            self._running_run = event.run_id
        kind = KIND_NAMES.get(self._running_kind, self._running_kind or "Job")
        where = f"{event.entity} · {event.phase}" if event.entity else event.phase
        if event.total:
            self.progress_bar.setRange(0, event.total)
            self.progress_bar.setValue(min(event.done, event.total))
            count = f"{event.done:,} / {event.total:,}"
        else:
            self.progress_bar.setRange(0, 0)  # busy: the total is not known (streamed pages)
            count = f"{event.done:,} so far"
        self.progress_bar.setVisible(True)
        self.progress_title.setText(f"{kind} (run #{event.run_id}) — {where}: {count}")
        self.rate_label.setText(f"{event.records_per_second:,.0f} records/s" if event.records_per_second else "")
        self.eta_label.setText(f"ETA {format_eta(event.eta_seconds)}" if event.eta_seconds is not None else "")

    def _run_finished(self, event: RunFinished) -> None:
        if not self._mine(event.profile):
            return
        self._running_run = None
        kind = KIND_NAMES.get(event.kind, event.kind)
        text = f"Last job: {kind} (run #{event.run_id}) {event.status} — {event.summary}"
        if event.error:
            text += f". {event.error}"
        self.progress_title.setText(text)
        self.progress_bar.setVisible(False)
        self.rate_label.setText("")
        self.eta_label.setText("")
        self._selected_run = event.run_id
        self._update_buttons()
        self.refresh()

    def _log_emitted(self, event: LogEmitted) -> None:
        if self._mine(event.profile) and event.run_id == self.run_log_model.run_id:
            self.run_log_model.append(LiveLogLine(datetime.now(UTC), event.level, event.message, event.entity))
            self.run_log_table.scrollToBottom()

    # -- schedule --------------------------------------------------------------------------------

    def _show_schedule_config(self, value: Any) -> None:
        config = getattr(value, "schedule", value)
        if isinstance(config, ScheduleConfig):
            self.schedule_enabled.setChecked(config.enabled)
            self.interval_spin.setValue(config.interval_minutes)
            daily = config.daily_time
            if daily is not None:
                self.daily_time.setTime(QTime(daily.hour, daily.minute))
            (self.daily_mode if daily is not None else self.interval_mode).setChecked(True)
            self._update_schedule_inputs()

    def _update_schedule_inputs(self) -> None:
        enabled = self.schedule_enabled.isChecked()
        daily = self.daily_mode.isChecked()
        self.interval_mode.setEnabled(enabled)
        self.daily_mode.setEnabled(enabled)
        self.interval_spin.setEnabled(enabled and not daily)
        self.daily_time.setEnabled(enabled and daily)

    def _schedule_status_arrived(self, status: ScheduleStatus) -> None:
        if status.profile != self.profile:
            return
        self._schedule_status = status
        self._show_schedule_status()
        self._update_buttons()

    def _show_schedule_status(self) -> None:
        status = self._schedule_status
        if status is None:
            self.next_run_label.setText("")
            return
        now = datetime.now(UTC)
        if status.kind is ScheduleKind.RUNNING:
            text = "Running now."
        elif status.kind is ScheduleKind.PAUSED:
            text = "Paused — scheduled runs wait until you resume."
        elif status.kind is ScheduleKind.DISABLED:
            text = "Not scheduled (schedule off, or the profile is not connected)."
        elif status.next_run_at is not None:
            left = (status.next_run_at - now).total_seconds()
            when = _local_when(status.next_run_at, now) + (f" ({_in(left)})" if left > 0 else " (due now)")
            text = (f"{status.consecutive_failures} failed run(s) in a row — retrying at {when}."
                    if status.kind is ScheduleKind.BACKING_OFF else f"Next run at {when}.")
        else:
            text = ""
        if status.last_success_at is not None:
            text += f"  Last success {status.last_success_at.astimezone():%Y-%m-%d %H:%M}."
        self.next_run_label.setText(text)

    def _every_second(self) -> None:
        if self._throttled_until is not None:
            self._update_throttle()
        if self._schedule_status is not None:
            self._show_schedule_status()

    def _update_buttons(self) -> None:
        has_profile = self.profile is not None
        running = self._running_run is not None or self._manual_sync
        self.sync_now_button.setEnabled(has_profile and not running)
        self.sync_now_button.setToolTip("A job is running." if running else "Download the server's changes now.")
        paused = self._schedule_status is not None and self._schedule_status.kind is ScheduleKind.PAUSED
        self.pause_button.setText("Resume schedule" if paused else "Pause schedule")
        self.pause_button.setEnabled(has_profile)
        self.schedule_box.setEnabled(has_profile)


def _local_when(at: datetime, now: datetime) -> str:
    """``14:30`` today, ``tomorrow 06:30``, otherwise ``2024-05-09 06:30`` (local time)."""
    local, today = at.astimezone(), now.astimezone().date()
    if local.date() == today:
        return f"{local:%H:%M}"
    if local.date() == today + timedelta(days=1):
        return f"tomorrow {local:%H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
