"""Connection dialog (Woodford's "Resco CRM Sync Connection Setup"): client login, server login.

Top: the Resco Cloud (client) organization: URL, user, password. Then the server type (Dynamics
365 / Dataverse, or Resco Cloud, experimental) and the server login: URL and, for Dynamics, the
sign-in method (client secret, certificate, device code, browser), tenant and application (client)
id. A link under the sign-in method shows the app-registration steps for that method
(``views/help_text.py``).

Certificate sign-in takes the certificate file (picked with Browse…, a PEM or PFX file with the
private key) and its passphrase, if it has one. The file is read in a worker thread as soon as it is
picked: its thumbprint and expiry are shown so they can be matched with the app registration, and
every problem (missing file, wrong passphrase, no private key…) appears next to its field. Save,
Test and Connect read it once more before anything is stored or sent. The path is kept in the
profile; the passphrase goes to the OS keyring and is never shown again.

Every URL is checked and normalised as it is typed, so a typo gets a precise inline message
before any request. Secrets go straight to the OS keyring through ``SyncEngine.save_connection``;
secret fields are never filled with a stored secret (the placeholder says one is stored).

Buttons: **Save**; **Test connection** (saves, then signs in to both organizations and shows who
we are on each side, or each side's error); **Connect** (saves, then creates the client's tables
and columns from the server's metadata, with progress and the list of what was created);
**Disconnect** (after a confirmation that says exactly what happens).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from crmsync_desktop.auth.certificates import CERTIFICATE_FILE_FILTER, CertificateInfo, inspect_certificate
from crmsync_desktop.auth.credentials import SecretKind
from crmsync_desktop.domain import AuthKind, ConnectionProfile, ConnectionState, ServerKind
from crmsync_desktop.errors import CertificateError, CrmSyncError, InvalidUrlError
from crmsync_desktop.sync.connection_urls import normalize_client_url, normalize_server_url
from crmsync_desktop.sync.connectors.types import Identity
from crmsync_desktop.sync.engine import RunResult, SyncEngine
from crmsync_desktop.sync.events import LogEmitted, Progress
from crmsync_desktop.ui.bridge import EngineBridge
from crmsync_desktop.ui.device_code import DeviceCodePromptLike, DeviceCodeRelay
from crmsync_desktop.ui.ops import run_op, show_error
from crmsync_desktop.ui.widgets.message import InlineMessage, MessageLevel
from crmsync_desktop.ui.widgets.progress import describe_progress
from crmsync_desktop.views.help_text import (
    APP_REGISTRATION_ANCHOR,
    APP_REGISTRATION_LINK_TEXT,
    app_registration_help,
)

__all__ = ["DISCONNECT_TEXT", "ConnectionDialog"]

STORED_PLACEHOLDER = "stored in the keyring — leave empty to keep"

_SERVER_KINDS = ((ServerKind.DATAVERSE, "Dynamics 365 / Dataverse"), (ServerKind.RESCO, "Resco Cloud (experimental)"))
_SIGN_IN = (
    (AuthKind.CLIENT_SECRET, "Client secret (app registration)"),
    (AuthKind.CERTIFICATE, "Certificate (app registration)"),
    (AuthKind.DEVICE_CODE, "Device code (sign in on another device)"),
    (AuthKind.INTERACTIVE, "Browser (interactive sign-in)"),
)

DISCONNECT_TEXT = (
    "Disconnect '{name}'?\n\n"
    "• crmsync forgets where each entity's sync stopped and which client records came from the server: "
    "after connecting again, the next sync reads every entity in full.\n"
    "• The client password{secret} of this profile are removed from the keyring.{files}\n"
    "• Kept: the connection settings, the entity selection, filters and field choices, and offline "
    "transactions still waiting for delivery.\n"
    "• Nothing is deleted in either organization."
)


def _error_label() -> QLabel:
    label = QLabel()
    label.setObjectName("fieldError")
    label.setWordWrap(True)
    label.setStyleSheet("color: #b3261e;")
    label.hide()
    return label


class ConnectionDialog(QDialog):
    """Edit (or create) one profile's connection. Non-modal-safe: open it with ``open()``."""

    saved = Signal(object)  # ConnectionProfile, after it is stored
    connected = Signal(str)  # profile name, after a successful Connect
    disconnected = Signal(str)

    def __init__(
        self,
        engine: SyncEngine,
        bridge: EngineBridge | None,
        profile: ConnectionProfile | None = None,
        *,
        existing_names: Iterable[str] = (),
        device_codes: DeviceCodeRelay | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("connectionDialog")
        self.setWindowTitle("Resco CRM Sync Connection Setup")
        self._engine = engine
        self._bridge = bridge
        self._original = profile
        self._existing = {n.casefold() for n in existing_names} - ({profile.name.casefold()} if profile else set())
        self.stored: set[SecretKind] = set()
        self._task: asyncio.Task[Any] | None = None
        self._busy_profile: str | None = None
        self.last_test: tuple[Identity | CrmSyncError, Identity | CrmSyncError] | None = None
        self.last_connect: tuple[RunResult, Any] | None = None

        self.message = InlineMessage(self)

        # -- profile ---------------------------------------------------------------------
        self.name_edit = QLineEdit(profile.name if profile else "")
        self.name_edit.setObjectName("profileName")
        self.name_edit.setPlaceholderText("e.g. Contoso production")
        self.name_edit.setReadOnly(profile is not None)
        self.name_error = _error_label()
        name_form = QFormLayout()
        name_form.addRow("Profile name", self.name_edit)
        name_form.addRow("", self.name_error)

        # -- client ----------------------------------------------------------------------
        self.client_url = QLineEdit(profile.client_url if profile else "")
        self.client_url.setObjectName("clientUrl")
        self.client_url.setPlaceholderText("https://contoso.rescocrm.com  or  https://rescocrm.com/contoso")
        self.client_url_error = _error_label()
        self.client_user = QLineEdit(profile.client_user if profile else "")
        self.client_user.setObjectName("clientUser")
        self.client_user.setPlaceholderText("admin@contoso.com")
        self.client_user_error = _error_label()
        self.client_password = self._secret_edit("clientPassword")
        self.client_password_error = _error_label()
        client_box = QGroupBox("Resco CRM Login — client organization")
        client_form = QFormLayout(client_box)
        client_form.addRow("Url", self.client_url)
        client_form.addRow("", self.client_url_error)
        client_form.addRow("Username", self.client_user)
        client_form.addRow("", self.client_user_error)
        client_form.addRow("Password", self.client_password)
        client_form.addRow("", self.client_password_error)

        # -- server ----------------------------------------------------------------------
        self.server_kind = QComboBox()
        self.server_kind.setObjectName("serverKind")
        for kind, label in _SERVER_KINDS:
            self.server_kind.addItem(label, kind.value)
        self.server_url = QLineEdit(profile.server_url if profile else "")
        self.server_url.setObjectName("serverUrl")
        self.server_url_error = _error_label()
        self.sign_in = QComboBox()
        self.sign_in.setObjectName("signInMethod")
        for kind, label in _SIGN_IN:
            self.sign_in.addItem(label, kind.value)
        self.tenant_id = QLineEdit(profile.tenant_id if profile else "")
        self.tenant_id.setObjectName("tenantId")
        self.tenant_id.setPlaceholderText("optional: contoso.onmicrosoft.com or the tenant's GUID")
        self.client_id = QLineEdit(profile.client_id if profile else "")
        self.client_id.setObjectName("clientId")
        self.client_id.setPlaceholderText("the app registration's Application (client) ID")
        self.client_id_error = _error_label()
        self.client_secret = self._secret_edit("clientSecret")
        self.client_secret_error = _error_label()
        self.certificate_path = QLineEdit(profile.certificate_path if profile else "")
        self.certificate_path.setObjectName("certificatePath")
        self.certificate_path.setPlaceholderText("full path of the .pfx or .pem file with the private key")
        self.certificate_path.setClearButtonEnabled(True)
        self.browse_certificate = QPushButton("Browse…")
        self.browse_certificate.setObjectName("browseCertificate")
        self.browse_certificate.setToolTip("Pick the certificate file (PFX/PKCS#12, or PEM with the private key)")
        self.browse_certificate.clicked.connect(lambda: self.choose_certificate())
        self.certificate_row = QWidget()
        certificate_layout = QHBoxLayout(self.certificate_row)
        certificate_layout.setContentsMargins(0, 0, 0, 0)
        certificate_layout.addWidget(self.certificate_path, 1)
        certificate_layout.addWidget(self.browse_certificate)
        self.certificate_error = _error_label()
        self.certificate_passphrase = self._secret_edit("certificatePassphrase")
        self.certificate_passphrase_error = _error_label()
        self.certificate_info = QLabel()
        self.certificate_info.setObjectName("certificateInfo")
        self.certificate_info.setWordWrap(True)
        self.certificate_info.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.certificate_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.certificate: CertificateInfo | None = None  # the picked file, once it was read
        self.file_dialog: QFileDialog | None = None
        self._inspection: asyncio.Task[Any] | None = None
        self._inspected: tuple[str, str] | None = None
        self._stored_known = profile is None  # which secrets the keyring holds (see refresh_stored)
        self.help_link = QLabel(f'<a href="#{APP_REGISTRATION_ANCHOR}">{APP_REGISTRATION_LINK_TEXT}</a>')
        self.help_link.setObjectName("appRegistrationHelp")
        self.help_link.setTextFormat(Qt.TextFormat.RichText)
        self.help_link.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse
                                               | Qt.TextInteractionFlag.LinksAccessibleByKeyboard)
        self.help_link.linkActivated.connect(lambda *_: self.show_app_registration_help())
        self.help_box: QMessageBox | None = None
        self.server_user = QLineEdit(profile.server_user if profile else "")
        self.server_user.setObjectName("serverUser")
        self.server_user_error = _error_label()
        self.server_password = self._secret_edit("serverPassword")
        self.server_password_error = _error_label()
        self.server_box = QGroupBox()
        self.server_form = QFormLayout(self.server_box)
        self.server_form.addRow("Url", self.server_url)
        self.server_form.addRow("", self.server_url_error)
        self.server_form.addRow("Sign-in method", self.sign_in)
        self.server_form.addRow("", self.help_link)
        self.server_form.addRow("Tenant ID", self.tenant_id)
        self.server_form.addRow("Application (client) ID", self.client_id)
        self.server_form.addRow("", self.client_id_error)
        self.server_form.addRow("Client secret", self.client_secret)
        self.server_form.addRow("", self.client_secret_error)
        self.server_form.addRow("Certificate file", self.certificate_row)
        self.server_form.addRow("", self.certificate_error)
        self.server_form.addRow("Certificate passphrase", self.certificate_passphrase)
        self.server_form.addRow("", self.certificate_passphrase_error)
        self.server_form.addRow("", self.certificate_info)
        self.server_form.addRow("Username", self.server_user)
        self.server_form.addRow("", self.server_user_error)
        self.server_form.addRow("Password", self.server_password)
        self.server_form.addRow("", self.server_password_error)
        kind_row = QFormLayout()
        kind_row.addRow("Server type", self.server_kind)
        self._error_forms: dict[QLabel, QFormLayout] = {self.name_error: name_form}
        for form in (client_form, self.server_form):
            for row in range(form.rowCount()):
                item = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
                widget = item.widget() if item is not None else None
                if isinstance(widget, QLabel) and widget.objectName() == "fieldError":
                    self._error_forms[widget] = form
        for label, form in self._error_forms.items():
            form.setRowVisible(label, False)

        # -- device code -----------------------------------------------------------------
        self.device_box = QGroupBox("Sign in with a device code")
        self.device_box.setObjectName("deviceCodeBox")
        self.device_text = QLabel()
        self.device_text.setWordWrap(True)
        self.device_text.setOpenExternalLinks(True)
        self.device_code = QLineEdit()
        self.device_code.setObjectName("deviceCode")
        self.device_code.setReadOnly(True)
        code_font = QFont("monospace")
        code_font.setPointSize(code_font.pointSize() + 6)
        code_font.setBold(True)
        self.device_code.setFont(code_font)
        self.copy_code_button = QPushButton("Copy code")
        self.copy_code_button.clicked.connect(self._copy_code)
        device_layout = QVBoxLayout(self.device_box)
        device_layout.addWidget(self.device_text)
        code_row = QHBoxLayout()
        code_row.addWidget(self.device_code, 1)
        code_row.addWidget(self.copy_code_button)
        device_layout.addLayout(code_row)
        self.device_box.hide()

        # -- results -----------------------------------------------------------------------
        self.test_box = QGroupBox("Test connection")
        self.server_result = QLabel()
        self.server_result.setObjectName("serverResult")
        self.client_result = QLabel()
        self.client_result.setObjectName("clientResult")
        for label in (self.server_result, self.client_result):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        test_layout = QFormLayout(self.test_box)
        test_layout.addRow("Server:", self.server_result)
        test_layout.addRow("Client:", self.client_result)
        self.test_box.hide()

        self.connect_box = QGroupBox("Connect")
        self.connect_status = QLabel()
        self.connect_status.setObjectName("connectStatus")
        self.connect_status.setWordWrap(True)
        self.connect_bar = QProgressBar()
        self.connect_log = QPlainTextEdit()
        self.connect_log.setObjectName("connectLog")
        self.connect_log.setReadOnly(True)
        self.connect_log.setMinimumHeight(140)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelConnect")
        self.cancel_button.clicked.connect(self.cancel)
        bar_row = QHBoxLayout()
        bar_row.addWidget(self.connect_bar, 1)
        bar_row.addWidget(self.cancel_button)
        connect_layout = QVBoxLayout(self.connect_box)
        connect_layout.addWidget(self.connect_status)
        connect_layout.addLayout(bar_row)
        connect_layout.addWidget(self.connect_log)
        self.connect_box.hide()

        # -- buttons ---------------------------------------------------------------------
        self.disconnect_button = QPushButton("Disconnect…")
        self.disconnect_button.setObjectName("disconnect")
        self.disconnect_button.setToolTip("End this connection (asks first and says exactly what happens)")
        self.disconnect_button.clicked.connect(self.ask_disconnect)
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("save")
        self.save_button.setToolTip("Store the settings; passwords and secrets go to the OS keyring")
        self.save_button.clicked.connect(lambda: self.save())
        self.test_button = QPushButton("Test connection")
        self.test_button.setObjectName("testConnection")
        self.test_button.setToolTip("Save, then sign in to both organizations")
        self.test_button.clicked.connect(lambda: self.test_connection())
        self.connect_button = QPushButton("Connect")
        self.connect_button.setObjectName("connect")
        self.connect_button.setToolTip("Save, then create the server's tables and columns in the client organization")
        self.connect_button.clicked.connect(lambda: self.connect_organizations())
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.disconnect_button)
        buttons.addStretch(1)
        for b in (self.save_button, self.test_button, self.connect_button, self.close_button):
            buttons.addWidget(b)

        body = QWidget()
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(0, 0, 0, 0)
        body_layout.addLayout(name_form)
        body_layout.addWidget(client_box)
        body_layout.addLayout(kind_row)
        body_layout.addWidget(self.server_box)
        body_layout.addWidget(self.device_box)
        body_layout.addWidget(self.test_box)
        body_layout.addWidget(self.connect_box)
        body_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        self.resize(640, 760)

        if profile is not None:
            self.server_kind.setCurrentIndex(self.server_kind.findData(profile.server_kind.value))
            if profile.server_kind is ServerKind.DATAVERSE:
                self.sign_in.setCurrentIndex(max(0, self.sign_in.findData(profile.server_auth_kind.value)))
        self.server_kind.currentIndexChanged.connect(self._kind_changed)
        self.sign_in.currentIndexChanged.connect(self._kind_changed)
        self.certificate_path.editingFinished.connect(self._certificate_edited)
        self.certificate_passphrase.editingFinished.connect(self._certificate_edited)
        self.client_url.textChanged.connect(lambda *_: self._check_client_url())
        self.server_url.textChanged.connect(lambda *_: self._check_server_url())
        self.server_kind.currentIndexChanged.connect(lambda *_: self._check_server_url())
        self._kind_changed()
        if profile is not None:
            self._check_client_url(quiet_empty=True)
            self._check_server_url(quiet_empty=True)
        self.disconnect_button.setEnabled(profile is not None and profile.state is ConnectionState.CONNECTED)
        if bridge is not None:
            bridge.progress.connect(self._progress)
            bridge.log_emitted.connect(self._log_line)
        if device_codes is not None:
            device_codes.prompted.connect(self.show_device_code)
        if profile is not None:
            self.refresh_stored()

    # -- widgets ----------------------------------------------------------------------------

    @staticmethod
    def _secret_edit(name: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setObjectName(name)
        edit.setEchoMode(QLineEdit.EchoMode.Password)
        edit.setClearButtonEnabled(True)
        return edit

    @property
    def kind(self) -> ServerKind:
        return ServerKind(self.server_kind.currentData())

    @property
    def auth_kind(self) -> AuthKind:
        return AuthKind.PASSWORD if self.kind is ServerKind.RESCO else AuthKind(self.sign_in.currentData())

    def _kind_changed(self, *_: object) -> None:
        dataverse = self.kind is ServerKind.DATAVERSE
        auth = self.auth_kind
        self.server_box.setTitle("Dynamics 365 Login — server organization" if dataverse
                                 else "Resco Cloud Login — server organization (experimental)")
        self.server_url.setPlaceholderText("https://contoso.crm.dynamics.com" if dataverse
                                           else "https://contoso.rescocrm.com")
        for widget in (self.sign_in, self.help_link, self.tenant_id, self.client_id):
            self.server_form.setRowVisible(widget, dataverse)
        self.help_link.setToolTip(app_registration_help(auth) if dataverse else "")
        self.server_form.setRowVisible(self.client_secret, dataverse and auth is AuthKind.CLIENT_SECRET)
        certificate = dataverse and auth is AuthKind.CERTIFICATE
        for widget in (self.certificate_row, self.certificate_passphrase):
            self.server_form.setRowVisible(widget, certificate)
        self.server_form.setRowVisible(self.certificate_info, certificate and bool(self.certificate_info.text()))
        self.server_form.setRowVisible(self.server_user, not dataverse or auth is AuthKind.INTERACTIVE)
        self.server_form.setRowVisible(self.server_password, not dataverse)
        label = self.server_form.labelForField(self.server_user)
        if isinstance(label, QLabel):
            label.setText("Username" if not dataverse else "Account (optional)")
        self.server_user.setPlaceholderText("admin@contoso.com" if not dataverse
                                            else "pre-fills the browser sign-in, e.g. admin@contoso.com")
        for error in (self.client_id_error, self.client_secret_error, self.server_user_error,
                      self.server_password_error, self.certificate_error, self.certificate_passphrase_error):
            self._set_error(error, None)
        self._update_placeholders()
        if certificate and self._stored_known and self.certificate is None and self.certificate_path.text().strip():
            self.inspect_certificate_file()

    def show_app_registration_help(self) -> QMessageBox:
        """The app-registration steps for the chosen sign-in method, in a small box beside the dialog."""
        if self.help_box is not None:
            self.help_box.close()
        box = QMessageBox(QMessageBox.Icon.Information, APP_REGISTRATION_LINK_TEXT, app_registration_help(self.auth_kind),
                          QMessageBox.StandardButton.Close, self)
        box.setObjectName("appRegistrationHelpBox")
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setModal(False)  # the form stays usable while the steps are read
        box.show()
        self.help_box = box
        return box

    def _set_error(self, label: QLabel, text: str | None, form: QFormLayout | None = None) -> None:
        label.setText(text or "")
        label.setVisible(bool(text))
        owner = form or self._error_forms.get(label)
        if owner is not None:
            owner.setRowVisible(label, bool(text))

    def _check_client_url(self, *, quiet_empty: bool = False) -> str | None:
        text = self.client_url.text()
        if quiet_empty and not text.strip():
            self._set_error(self.client_url_error, None)
            return None
        try:
            url = normalize_client_url(text)
        except InvalidUrlError as exc:
            self._set_error(self.client_url_error, exc.message)
            return None
        self._set_error(self.client_url_error, None)
        return url

    def _check_server_url(self, *, quiet_empty: bool = False) -> str | None:
        text = self.server_url.text()
        if quiet_empty and not text.strip():
            self._set_error(self.server_url_error, None)
            return None
        try:
            url = normalize_server_url(self.kind, text)
        except InvalidUrlError as exc:
            self._set_error(self.server_url_error, exc.message)
            return None
        self._set_error(self.server_url_error, None)
        return url

    # -- certificate ---------------------------------------------------------------------------

    @property
    def _certificate_mode(self) -> bool:
        return self.kind is ServerKind.DATAVERSE and self.auth_kind is AuthKind.CERTIFICATE

    def choose_certificate(self) -> QFileDialog:
        """Browse…: a file picker (opened non-modally) for the certificate file; picking it reads it."""
        current = self.certificate_path.text().strip()
        folder = str(Path(current).expanduser().parent) if current else str(Path.home())
        dialog = QFileDialog(self, "Choose the certificate file (with its private key)", folder, CERTIFICATE_FILE_FILTER)
        dialog.setObjectName("certificateFileDialog")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        dialog.fileSelected.connect(self.set_certificate_file)
        dialog.open()
        self.file_dialog = dialog
        return dialog

    def set_certificate_file(self, path: str) -> asyncio.Task[Any] | None:
        """Use ``path`` as the certificate file, then read it to show its thumbprint and expiry."""
        self.certificate_path.setText(str(Path(path)))
        return self.inspect_certificate_file()

    def _certificate_edited(self) -> None:
        if not self._certificate_mode or not self._stored_known:
            return
        if (self.certificate_path.text().strip(), self.certificate_passphrase.text()) != self._inspected:
            self.inspect_certificate_file()

    def _checked_certificate_path(self, *, quiet_empty: bool = False) -> str | None:
        text = self.certificate_path.text().strip()
        if not text:
            self._set_error(self.certificate_error, None if quiet_empty else
                            "Pick the certificate file (a PFX, or a PEM file with the private key) with Browse….")
            return None
        path = Path(text).expanduser()
        if not (path.is_absolute() or PureWindowsPath(text).is_absolute() or PurePosixPath(text).is_absolute()):
            self._set_error(self.certificate_error, "Enter the full path of the certificate file, or pick it with "
                                                    "Browse….")
            return None
        self._set_error(self.certificate_error, None)
        return str(path)

    def inspect_certificate_file(self) -> asyncio.Task[Any] | None:
        """Read the certificate file in a worker thread; show its thumbprint and expiry, or the problem."""
        path = self._checked_certificate_path(quiet_empty=True)
        self.certificate = None
        if self._inspection is not None and not self._inspection.done():
            self._inspection.cancel()  # a newer choice wins; the older answer is ignored
        if path is None:
            self._show_certificate_text("")
            return None
        passphrase = self.certificate_passphrase.text()
        self._inspected = (self.certificate_path.text().strip(), passphrase)
        self._show_certificate_text("Reading the certificate…")

        def failed(exc: BaseException) -> None:
            if isinstance(exc, CertificateError):
                self._certificate_problem(exc)
            else:
                self._show_certificate_text("")
                show_error(self, exc)

        self._inspection = run_op(self, asyncio.to_thread(inspect_certificate, path, passphrase or None),
                                  on_success=self._show_certificate, on_error=failed)
        return self._inspection

    def _show_certificate_text(self, text: str, problem: bool = False) -> None:
        self.certificate_info.setText(text)
        self.certificate_info.setStyleSheet("color: #b3261e;" if problem else "")
        self.server_form.setRowVisible(self.certificate_info, self._certificate_mode and bool(text))

    def _show_certificate(self, info: CertificateInfo) -> None:
        self.certificate = info
        self._set_error(self.certificate_error, None, self.server_form)
        self._set_error(self.certificate_passphrase_error, None, self.server_form)
        protected = ", protected by a passphrase" if info.encrypted else ""
        lines = [
            f"Thumbprint: {info.thumbprint}",
            (f"Valid from {info.not_before:%Y-%m-%d} until {info.not_after:%Y-%m-%d %H:%M} UTC · "
             f"{info.subject or 'no subject'} · {info.file_format}{protected}"),
            ("The app registration (Certificates & secrets ▸ Certificates) must list this thumbprint: upload the "
             "certificate's public part (.cer) there."),
        ]
        problem = info.validity_problem()
        if problem:
            lines.append(f"⚠ {problem}")
        self._show_certificate_text("\n".join(lines), problem=problem is not None)
        if info.encrypted and not self.certificate_passphrase.text() and \
                SecretKind.SERVER_CERTIFICATE_PASSWORD not in self.stored:
            self._set_error(self.certificate_passphrase_error,
                            "The private key in this file is protected: enter its passphrase.", self.server_form)

    def _certificate_problem(self, exc: CertificateError) -> None:
        """Put a certificate problem next to the field it is about."""
        self.certificate = None
        self._show_certificate_text("")
        if exc.reason == "passphrase_needed":
            if SecretKind.SERVER_CERTIFICATE_PASSWORD in self.stored and not self.certificate_passphrase.text():
                self._set_error(self.certificate_passphrase_error, None, self.server_form)
                self._show_certificate_text("The file is protected by a passphrase; the one stored in the keyring is "
                                            "used to sign in (Test connection checks it). Type the passphrase here "
                                            "to show the thumbprint and expiry.")
            else:
                self._set_error(self.certificate_passphrase_error,
                                "This file is protected by a passphrase: enter it.", self.server_form)
            self._set_error(self.certificate_error, None, self.server_form)
        elif exc.reason == "wrong_passphrase":
            self._set_error(self.certificate_passphrase_error, exc.message, self.server_form)
            self._set_error(self.certificate_error, None, self.server_form)
        else:
            self._set_error(self.certificate_error, exc.message, self.server_form)
            self._set_error(self.certificate_passphrase_error, None, self.server_form)

    async def _verify_certificate(self, path: str, passphrase: str) -> None:
        """Read the file once more before saving: nothing is stored or sent with an unusable certificate.

        With a passphrase typed (or none stored) the whole file is checked, key included; with only a
        stored one the dialog cannot check the passphrase (it never reads secrets): signing in does.
        """
        stored = SecretKind.SERVER_CERTIFICATE_PASSWORD in self.stored
        try:
            try:
                info = await asyncio.to_thread(inspect_certificate, path, passphrase or None)
            except CertificateError as exc:
                if exc.reason == "passphrase_needed" and stored and not passphrase:
                    return
                raise
            if info.encrypted and not passphrase and not stored:
                raise CertificateError(
                    f"The private key in {path} is protected by a passphrase, and none is stored. Enter it as the "
                    "certificate passphrase.", reason="passphrase_needed", path=path,
                )
        except CertificateError as exc:
            self._certificate_problem(exc)
            raise
        self._show_certificate(info)

    def _update_placeholders(self) -> None:
        for edit, kind, empty in (
            (self.client_password, SecretKind.CLIENT_PASSWORD, "the Resco Cloud user's password"),
            (self.client_secret, SecretKind.SERVER_CLIENT_SECRET, "the app registration's client secret value"),
            (self.server_password, SecretKind.SERVER_PASSWORD, "the server user's password"),
            (self.certificate_passphrase, SecretKind.SERVER_CERTIFICATE_PASSWORD,
             "only if the file has one (a PFX usually has)"),
        ):
            edit.setPlaceholderText(STORED_PLACEHOLDER if kind in self.stored else empty)

    def refresh_stored(self) -> asyncio.Task[Any] | None:
        """Ask the keyring which secrets it holds for this profile (never their values)."""
        if self._original is None:
            return None

        def show(kinds: set[SecretKind]) -> None:
            self.stored = set(kinds)
            self._stored_known = True
            self._update_placeholders()
            if self._certificate_mode and self.certificate_path.text().strip():
                self.inspect_certificate_file()

        return run_op(self, self._engine.stored_secrets(self._original.name), on_success=show)

    # -- collecting -----------------------------------------------------------------------

    def _required_secret(self, edit: QLineEdit, kind: SecretKind, error: QLabel, what: str,
                         form: QFormLayout | None) -> bool:
        missing = not edit.text() and kind not in self.stored
        self._set_error(error, f"Enter {what}." if missing else None, form)
        return not missing

    def collect(self) -> tuple[ConnectionProfile, dict[SecretKind, str]] | None:
        """The profile and secrets as entered, or None with every problem shown next to its field."""
        ok = True
        name = self.name_edit.text().strip()
        if not name:
            self._set_error(self.name_error, "Enter a name for this connection profile.")
            ok = False
        elif name.casefold() in self._existing:
            self._set_error(self.name_error, f"A profile named '{name}' exists already. Choose another name.")
            ok = False
        else:
            self._set_error(self.name_error, None)
        client_url = self._check_client_url()
        server_url = self._check_server_url()
        ok = ok and client_url is not None and server_url is not None
        if not self.client_user.text().strip():
            self._set_error(self.client_user_error, "Enter the Resco Cloud user name (usually an e-mail address).")
            ok = False
        else:
            self._set_error(self.client_user_error, None)
        ok &= self._required_secret(self.client_password, SecretKind.CLIENT_PASSWORD, self.client_password_error,
                                    "the Resco Cloud password", None)
        secrets = {SecretKind.CLIENT_PASSWORD: self.client_password.text()}
        kind, auth = self.kind, self.auth_kind
        if kind is ServerKind.DATAVERSE:
            if not self.client_id.text().strip():
                self._set_error(self.client_id_error, "Enter the Application (client) ID of the app registration "
                                "(Entra admin center ▸ App registrations).", self.server_form)
                ok = False
            else:
                self._set_error(self.client_id_error, None, self.server_form)
            if auth is AuthKind.CLIENT_SECRET:
                ok &= self._required_secret(self.client_secret, SecretKind.SERVER_CLIENT_SECRET,
                                            self.client_secret_error, "the client secret", self.server_form)
                secrets[SecretKind.SERVER_CLIENT_SECRET] = self.client_secret.text()
            if auth is AuthKind.CERTIFICATE:
                certificate_path = self._checked_certificate_path()
                ok &= certificate_path is not None
                secrets[SecretKind.SERVER_CERTIFICATE_PASSWORD] = self.certificate_passphrase.text()
        else:
            if not self.server_user.text().strip():
                self._set_error(self.server_user_error, "Enter the server organization's user name.", self.server_form)
                ok = False
            else:
                self._set_error(self.server_user_error, None, self.server_form)
            ok &= self._required_secret(self.server_password, SecretKind.SERVER_PASSWORD,
                                        self.server_password_error, "the server user's password", self.server_form)
            secrets[SecretKind.SERVER_PASSWORD] = self.server_password.text()
        if not ok:
            self.message.show_message(MessageLevel.ERROR, "Some settings need attention",
                                      "Nothing was saved. Fix the fields marked in red.")
            return None
        assert client_url is not None and server_url is not None
        certificate = kind is ServerKind.DATAVERSE and auth is AuthKind.CERTIFICATE
        base = self._original or ConnectionProfile(name=name)
        profile = replace(
            base,
            server_kind=kind,
            server_url=server_url,
            server_auth_kind=auth,
            tenant_id=self.tenant_id.text().strip() if kind is ServerKind.DATAVERSE else "",
            client_id=self.client_id.text().strip() if kind is ServerKind.DATAVERSE else "",
            server_user=self.server_user.text().strip(),
            client_url=client_url,
            client_user=self.client_user.text().strip(),
            certificate_path=(self._checked_certificate_path() or "") if certificate else "",
        )
        return profile, {k: v for k, v in secrets.items() if v}

    # -- commands -------------------------------------------------------------------------

    def _busy(self, busy: bool) -> None:
        for b in (self.save_button, self.test_button, self.connect_button, self.close_button):
            b.setEnabled(not busy)
        connected = self._original is not None and self._original.state is ConnectionState.CONNECTED
        self.disconnect_button.setEnabled(not busy and connected)
        if not busy:
            self._busy_profile = None
            self.device_box.hide()

    def _run(self, coro: Any, on_success: Any, profile: str) -> asyncio.Task[Any]:
        self._busy(True)
        self._busy_profile = profile

        def failed(exc: BaseException) -> None:
            if isinstance(exc, CrmSyncError):
                self.message.show_message(MessageLevel.ERROR, exc.title, exc.message)
            else:
                self.message.show_message(MessageLevel.ERROR, "Unexpected error",
                                          f"{type(exc).__name__}: {exc}. Details are in Jobs & Logs.")
                show_error(self, exc)

        self._task = run_op(self, coro, on_success=on_success, on_error=failed)
        self._task.add_done_callback(lambda *_: self._busy(False))
        return self._task

    def save(self, then: Any = None, on_done: Any = None) -> asyncio.Task[Any] | None:
        """Store the settings and secrets, then await ``then(profile)`` (Test, Connect) and call ``on_done()``.

        Nothing is sent anywhere while a field is wrong: the problems are shown next to the fields.
        """
        collected = self.collect()
        if collected is None:
            return None
        profile, secrets = collected

        async def work() -> ConnectionProfile:
            if profile.server_kind is ServerKind.DATAVERSE and profile.server_auth_kind is AuthKind.CERTIFICATE:
                await self._verify_certificate(profile.certificate_path,
                                               secrets.get(SecretKind.SERVER_CERTIFICATE_PASSWORD, ""))
            await self._engine.save_connection(profile, secrets)
            self._after_save(profile, set(secrets))
            if then is not None:
                await then(profile)
            return profile

        def done(_: ConnectionProfile) -> None:
            if on_done is not None:
                on_done()
            else:
                self.message.show_message(MessageLevel.SUCCESS, "Saved",
                                          "The settings are stored; passwords and secrets are in the OS keyring.")

        return self._run(work(), done, profile.name)

    def _after_save(self, profile: ConnectionProfile, kinds: set[SecretKind]) -> None:
        """The secrets are in the keyring: they leave the dialog, which only says that they are stored."""
        for edit in (self.client_password, self.client_secret, self.server_password, self.certificate_passphrase):
            edit.clear()
        self._inspected = (self.certificate_path.text().strip(), "")
        self._original = profile
        self._existing.discard(profile.name.casefold())
        self.name_edit.setReadOnly(True)
        self.stored |= kinds
        self._update_placeholders()
        self.saved.emit(profile)

    def test_connection(self) -> asyncio.Task[Any] | None:
        async def then(profile: ConnectionProfile) -> None:
            self.message.show_message(MessageLevel.INFO, "Testing the connection…", "Signing in to both organizations.")
            self.last_test = await self._engine.test_connection(profile.name)

        return self.save(then=then, on_done=self._show_test)

    def _show_test(self) -> None:
        if self.last_test is None:
            return
        server, client = self.last_test
        self.test_box.show()
        ok = True
        for label, result, side in ((self.server_result, server, "server"), (self.client_result, client, "client")):
            if isinstance(result, CrmSyncError):
                ok = False
                label.setText(f"✖ {result.title}: {result.message}")
                label.setStyleSheet("color: #b3261e;")
            else:
                org = result.organization_name or result.organization_id
                label.setText(f"✔ Signed in as user {result.user_id} in organization {org}")
                label.setStyleSheet("color: #1b5e20;")
        if ok:
            self.message.show_message(MessageLevel.SUCCESS, "Both organizations answered",
                                      "The settings work. Click Connect to create the server's tables in the client.")
        else:
            self.message.show_message(MessageLevel.ERROR, "The connection test failed",
                                      "See each side's result below; fix the settings and test again.")

    def connect_organizations(self) -> asyncio.Task[Any] | None:
        async def then(profile: ConnectionProfile) -> None:
            self.connect_box.show()
            self.connect_log.clear()
            self.connect_status.setText("Reading the server's metadata…")
            self.connect_bar.setRange(0, 0)
            self.cancel_button.setEnabled(True)
            self.message.clear()
            self.last_connect = await self._engine.connect(profile.name)

        return self.save(then=then, on_done=self._show_connect)

    def _show_connect(self) -> None:
        if self.last_connect is None:
            return
        result, report = self.last_connect
        self.connect_bar.setRange(0, 1)
        self.connect_bar.setValue(1)
        self.cancel_button.setEnabled(False)
        lines = list(report.lines()) if report is not None else []
        problems = list(report.problems()) if report is not None else []
        self.connect_log.setPlainText("\n".join(lines + [f"Problem: {p}" for p in problems]))
        if result.error is None:
            self.connect_status.setText(f"Connected. {report.summary() if report is not None else result.summary}")
            self.message.show_message(
                MessageLevel.SUCCESS, "Connected",
                "The client organization has the server's tables. Choose the entities to synchronize in the "
                "Synchronization tab, save, then Sync All.")
            if self._original is not None:
                self._original = replace(self._original, state=ConnectionState.CONNECTED)
            self.connected.emit(self._original.name if self._original else "")
        else:
            self.connect_status.setText("Connect did not finish.")
            self.message.show_message(MessageLevel.ERROR, "Connect failed",
                                      f"{result.error}\nThe run log in Jobs & Logs has every step.")

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            self.connect_status.setText("Cancelled. What was created so far stays; Connect again to finish.")
            self.message.show_message(MessageLevel.WARNING, "Cancelled",
                                      "Connect was stopped safely. Running it again continues where it stopped.")

    # -- disconnect ---------------------------------------------------------------------

    def ask_disconnect(self) -> QMessageBox | None:
        if self._original is None:
            return None
        files = ""
        if self._original.server_kind is ServerKind.RESCO:
            secret = " and the server password"
        elif self._original.server_auth_kind is AuthKind.CERTIFICATE:
            secret = " and the certificate's passphrase"
            files = f" The certificate file ({self._original.certificate_path}) is not deleted."
        else:
            secret = " and the server's client secret"
        box = QMessageBox(QMessageBox.Icon.Question, "Disconnect",
                          DISCONNECT_TEXT.format(name=self._original.name, secret=secret, files=files),
                          QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("confirmDisconnect")
        yes = box.addButton("Disconnect", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: self.disconnect_now() if button is yes else None)
        box.open()
        return box

    def disconnect_now(self) -> asyncio.Task[Any] | None:
        if self._original is None:
            return None
        name = self._original.name

        def done(_: object) -> None:
            assert self._original is not None
            self._original = replace(self._original, state=ConnectionState.DISCONNECTED)
            self.stored.clear()
            self._update_placeholders()
            self.message.show_message(MessageLevel.INFO, "Disconnected",
                                      f"'{name}' is disconnected. Enter the passwords and click Connect to use it again.")
            self.disconnected.emit(name)

        return self._run(self._engine.disconnect(name), done, name)

    # -- engine events ------------------------------------------------------------------

    def _progress(self, event: Progress) -> None:
        if self._busy_profile != event.profile or not self.connect_box.isVisible():
            return
        self.connect_status.setText(describe_progress(event))
        if event.total:
            self.connect_bar.setRange(0, event.total)
            self.connect_bar.setValue(min(event.done, event.total))

    def _log_line(self, event: LogEmitted) -> None:
        if self._busy_profile != event.profile or not self.connect_box.isVisible():
            return
        self.connect_log.appendPlainText(f"{event.level.capitalize()}: {event.message}" if event.level != "INFO"
                                         else event.message)

    def show_device_code(self, prompt: DeviceCodePromptLike) -> None:
        self.device_text.setText(
            f'To sign in, open <a href="{prompt.verification_uri}">{prompt.verification_uri}</a> in a browser and '
            f"enter this code (valid for about {max(1, prompt.expires_in_s // 60)} minutes):"
        )
        self.device_code.setText(prompt.user_code)
        self.device_box.show()

    def _copy_code(self) -> None:
        QGuiApplication.clipboard().setText(self.device_code.text())
        self.copy_code_button.setText("Copied")
