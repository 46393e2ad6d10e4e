"""The console's main window: the Data toolbar group, the profiles list and the live log.

The Synchronization, Offline Transactions and Jobs screens join this shell as the engine behind
them lands; every action here already works end to end through ``ProfileService``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHeaderView,
    QLabel,
    QMainWindow,
    QTableView,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from crmsync_desktop.domain import ConnectionProfile, ProfileConfig
from crmsync_desktop.logs import RingBufferHandler
from crmsync_desktop.sync.profiles import ProfileService
from crmsync_desktop.ui.models.log_model import LogTableModel
from crmsync_desktop.ui.models.profiles_model import ProfilesTableModel
from crmsync_desktop.ui.ops import run_op

CONFIG_FILE_FILTER = "crmsync configuration (*.json);;All files (*)"


class MainWindow(QMainWindow):
    """Shell of the admin console. Collaborators arrive through ``__init__`` (no global look-ups)."""

    def __init__(
        self,
        profiles: ProfileService,
        ring: RingBufferHandler,
        *,
        data_dir: Path,
        keyring_status: str,
        on_quit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._profiles = profiles
        self._on_quit = on_quit
        self.setWindowTitle("crmsync-desktop")
        self.resize(1100, 700)

        self.profiles_model = ProfilesTableModel(self)
        self.profiles_view = self._table(self.profiles_model)
        self.profiles_view.selectionModel().selectionChanged.connect(self._update_actions)
        self.empty_hint = QLabel(
            "No connection profiles yet. Import a configuration file (Data ▸ Import) to add one."
        )
        self.empty_hint.setObjectName("emptyHint")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        profiles_page = QWidget()
        layout = QVBoxLayout(profiles_page)
        layout.addWidget(self.empty_hint)
        layout.addWidget(self.profiles_view)

        self.log_model = LogTableModel(ring, parent=self)
        self.log_view = self._table(self.log_model)
        self.log_view.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.log_model.rowsInserted.connect(lambda *_: self.log_view.scrollToBottom())

        self.tabs = QTabWidget()
        self.tabs.addTab(profiles_page, "Profiles")
        self.tabs.addTab(self.log_view, "Jobs && Logs")
        self.setCentralWidget(self.tabs)

        toolbar = QToolBar("Data")
        toolbar.setObjectName("dataToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        self.import_action = QAction("Import", self, shortcut=QKeySequence.StandardKey.Open)
        self.import_action.setToolTip("Import a profile's configuration from a file (never contains secrets)")
        self.import_action.triggered.connect(self.import_config_action)
        self.export_action = QAction("Export", self, shortcut=QKeySequence.StandardKey.SaveAs)
        self.export_action.setToolTip("Export the selected profile's configuration (secrets are never exported)")
        self.export_action.triggered.connect(self.export_config_action)
        toolbar.addActions([self.import_action, self.export_action])
        self.addToolBar(toolbar)

        self.status_label = QLabel()
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(QLabel(f"Keyring: {keyring_status}"))
        self.statusBar().addPermanentWidget(QLabel(f"Data: {data_dir}"))
        self._update_actions()

    @staticmethod
    def _table(model: ProfilesTableModel | LogTableModel) -> QTableView:
        view = QTableView()
        view.setModel(model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.verticalHeader().setVisible(False)
        view.horizontalHeader().setStretchLastSection(True)
        view.setAlternatingRowColors(True)
        return view

    # -- data -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the profile list from the store (off the GUI thread)."""
        run_op(self, self._profiles.list_profiles(), on_success=self.show_profiles)

    def show_profiles(self, profiles: list[ConnectionProfile]) -> None:
        self.profiles_model.set_profiles(profiles)
        self.empty_hint.setVisible(not profiles)
        self.status_label.setText(f"{len(profiles)} connection profile(s)")
        if profiles and not self.profiles_view.selectionModel().hasSelection():
            self.profiles_view.selectRow(0)
        self._update_actions()

    def selected_profile(self) -> ConnectionProfile | None:
        rows = self.profiles_view.selectionModel().selectedRows()
        return self.profiles_model.profile_at(rows[0].row()) if rows else None

    def _update_actions(self, *_: object) -> None:
        self.export_action.setEnabled(self.selected_profile() is not None)

    # -- actions (user gestures) ---------------------------------------------------------------

    def import_config_action(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import configuration", "", CONFIG_FILE_FILTER)
        if path:
            self.import_from(path)

    def import_from(self, path: str) -> None:
        run_op(self, self._profiles.import_from_file(path), on_success=self._imported)

    def _imported(self, cfg: ProfileConfig) -> None:
        self.statusBar().showMessage(
            f"Imported '{cfg.profile.name}' ({len(cfg.entities)} entities). "
            "Enter its passwords in Connection before syncing.",
            10_000,
        )
        self.refresh()

    def export_config_action(self) -> None:
        profile = self.selected_profile()
        if profile is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export configuration", f"{profile.name}.crmsync.json", CONFIG_FILE_FILTER
        )
        if path:
            self.export_to(profile.name, path)

    def export_to(self, profile: str, path: str) -> None:
        run_op(
            self,
            self._profiles.export_to_file(profile, path),
            on_success=lambda target: self.statusBar().showMessage(f"Exported '{profile}' to {target}", 10_000),
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        event.accept()
        if self._on_quit is not None:
            self._on_quit()

