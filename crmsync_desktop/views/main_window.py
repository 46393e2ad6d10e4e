"""The console's main window, laid out like Woodford's Resco CRM Sync screen.

Ribbon groups **Server** (Connection, Update Server, Tracking, Sync All), **Entity** (Save, Sync Filter,
Upload Filter, Fields), **Check** (Dry run, Verify) and **Data** (Import, Export); a profile selector
when there are several profiles; tabs **Synchronization** (the entity grid), **Offline
Transactions** and **Jobs & Logs**; a progress strip with Cancel for long operations; a status bar
with the connection state, throttling, the offline queue, last and next sync.

Everything that waits on I/O runs through ``ui.ops.run_op`` on the qasync loop; no dialog is ever
``exec()``-ed (boxes are ``open()``-ed and answered through signals).

Integration points for screens built elsewhere: ``filter_editor`` (the Sync Filter / Upload Filter
dialog; ``FilterEditorDialog`` unless another factory is given), and, optional and hidden until
given, ``transactions_view`` (the Offline Transactions tab) and ``jobs_view`` (Jobs & Logs; until
then the live log table is shown).
A hosted view with a ``set_profile(name: str | None)`` method is told when the profile changes;
``profile_changed`` carries the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSizePolicy,
    QTableView,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from crmsync_desktop.domain import ConnectionProfile, ConnectionState, ProfileConfig, RunStatus
from crmsync_desktop.logs import RingBufferHandler
from crmsync_desktop.sync.engine import RunResult, SyncEngine
from crmsync_desktop.sync.events import EngineState, Progress, RunFinished, RunStarted, StateChanged
from crmsync_desktop.sync.profiles import ProfileService
from crmsync_desktop.sync.scheduler import ScheduleKind, ScheduleStatus
from crmsync_desktop.sync.upload.events import QueueChanged
from crmsync_desktop.ui.bridge import EngineBridge
from crmsync_desktop.ui.device_code import DeviceCodePromptLike, DeviceCodeRelay
from crmsync_desktop.ui.models.log_model import LogTableModel
from crmsync_desktop.ui.models.profiles_model import ProfilesTableModel
from crmsync_desktop.ui.ops import run_op
from crmsync_desktop.ui.widgets.message import MessageLevel
from crmsync_desktop.ui.widgets.progress import ProgressPanel
from crmsync_desktop.ui.widgets.ribbon import add_ribbon_group, toolbar_icon
from crmsync_desktop.views.connection_dialog import ConnectionDialog
from crmsync_desktop.views.entities_view import EntitiesView, FilterEditorFactory
from crmsync_desktop.views.filter_editor import FilterEditorDialog
from crmsync_desktop.views.tracking_dialog import TrackingDialog
from crmsync_desktop.views.verify_view import DryRunDialog, VerifyDialog

__all__ = ["CONFIG_FILE_FILTER", "MainWindow"]

CONFIG_FILE_FILTER = "crmsync configuration (*.json);;All files (*)"
APP_TITLE = "crmsync-desktop"

_RUN_LABELS = {
    "connect": "Connect",
    "update_server": "Update Server",
    "tracking": "Tracking",
    "sync_all": "Sync All",
    "incremental": "Sync",
    "verify": "Verify",
    "dry_run_sync_all": "Dry run",
    "dry_run_incremental": "Dry run",
}

_STATE_LABELS = {
    EngineState.IDLE: "Idle",
    EngineState.SYNCING: "Running",
    EngineState.THROTTLED: "Throttled",
    EngineState.OFFLINE: "Offline",
    EngineState.ERROR: "Error",
    EngineState.SIGN_IN_NEEDED: "Sign-in needed",
}


@dataclass
class _Operation:
    label: str
    profile: str
    task: asyncio.Task[Any]


def _time(at: datetime) -> str:
    local = at.astimezone()
    return local.strftime("%H:%M") if local.date() == datetime.now().astimezone().date() else local.strftime(
        "%Y-%m-%d %H:%M")


class MainWindow(QMainWindow):
    """Shell of the admin console. Collaborators arrive through ``__init__`` (no global look-ups)."""

    profile_changed = Signal(str)  # "" when there is no profile
    hidden_to_tray = Signal()  # the window closed but the app keeps syncing in the tray

    def __init__(
        self,
        engine: SyncEngine,
        bridge: EngineBridge,
        profiles: ProfileService,
        ring: RingBufferHandler,
        *,
        data_dir: Path,
        keyring_status: str,
        on_quit: Callable[[], None] | None = None,
        device_codes: DeviceCodeRelay | None = None,
        tray_available: Callable[[], bool] | bool = False,
        filter_editor: FilterEditorFactory | None = None,
        transactions_view: QWidget | Callable[[str], QWidget] | None = None,
        jobs_view: QWidget | None = None,
    ) -> None:
        super().__init__()
        self._engine = engine
        self._bridge = bridge
        self._profiles = profiles
        self._on_quit = on_quit
        self._device_codes = device_codes
        self._quit_requested = False
        self._tray_available = tray_available
        self._profile_list: list[ConnectionProfile] = []
        self._current: ConnectionProfile | None = None
        self._operation: _Operation | None = None
        self._external_run: RunStarted | None = None
        self._states: dict[str, StateChanged] = {}
        self._schedules: dict[str, ScheduleStatus] = {}
        self._queues: dict[str, QueueChanged] = {}
        self._last_sync: dict[str, datetime] = {}
        self._close_confirmed = False
        self._close_after_operation = False
        self._hosted: list[QWidget] = []
        self.connection_dialog: ConnectionDialog | None = None
        self.tracking_dialog: TrackingDialog | None = None
        self.report_dialogs: list[QWidget] = []
        self.prompt: QMessageBox | None = None
        self.resize(1280, 760)
        self.setWindowTitle(f"{APP_TITLE}[*]")

        self._build_actions()
        self._build_toolbar()
        self._build_menus()

        # -- central area ----------------------------------------------------------------
        self.progress_panel = ProgressPanel()
        self.progress_panel.cancel_requested.connect(self.cancel_operation)
        self.entities = EntitiesView(engine)
        self.entities.dirty_changed.connect(self._dirty_changed)
        self.entities.current_changed.connect(self._update_actions)
        self.entities.loaded.connect(self._entities_loaded)

        self.log_model = LogTableModel(ring, parent=self)
        self.log_view = QTableView()
        self.log_view.setObjectName("liveLog")
        self.log_view.setModel(self.log_model)
        self.log_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.log_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.log_view.verticalHeader().setVisible(False)
        self.log_view.setAlternatingRowColors(True)
        self.log_view.setWordWrap(False)
        self.log_view.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.log_view.setColumnWidth(0, 150)
        self.log_view.setColumnWidth(2, 260)
        self.log_model.rowsInserted.connect(lambda *_: self.log_view.scrollToBottom())

        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.tabs.addTab(self.entities, "Synchronization")
        self.transactions_view: QWidget | None = None
        self._transactions_factory: Callable[[str], QWidget] | None = None
        self.jobs_view: QWidget = self.log_view
        self.tabs.addTab(self.log_view, "Jobs && Logs")

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 4, 6, 0)
        layout.addWidget(self.progress_panel)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        # -- status bar ------------------------------------------------------------------
        self.state_label = QLabel()
        self.state_label.setObjectName("stateLabel")
        self.queue_label = QLabel()
        self.queue_label.setObjectName("queueLabel")
        self.queue_label.hide()
        self.sync_times_label = QLabel()
        self.sync_times_label.setObjectName("syncTimesLabel")
        self.status_label = QLabel()  # transient notes ("3 connection profiles")
        self.status_label.setObjectName("statusNote")
        self.statusBar().addWidget(self.state_label)
        self.statusBar().addWidget(self.queue_label)
        self.statusBar().addWidget(self.sync_times_label)
        self.statusBar().addWidget(self.status_label, 1)
        keyring = QLabel(f"Keyring: {keyring_status}")
        keyring.setObjectName("keyringLabel")
        self.statusBar().addPermanentWidget(keyring)
        data = QLabel()
        data.setObjectName("dataLabel")
        data.setText(data.fontMetrics().elidedText(f"Data: {data_dir}", Qt.TextElideMode.ElideMiddle, 320))
        data.setToolTip(f"Data folder: {data_dir}")
        self.statusBar().addPermanentWidget(data)
        for label in (self.state_label, self.queue_label, self.sync_times_label, keyring):
            label.setStyleSheet("QLabel { padding: 0 10px 0 2px; border-right: 1px solid palette(mid); }")

        # -- engine events ---------------------------------------------------------------
        bridge.state_changed.connect(self._state_changed)
        bridge.progress.connect(self._progress)
        bridge.run_started.connect(self._run_started)
        bridge.run_finished.connect(self._run_finished)
        bridge.other_event.connect(self._other_event)
        if device_codes is not None:
            device_codes.prompted.connect(self._device_code)

        self.set_filter_editor(filter_editor or FilterEditorDialog)
        if transactions_view is not None:
            self.set_transactions_view(transactions_view)
        if jobs_view is not None:
            self.set_jobs_view(jobs_view)
        self._update_status()
        self._update_actions()

    # =====================================================================================
    # building
    # =====================================================================================

    def _action(self, text: str, icon: str | None, tip: str, slot: Callable[[], object],
                shortcuts: list[QKeySequence] | None = None) -> QAction:
        action = QAction(text, self)
        if icon:
            action.setIcon(toolbar_icon(icon))
        if shortcuts:
            action.setShortcuts(shortcuts)
            tip += "  (" + ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in shortcuts) + ")"
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda *_: slot())
        return action

    def _build_actions(self) -> None:
        key = QKeySequence
        self.connection_action = self._action("Connection", "connection",
                                              "Set up or change the connection of the current profile",
                                              self.open_connection_dialog)
        self.new_connection_action = self._action("New connection…", None, "Add another connection profile",
                                                  lambda: self.open_connection_dialog(new=True))
        self.edit_connection_action = self._action("Edit connection…", None, "Change the current profile's connection",
                                                   self.open_connection_dialog)
        connection_menu = QMenu(self)
        connection_menu.addAction(self.edit_connection_action)
        connection_menu.addAction(self.new_connection_action)
        self.connection_action.setMenu(connection_menu)
        self.update_server_action = self._action(
            "Update Server", "update_server",
            "Copy the server's metadata changes (tables, columns, labels) to the client organization",
            self.update_server)
        self.tracking_action = self._action(
            "Tracking", "tracking",
            "What the server tracks: deletions, owner changes, N:N removals and Dataverse change tracking",
            self.open_tracking_dialog)
        self.sync_all_action = self._action(
            "Sync All", "sync_all", "Synchronize every enabled entity now, reading everything",
            self.sync_all, [key("F5"), key("Ctrl+Shift+S")])
        self.sync_changes_action = self._action(
            "Sync changes", None, "Synchronize only what changed since the last sync", self.sync_changes)
        self.save_action = self._action("Save", "save", "Save the entity selection, filters and fields",
                                        self.save_entities, [key("Ctrl+S")])
        self.discard_action = self._action("Discard changes", None, "Forget the unsaved entity changes",
                                           self.entities_discard)
        self.sync_filter_action = self._action("Sync Filter", "sync_filter",
                                               "Edit which server records of the selected entity reach the client",
                                               lambda: self.entities.open_filter_editor("sync"))
        self.upload_filter_action = self._action("Upload Filter", "upload_filter",
                                                 "Edit which client changes of the selected entity go to the server",
                                                 lambda: self.entities.open_filter_editor("upload"))
        self.fields_action = self._action("Fields", "fields", "Choose the fields of the selected entity",
                                          self.entities_fields)
        self.dry_run_action = self._action("Dry run", "dry_run",
                                           "Show what a sync would create, update and delete, without writing anything",
                                           self.dry_run)
        self.verify_action = self._action("Verify", "verify",
                                          "Compare both organizations and list the differences", self.verify)
        self.import_action = self._action("Import", "import",
                                          "Import a profile's configuration from a file (never contains secrets)",
                                          self.import_config_action, [key("Ctrl+O")])
        self.export_action = self._action("Export", "export",
                                          "Export the current profile's configuration (secrets are never exported)",
                                          self.export_config_action, [key("Ctrl+E")])
        self.refresh_action = self._action("Refresh", "refresh", "Reload profiles and entities", self.refresh,
                                           [key("Ctrl+R")])
        self.cancel_action = self._action("Cancel operation", "cancel", "Stop the running operation safely",
                                          self.cancel_operation)
        self.quit_action = self._action("Quit", None, "Quit crmsync-desktop", self.request_quit, [key("Ctrl+Q")])
        self.sync_filter_action.setVisible(False)  # until a filter editor is wired (set_filter_editor)
        self.upload_filter_action.setVisible(False)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Ribbon")
        toolbar.setObjectName("ribbon")
        toolbar.setMovable(False)
        toolbar.setFloatable(False)
        self.server_group = add_ribbon_group(toolbar, "Server", [self.connection_action, self.update_server_action,
                                                                  self.tracking_action, self.sync_all_action])
        self.entity_group = add_ribbon_group(toolbar, "Entity", [self.save_action, self.sync_filter_action,
                                                                  self.upload_filter_action, self.fields_action])
        self.check_group = add_ribbon_group(toolbar, "Check", [self.dry_run_action, self.verify_action])
        self.data_group = add_ribbon_group(toolbar, "Data", [self.import_action, self.export_action])
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        self.profile_combo = QComboBox()
        self.profile_combo.setObjectName("profileSelector")
        self.profile_combo.setMinimumWidth(200)
        self.profile_combo.setToolTip("The connection profile shown (one server/client organization pair)")
        self.profiles_model = ProfilesTableModel(self)
        self.profile_combo.setModel(self.profiles_model)
        self.profile_combo.activated.connect(self._profile_chosen)
        self.profile_box = QWidget()
        box = QHBoxLayout(self.profile_box)
        box.setContentsMargins(8, 0, 8, 0)
        box.addWidget(QLabel("Profile:"))
        box.addWidget(self.profile_combo)
        self.profile_box_action = toolbar.addWidget(self.profile_box)
        self.profile_box_action.setVisible(False)
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.new_connection_action, self.import_action, self.export_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        server = bar.addMenu("&Server")
        server.addActions([self.edit_connection_action, self.update_server_action, self.tracking_action,
                           self.sync_all_action,
                           self.sync_changes_action])
        server.addSeparator()
        server.addActions([self.dry_run_action, self.verify_action])
        server.addSeparator()
        server.addAction(self.cancel_action)
        entity = bar.addMenu("&Entity")
        entity.addActions([self.save_action, self.discard_action, self.sync_filter_action, self.upload_filter_action,
                           self.fields_action])
        view = bar.addMenu("&View")
        view.addAction(self.refresh_action)

    # =====================================================================================
    # integration points (console B's screens; the composition root fills them)
    # =====================================================================================

    def set_filter_editor(self, factory: FilterEditorFactory) -> None:
        """Wire the filter editor dialog (``FilterEditorDialog``); shows Sync Filter / Upload Filter."""
        self.entities.filter_editor = factory
        self.sync_filter_action.setVisible(True)
        self.upload_filter_action.setVisible(True)
        self._update_actions()

    def set_transactions_view(self, view: QWidget | Callable[[str], QWidget]) -> None:
        """Host the Offline Transactions screen as the second tab.

        ``view`` is a widget (told about profile changes like the others) or a factory
        ``view(profile_name) -> QWidget`` for screens bound to one profile's queue; the tab is rebuilt
        when the profile changes and hidden while there is no profile.
        """
        if isinstance(view, QWidget):
            self._transactions_factory = None
            self._place_transactions(view)
            self._host(view)
        else:
            self._transactions_factory = view
            self._rebuild_transactions()

    def _place_transactions(self, view: QWidget | None) -> None:
        old = self.transactions_view
        index = self.tabs.indexOf(old) if old is not None else -1
        if index >= 0:
            self.tabs.removeTab(index)
            if old is not view and old is not None:
                old.deleteLater()
        self.transactions_view = view
        if view is not None:
            self.tabs.insertTab(1, view, "Offline Transactions")

    def _rebuild_transactions(self) -> None:
        factory = self._transactions_factory
        if factory is None:
            return
        name = self.current_profile_name()
        self._place_transactions(factory(name) if name is not None else None)

    def set_jobs_view(self, view: QWidget) -> None:
        """Host the Jobs & Logs screen (replaces the live log table)."""
        index = self.tabs.indexOf(self.jobs_view)
        self.tabs.removeTab(index)
        self.tabs.insertTab(index, view, "Jobs && Logs")
        self.jobs_view = view
        self._host(view)

    def set_schedule_status(self, status: ScheduleStatus) -> None:
        """The scheduler's news for the status bar (``scheduler.subscribe(window.set_schedule_status)``)."""
        self._other_event(status)

    def _host(self, view: QWidget) -> None:
        self._hosted.append(view)
        self._tell(view)

    def _tell(self, view: QWidget) -> None:
        """A hosted view follows the profile through ``set_profile(name)``, or else reloads with ``refresh()``."""
        setter = getattr(view, "set_profile", None)
        if callable(setter):
            setter(self.current_profile_name())
            return
        refresh = getattr(view, "refresh", None)
        if callable(refresh):
            refresh()

    # =====================================================================================
    # profiles
    # =====================================================================================

    def current_profile_name(self) -> str | None:
        return self._current.name if self._current else None

    @property
    def current_profile(self) -> ConnectionProfile | None:
        return self._current

    def selected_profile(self) -> ConnectionProfile | None:  # the old shell's name, kept for callers
        return self._current

    def refresh(self) -> asyncio.Task[Any] | None:
        """Reload the profile list and the current profile's entities (asks about unsaved edits first)."""
        if self.entities.is_dirty:
            self.ask_unsaved(lambda: self._reload_profiles(None))
            return None
        return self._reload_profiles(None)

    def _reload_profiles(self, select: str | None) -> asyncio.Task[Any]:
        return run_op(self, self._engine.list_profiles(), on_success=lambda ps: self.show_profiles(ps, select))

    def show_profiles(self, profiles: list[ConnectionProfile], select: str | None = None) -> None:
        keep = select or self.current_profile_name()
        self._profile_list = list(profiles)
        self.profiles_model.set_profiles(profiles)
        self.profile_box_action.setVisible(len(profiles) > 1)
        self.status_label.setText(f"{len(profiles)} connection profile(s)")
        names = [p.name for p in profiles]
        name = keep if keep in names else (names[0] if names else None)
        self._select(name)

    def _select(self, name: str | None) -> None:
        self._current = next((p for p in self._profile_list if p.name == name), None)
        if name is not None:
            self.profile_combo.setCurrentIndex([p.name for p in self._profile_list].index(name))
        self.entities.load(name)
        self.profile_changed.emit(name or "")
        for view in self._hosted:
            self._tell(view)
        self._rebuild_transactions()
        self._update_title()
        self._update_status()
        self._update_actions()

    def _profile_chosen(self, index: int) -> None:
        name = self._profile_list[index].name if 0 <= index < len(self._profile_list) else None
        if name == self.current_profile_name():
            return
        if self.entities.is_dirty:
            self.profile_combo.setCurrentIndex(self._index_of(self.current_profile_name()))
            self.ask_unsaved(lambda: self._select(name))
            return
        self._select(name)

    def select_profile(self, name: str) -> None:
        """Switch to ``name`` as if picked in the selector (asks about unsaved edits)."""
        self._profile_chosen(self._index_of(name))

    def _index_of(self, name: str | None) -> int:
        names = [p.name for p in self._profile_list]
        return names.index(name) if name in names else -1

    # =====================================================================================
    # unsaved changes
    # =====================================================================================

    def _dirty_changed(self, dirty: bool) -> None:
        self.setWindowModified(dirty)
        self._update_actions()

    def _update_title(self) -> None:
        name = self.current_profile_name()
        self.setWindowTitle(f"{name}[*] — {APP_TITLE}" if name else f"{APP_TITLE}[*]")

    def ask_unsaved(self, then: Callable[[], None]) -> QMessageBox:
        """Save / Discard / Cancel the entity grid's unsaved changes, then ``then()`` (not on Cancel)."""
        count = len(self.entities.model.dirty_configs())
        box = QMessageBox(
            QMessageBox.Icon.Warning, "Unsaved changes",
            f"{count} entit{'y has' if count == 1 else 'ies have'} unsaved changes in '{self.current_profile_name()}'.\n"
            "Save them before you continue?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setObjectName("unsavedChanges")
        box.setDefaultButton(QMessageBox.StandardButton.Save)

        def answered(button: Any) -> None:
            role = box.standardButton(button)
            if role == QMessageBox.StandardButton.Save:
                self.entities.save(on_saved=then)
            elif role == QMessageBox.StandardButton.Discard:
                self.entities.discard_changes()
                then()

        box.buttonClicked.connect(answered)
        self.prompt = box
        box.open()
        return box

    def save_entities(self) -> asyncio.Task[Any] | None:
        return self.entities.save()

    def entities_discard(self) -> None:
        self.entities.discard_changes()

    def entities_fields(self) -> None:
        self.entities.open_fields_dialog()

    # =====================================================================================
    # connection
    # =====================================================================================

    def open_connection_dialog(self, new: bool = False) -> ConnectionDialog:
        profile = None if new else self._current
        if self.connection_dialog is not None:
            self.connection_dialog.close()
        dialog = ConnectionDialog(self._engine, self._bridge, profile,
                                  existing_names=[p.name for p in self._profile_list],
                                  device_codes=self._device_codes, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(self._connection_saved)
        dialog.connected.connect(lambda name: self._reload_profiles(name))
        dialog.disconnected.connect(lambda name: self._reload_profiles(name))
        dialog.destroyed.connect(lambda *_: setattr(self, "connection_dialog", None))
        self.connection_dialog = dialog
        dialog.open()
        return dialog

    def _connection_saved(self, profile: ConnectionProfile) -> None:
        known = {p.name for p in self._profile_list}
        if profile.name in known and profile.name == self.current_profile_name():
            self._profile_list = [profile if p.name == profile.name else p for p in self._profile_list]
            self._current = profile
            self.profiles_model.set_profiles(self._profile_list)
            self.profile_combo.setCurrentIndex(self._index_of(profile.name))
            self._update_status()
            self._update_actions()
        elif not self.entities.is_dirty:
            self._reload_profiles(profile.name)

    def _device_code(self, prompt: DeviceCodePromptLike) -> None:
        if self.connection_dialog is not None and self.connection_dialog.isVisible():
            return  # the dialog shows it
        box = QMessageBox(QMessageBox.Icon.Information, "Sign in to Dynamics 365",
                          f"Open {prompt.verification_uri} in a browser and enter the code\n\n{prompt.user_code}\n\n"
                          "The sync continues once you have signed in.", QMessageBox.StandardButton.Ok, self)
        box.setObjectName("deviceCodeBox")
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.open()

    # =====================================================================================
    # long operations
    # =====================================================================================

    @property
    def operation_running(self) -> bool:
        return self._operation is not None

    def _start(self, label: str, coro: Coroutine[Any, Any, Any], on_success: Callable[[Any], None]) -> asyncio.Task[Any] | None:
        profile = self.current_profile_name()
        if profile is None or self._operation is not None:
            coro.close()
            if self._operation is not None:
                self.statusBar().showMessage(f"{self._operation.label} is still running.", 5000)
            return None
        self.progress_panel.start(f"{label} — {profile}")
        self.entities.message.clear()
        task = run_op(self, coro, on_success=on_success)
        self._operation = _Operation(label, profile, task)
        task.add_done_callback(self._operation_done)
        self._update_actions()
        return task

    def _operation_done(self, task: asyncio.Task[Any]) -> None:
        op = self._operation
        self._operation = None
        self.progress_panel.finish()
        if op is not None and task.cancelled():
            self.entities.message.show_message(
                MessageLevel.WARNING, f"{op.label} cancelled",
                "It stopped safely; what was written so far is kept and recorded in Jobs & Logs. "
                "Running it again continues from there.")
        self._update_actions()
        if self._close_after_operation:
            self._close_after_operation = False
            self.close()

    def cancel_operation(self) -> None:
        if self._operation is not None and not self._operation.task.done():
            self._operation.task.cancel()

    def _report_run(self, label: str, result: RunResult, lines: list[str] | None = None) -> None:
        if result.status is RunStatus.SUCCEEDED:
            text = result.summary if not lines else "\n".join(lines[:12])
            self.entities.message.show_message(MessageLevel.SUCCESS, f"{label} finished", text)
        else:
            self.entities.message.show_message(
                MessageLevel.ERROR, f"{label} failed",
                f"{result.error or result.summary}\nThe run log in Jobs & Logs has every step.")
        if not self.entities.is_dirty:
            self.entities.reload_keeping_message(self.current_profile_name() or "")

    def update_server(self) -> asyncio.Task[Any] | None:
        profile = self.current_profile_name()
        if profile is None:
            return None

        def done(value: tuple[RunResult, Any]) -> None:
            result, report = value
            self._report_run("Update Server", result, list(report.lines()) if report is not None else None)

        return self._start("Update Server", self._engine.update_server(profile), done)

    def open_tracking_dialog(self) -> TrackingDialog | None:
        """The Tracking dialog (Woodford's Plugins screen) for the current profile; it runs its own save."""
        profile = self.current_profile_name()
        if profile is None:
            return None
        dialog = TrackingDialog(self._engine, profile, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(lambda *_: self.entities.is_dirty or self.entities.reload_keeping_message(profile))
        self.tracking_dialog = dialog
        dialog.open()
        return dialog

    def sync_all(self) -> asyncio.Task[Any] | None:
        profile = self.current_profile_name()
        if profile is None:
            return None
        return self._start("Sync All", self._engine.sync(profile, full=True),
                           lambda result: self._report_run("Sync All", result))

    def sync_changes(self) -> asyncio.Task[Any] | None:
        profile = self.current_profile_name()
        if profile is None:
            return None
        return self._start("Sync", self._engine.sync(profile, full=False),
                           lambda result: self._report_run("Sync", result))

    def dry_run(self) -> asyncio.Task[Any] | None:
        profile = self.current_profile_name()
        if profile is None:
            return None

        def done(value: tuple[RunResult, Mapping[tuple[str, str], list[str]]]) -> None:
            result, examples = value
            self._show_report(DryRunDialog(profile, result, examples, self))

        return self._start("Dry run", self._engine.dry_run(profile), done)

    def verify(self) -> asyncio.Task[Any] | None:
        profile = self.current_profile_name()
        if profile is None:
            return None

        def done(value: tuple[RunResult, Any]) -> None:
            result, report = value
            self._show_report(VerifyDialog(profile, result, report, self))

        return self._start("Verify", self._engine.verify(profile), done)

    def _show_report(self, dialog: QWidget) -> None:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.report_dialogs = [d for d in self.report_dialogs if d.isVisible()] + [dialog]
        dialog.show()

    # =====================================================================================
    # engine events
    # =====================================================================================

    def _state_changed(self, event: StateChanged) -> None:
        self._states[event.profile] = event
        if event.profile == self.current_profile_name():
            self._update_status()
            self._update_actions()

    def _progress(self, event: Progress) -> None:
        if event.profile == self.current_profile_name():
            self.progress_panel.update_progress(event)

    def _run_started(self, event: RunStarted) -> None:
        if event.profile != self.current_profile_name() or self._operation is not None:
            return
        self._external_run = event  # started by the schedule or the Connection dialog
        self.progress_panel.start(f"{_RUN_LABELS.get(event.kind, event.kind)} — {event.profile}")
        self.progress_panel.cancel_button.hide()
        self._update_actions()

    def _run_finished(self, event: RunFinished) -> None:
        if event.kind in ("sync_all", "incremental") and event.status == RunStatus.SUCCEEDED.value:
            self._last_sync[event.profile] = datetime.now().astimezone()
        if self._external_run is not None and self._external_run.run_id == event.run_id:
            self._external_run = None
            self.progress_panel.finish()
            self.progress_panel.cancel_button.show()
            if event.profile == self.current_profile_name() and not self.entities.is_dirty:
                self.entities.load(event.profile)
        self._update_status()
        self._update_actions()

    def _other_event(self, event: object) -> None:
        if isinstance(event, ScheduleStatus):
            self._schedules[event.profile] = event
            if event.last_success_at is not None:
                self._last_sync[event.profile] = event.last_success_at
        elif isinstance(event, QueueChanged):
            self._queues[event.profile] = event
        else:
            return
        self._update_status()

    def _entities_loaded(self) -> None:
        name = self.current_profile_name()
        times = [r.status.last_sync_at for r in (self.entities.model.row_at(i)
                                                  for i in range(self.entities.model.rowCount()))
                 if r.status.last_sync_at is not None]
        if name and times:
            latest = max(times)
            if name not in self._last_sync or self._last_sync[name] < latest:
                self._last_sync[name] = latest
        self._update_status()
        self._update_actions()

    # =====================================================================================
    # status and actions
    # =====================================================================================

    def _update_status(self) -> None:
        p = self._current
        if p is None:
            self.state_label.setText("No connection profile")
            self.sync_times_label.setText("")
            self.queue_label.hide()
            return
        connection = "Connected" if p.state is ConnectionState.CONNECTED else "Not connected"
        state = self._states.get(p.name)
        text = f"{p.name}: {connection}"
        if state is not None and state.state is not EngineState.IDLE:
            text += f" · {_STATE_LABELS[state.state]}"
            if state.state is EngineState.THROTTLED and state.throttled_until is not None:
                text += f" until {state.throttled_until.astimezone().strftime('%H:%M:%S')}"
            elif state.detail and state.state is not EngineState.SYNCING:
                text += f": {state.detail}"
        self.state_label.setText(text)
        self.state_label.setToolTip(state.detail if state is not None else "")
        parts = []
        last = self._last_sync.get(p.name)
        parts.append(f"Last sync: {_time(last) if last else 'never'}")
        schedule = self._schedules.get(p.name)
        if schedule is not None:
            if schedule.kind is ScheduleKind.PAUSED:
                parts.append("Schedule paused")
            elif schedule.kind is ScheduleKind.DISABLED:
                parts.append("No schedule")
            elif schedule.next_run_at is not None:
                parts.append(f"Next: {_time(schedule.next_run_at)}")
        self.sync_times_label.setText(" · ".join(parts))
        queue = self._queues.get(p.name)
        if queue is not None:
            counts = {str(k): v for k, v in queue.counts.items()}
            pending, errors = counts.get("Pending", 0), counts.get("Error", 0)
            self.queue_label.setText(f"Offline queue: {pending} pending, {errors} error(s)")
            self.queue_label.setVisible(True)
        else:
            self.queue_label.hide()

    def _busy(self) -> bool:
        name = self.current_profile_name()
        return (self._operation is not None or self._external_run is not None
                or (name is not None and self._engine.is_running(name)))

    def _update_actions(self, *_: object) -> None:
        p = self._current
        connected = p is not None and p.state is ConnectionState.CONNECTED
        busy = self._busy()
        for action in (self.update_server_action, self.tracking_action, self.sync_all_action, self.sync_changes_action,
                       self.dry_run_action, self.verify_action):
            action.setEnabled(connected and not busy)
        self.cancel_action.setEnabled(self._operation is not None)
        self.edit_connection_action.setEnabled(p is not None)
        self.export_action.setEnabled(p is not None)
        dirty = self.entities.is_dirty
        self.save_action.setEnabled(dirty)
        self.discard_action.setEnabled(dirty)
        row = self.entities.current_row()
        has_row = row is not None
        self.fields_action.setEnabled(has_row and self.entities.schema is not None)
        can_filter = has_row and self.entities.filter_editor is not None
        self.sync_filter_action.setEnabled(can_filter)
        self.upload_filter_action.setEnabled(can_filter)

    # =====================================================================================
    # data (Import / Export)
    # =====================================================================================

    def import_config_action(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import configuration", "", CONFIG_FILE_FILTER)
        if path:
            self.import_from(path)

    def import_from(self, path: str) -> asyncio.Task[Any]:
        return run_op(self, self._profiles.import_from_file(path), on_success=self._imported)

    def _imported(self, cfg: ProfileConfig) -> None:
        self.statusBar().showMessage(
            f"Imported '{cfg.profile.name}' ({len(cfg.entities)} entities). "
            "Enter its passwords in Connection before syncing.",
            10_000,
        )
        if self.entities.is_dirty:
            self._reload_profiles(None)
        else:
            self._reload_profiles(cfg.profile.name)

    def export_config_action(self) -> None:
        profile = self._current
        if profile is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export configuration", f"{profile.name}.crmsync.json", CONFIG_FILE_FILTER
        )
        if path:
            self.export_to(profile.name, path)

    def export_to(self, profile: str, path: str) -> asyncio.Task[Any]:
        return run_op(
            self,
            self._profiles.export_to_file(profile, path),
            on_success=lambda target: self.statusBar().showMessage(f"Exported '{profile}' to {target}", 10_000),
        )

    # =====================================================================================
    # closing
    # =====================================================================================

    def set_tray_available(self, available: bool) -> None:
        """Whether closing the window hides it to a tray icon (the composition root knows)."""
        self._tray_available = available

    def _has_tray(self) -> bool:
        available = self._tray_available
        return bool(available() if callable(available) else available)

    def closeEvent(self, event: QCloseEvent) -> None:
        busy, dirty = self._busy(), self.entities.is_dirty
        if not self._close_confirmed and not self._quit_requested and not dirty and self._has_tray():
            # With a tray, closing the window keeps the app (and its sync) running there;
            # Quit in the tray menu or File > Quit ends it.
            event.ignore()
            self.hide()
            self.hidden_to_tray.emit()
            return
        if self._close_confirmed or not (busy or dirty):
            self._close_confirmed = True
            event.accept()
            if self._on_quit is not None:
                self._on_quit()
            return
        event.ignore()
        if busy:
            self.ask_while_running()
        else:
            self.ask_unsaved(self.quit_now)

    def request_quit(self) -> None:
        """Quit the application (not just hide to the tray), asking first when work would be lost."""
        self._quit_requested = True
        if self.isHidden():
            self.showNormal()
        self.close()

    def quit_now(self) -> None:
        self._close_confirmed = True
        self.close()

    def ask_while_running(self) -> QMessageBox:
        """A sync runs: keep it running in the tray (when there is one), stop it safely and quit, or stay."""
        label = self._operation.label if self._operation is not None else "A sync"
        box = QMessageBox(QMessageBox.Icon.Question, "A sync is running",
                          f"{label} is running for '{self.current_profile_name()}'.", parent=self)
        box.setObjectName("closeWhileRunning")
        tray = self._has_tray()
        keep = box.addButton("Keep running in the tray", QMessageBox.ButtonRole.AcceptRole) if tray else None
        stop = box.addButton("Stop safely and quit", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setInformativeText(
            ("Keep it running: the window closes and the sync finishes in the background (tray icon). " if tray else "")
            + "Stop safely: the sync stops after the current batch; what was written is kept and the next sync "
              "continues from there.")

        def answered(button: Any) -> None:
            if keep is not None and button is keep:
                self.hide()
            elif button is stop:
                if self._operation is not None:
                    self._close_after_operation = True
                    self.cancel_operation()
                else:  # started by the schedule: the application's shutdown stops the engine safely
                    self.quit_now()

        box.buttonClicked.connect(answered)
        self.prompt = box
        box.open()
        return box
