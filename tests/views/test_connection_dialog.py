"""The Connection dialog against an engine over two in-memory organizations and the in-memory keyring."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from crmsync_desktop.auth.credentials import SecretKind
from crmsync_desktop.domain import AuthKind, ConnectionState, ServerKind
from crmsync_desktop.errors import AuthError
from crmsync_desktop.ui.device_code import DeviceCodeRelay
from crmsync_desktop.views.connection_dialog import STORED_PLACEHOLDER, ConnectionDialog
from crmsync_desktop.views.help_text import (
    APP_REGISTRATION_ANCHOR,
    APP_REGISTRATION_LINK_TEXT,
    APP_REGISTRATION_SECTION,
    GUIDE,
)
from tests.fakes.keyring_backend import InMemoryKeyring
from tests.views.gui_rig import PROFILE, PROFILE_SETTINGS, GuiRig, make_rig, settle, until


@pytest.fixture
def rig(qloop, tmp_path: Path) -> Iterator[GuiRig]:  # type: ignore[no-untyped-def]
    r = make_rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


def _fill(dialog: ConnectionDialog) -> None:
    dialog.name_edit.setText(PROFILE)
    dialog.client_url.setText("https://contoso.rescocrm.com/")
    dialog.client_user.setText("admin@contoso.com")
    dialog.client_password.setText("client-pw-123")
    dialog.server_url.setText("https://contoso.crm.dynamics.com/api/data/v9.2")
    dialog.client_id.setText("11111111-2222-3333-4444-555555555555")
    dialog.client_secret.setText("server-secret-456")


def _dialog(qtbot, rig: GuiRig, profile=None, **kw) -> ConnectionDialog:  # type: ignore[no-untyped-def]
    d = ConnectionDialog(rig.engine, rig.bridge, profile, **kw)
    qtbot.addWidget(d)
    d.show()
    return d


def test_typos_are_caught_inline_before_any_request(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    d = _dialog(qtbot, rig)
    _fill(d)
    d.server_url.setText("http://contoso.crm.dynamics.com")
    assert d.server_url_error.isVisible() and "https" in d.server_url_error.text()
    d.client_url.setText("https://rescocrm.com")
    assert "organization" in d.client_url_error.text()
    d.client_password.clear()
    assert d.save() is None
    assert d.message.isVisible() and "Nothing was saved" in d.message.text_label.text()
    assert "password" in d.client_password_error.text()
    assert rig.factory.opened == 0
    assert qloop.run_until_complete(rig.engine.list_profiles()) == []
    d.server_url.setText("https://contoso.crm.dynamics.com")
    d.client_url.setText("https://contoso.rescocrm.com")
    assert not d.server_url_error.isVisible() and not d.client_url_error.isVisible()


def test_save_puts_secrets_in_the_keyring_and_not_in_the_dialog(  # type: ignore[no-untyped-def]
    qtbot, qloop, rig: GuiRig, memory_keyring: InMemoryKeyring
) -> None:
    d = _dialog(qtbot, rig)
    _fill(d)
    with qtbot.waitSignal(d.saved, timeout=0, raising=False) as saved:
        qloop.run_until_complete(settle(d.save()))
    assert saved.signal_triggered
    stored = qloop.run_until_complete(rig.engine.get_profile(PROFILE))
    assert stored.server_url == "https://contoso.crm.dynamics.com"  # normalised
    assert stored.client_url == "https://contoso.rescocrm.com"
    assert stored.server_auth_kind is AuthKind.CLIENT_SECRET
    values = set(memory_keyring.entries.values())
    assert {"client-pw-123", "server-secret-456"} <= values
    for edit in (d.client_password, d.client_secret, d.server_password):
        assert edit.text() == ""
    assert d.client_password.placeholderText() == STORED_PLACEHOLDER
    assert d.name_edit.isReadOnly()

    # Re-opened later: secrets are never pre-filled, only said to be stored.
    again = _dialog(qtbot, rig, stored)
    qloop.run_until_complete(until(lambda: again.client_secret.placeholderText() == STORED_PLACEHOLDER))
    assert again.client_password.text() == again.client_secret.text() == ""
    assert again.client_password.placeholderText() == STORED_PLACEHOLDER
    assert again.server_password.placeholderText() != STORED_PLACEHOLDER
    # an empty secret keeps the stored one
    qloop.run_until_complete(settle(again.save()))
    assert {"client-pw-123", "server-secret-456"} <= set(memory_keyring.entries.values())


def test_duplicate_profile_name_is_refused(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    d = _dialog(qtbot, rig, existing_names=["contoso"])
    _fill(d)
    assert d.save() is None
    assert "exists already" in d.name_error.text()


def test_test_connection_shows_both_identities(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    d = _dialog(qtbot, rig)
    _fill(d)
    qloop.run_until_complete(settle(d.test_connection()))
    assert d.test_box.isVisible()
    assert "Signed in as user" in d.server_result.text() and "Contoso Dynamics" in d.server_result.text()
    assert "Contoso Resco" in d.client_result.text()
    assert d.message.title_label.text() == "Both organizations answered"


def test_test_connection_shows_each_sides_error(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    rig.server.fail_next(1, AuthError("The client secret has expired. Create a new one.", title="Sign-in failed"),
                         method="whoami")
    d = _dialog(qtbot, rig)
    _fill(d)
    qloop.run_until_complete(settle(d.test_connection()))
    assert d.server_result.text() == "✖ Sign-in failed: The client secret has expired. Create a new one."
    assert d.client_result.text().startswith("✔")
    assert d.message.title_label.text() == "The connection test failed"


def test_connect_shows_what_was_created(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    d = _dialog(qtbot, rig)
    _fill(d)
    with qtbot.waitSignal(d.connected, timeout=0, raising=False) as connected:
        qloop.run_until_complete(settle(d.connect_organizations()))
    assert connected.signal_triggered and connected.args == [PROFILE]
    log = d.connect_log.toPlainText()
    assert "change(s) applied" in log and "account" in log
    assert d.connect_status.text().startswith("Connected.")
    assert qloop.run_until_complete(rig.engine.get_profile(PROFILE)).state is ConnectionState.CONNECTED
    assert d.disconnect_button.isEnabled()


def test_disconnect_says_what_happens_then_does_it(  # type: ignore[no-untyped-def]
    qtbot, qloop, rig: GuiRig, memory_keyring: InMemoryKeyring
) -> None:
    d = _dialog(qtbot, rig)
    _fill(d)
    qloop.run_until_complete(settle(d.connect_organizations()))
    box = d.ask_disconnect()
    assert box is not None
    text = box.text()
    assert "reads every entity in full" in text and "removed from the keyring" in text
    assert "Nothing is deleted in either organization" in text and "offline" in text
    yes = next(b for b in box.buttons() if b.text() == "Disconnect")
    with qtbot.waitSignal(d.disconnected, timeout=0, raising=False) as done:
        yes.click()
        qloop.run_until_complete(until(lambda: d.message.title_label.text() == "Disconnected"))
    assert done.signal_triggered
    assert qloop.run_until_complete(rig.engine.get_profile(PROFILE)).state is ConnectionState.DISCONNECTED
    assert memory_keyring.entries == {}
    assert d.client_password.placeholderText() != "stored in the keyring — leave empty to keep"


def test_resco_server_and_sign_in_methods_change_the_form(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    d = _dialog(qtbot, rig)
    assert d.client_secret.isVisible() and not d.server_password.isVisible()
    d.sign_in.setCurrentIndex(d.sign_in.findData(AuthKind.DEVICE_CODE.value))
    assert not d.client_secret.isVisible()
    d.server_kind.setCurrentIndex(d.server_kind.findData(ServerKind.RESCO.value))
    assert not d.client_id.isVisible() and d.server_password.isVisible() and d.server_user.isVisible()
    _fill(d)
    d.server_url.setText("https://inspections.resco.net/contoso")
    d.server_user.setText("sync@contoso.com")
    d.server_password.setText("server-pw")
    qloop.run_until_complete(settle(d.save()))
    stored = qloop.run_until_complete(rig.engine.get_profile(PROFILE))
    assert stored.server_kind is ServerKind.RESCO and stored.server_auth_kind is AuthKind.PASSWORD
    assert stored.client_id == "" and stored.server_url == "https://inspections.resco.net/contoso"
    assert SecretKind.SERVER_PASSWORD in d.stored


@dataclass(frozen=True)
class _Prompt:
    user_code: str
    verification_uri: str
    message: str
    expires_in_s: int


def test_device_code_is_shown_and_copyable(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    relay = DeviceCodeRelay()
    d = _dialog(qtbot, rig, PROFILE_SETTINGS, device_codes=relay)
    relay(_Prompt("ABCD-EFGH", "https://microsoft.com/devicelogin", "To sign in…", 900))
    assert d.device_box.isVisible() and d.device_code.text() == "ABCD-EFGH"
    assert "15 minutes" in d.device_text.text()
    d.copy_code_button.click()
    assert QApplication.clipboard().text() == "ABCD-EFGH"


def test_an_unexpected_keyring_failure_is_shown_not_crashed(  # type: ignore[no-untyped-def]
    qtbot, qloop, rig: GuiRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmsync_desktop.errors import KeyringLockedError

    async def locked(*_a, **_k):  # type: ignore[no-untyped-def]
        raise KeyringLockedError("The keyring is locked. Unlock it and try again.")

    monkeypatch.setattr(rig.engine, "save_connection", locked)
    d = _dialog(qtbot, rig)
    _fill(d)
    qloop.run_until_complete(settle(d.save()))
    assert d.message.level == "error" and "Unlock it" in d.message.text_label.text()
    assert d.client_password.text() == "client-pw-123"  # kept so the user can try again
    assert d.findChild(QMessageBox) is None


def test_app_registration_help_is_next_to_the_sign_in_method(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    d = _dialog(qtbot, rig)
    assert d.help_link.isVisible() and APP_REGISTRATION_LINK_TEXT in d.help_link.text()
    assert "Certificates & secrets" in d.help_link.toolTip()  # client secret is the default method
    d.sign_in.setCurrentIndex(d.sign_in.findData(AuthKind.INTERACTIVE.value))
    assert "http://localhost" in d.help_link.toolTip()
    d.help_link.linkActivated.emit(f"#{APP_REGISTRATION_ANCHOR}")
    box = d.help_box
    assert box is not None and box.isVisible() and not box.isModal()
    assert "http://localhost" in box.text() and APP_REGISTRATION_SECTION in box.text()
    d.server_kind.setCurrentIndex(d.server_kind.findData(ServerKind.RESCO.value))
    assert not d.help_link.isVisible()  # no app registration for a Resco Cloud server
    box.close()
    # the section the help points to exists in the user guide
    guide = (Path(__file__).resolve().parents[2] / GUIDE).read_text(encoding="utf-8")
    assert re.search(rf"^#+ {re.escape(APP_REGISTRATION_SECTION)}$", guide, re.MULTILINE)
