"""Certificate sign-in in the Connection dialog: pick the file, see its thumbprint, problems next to the fields.

Most tests use the console rig (two in-memory organizations); the last one signs in for real, against
the emulated Entra ID and Dataverse over HTTPS, through the dialog's Test connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog

from crmsync_desktop.auth.credentials import SERVICE_NAME, CredentialStore, SecretKind
from crmsync_desktop.domain import AuthKind
from crmsync_desktop.emulator.runner import EmulatorPair
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.organizations import ProfileConnectorFactory
from crmsync_desktop.views.connection_dialog import STORED_PLACEHOLDER, ConnectionDialog
from tests.fakes.certificates import TestCertificate, make_certificate
from tests.fakes.keyring_backend import InMemoryKeyring
from tests.views.gui_rig import PROFILE, GuiRig, make_rig, settle, until

PASSPHRASE = "Pfx-Passphrase-4711"
PASSPHRASE_ACCOUNT = (SERVICE_NAME, f"{PROFILE}:{SecretKind.SERVER_CERTIFICATE_PASSWORD.value}")


@pytest.fixture
def rig(qloop, tmp_path: Path) -> Iterator[GuiRig]:  # type: ignore[no-untyped-def]
    r = make_rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return make_certificate("crmsync-sync.contoso.com")


def _dialog(qtbot, rig_engine, profile=None, **kw) -> ConnectionDialog:  # type: ignore[no-untyped-def]
    d = ConnectionDialog(rig_engine, None, profile, **kw)
    qtbot.addWidget(d)
    d.show()
    return d


def _fill_certificate(d: ConnectionDialog) -> None:
    d.name_edit.setText(PROFILE)
    d.client_url.setText("https://contoso.rescocrm.com")
    d.client_user.setText("admin@contoso.com")
    d.client_password.setText("client-pw-123")
    d.server_url.setText("https://contoso.crm.dynamics.com")
    d.client_id.setText("11111111-2222-3333-4444-555555555555")
    d.sign_in.setCurrentIndex(d.sign_in.findData(AuthKind.CERTIFICATE.value))


def test_certificate_is_a_sign_in_choice_with_a_file_picker_and_a_passphrase(qtbot, qloop, rig: GuiRig) -> None:  # type: ignore[no-untyped-def]
    d = _dialog(qtbot, rig.engine)
    labels = [d.sign_in.itemText(i) for i in range(d.sign_in.count())]
    assert "Certificate (app registration)" in labels
    assert not d.certificate_path.isVisible() and d.client_secret.isVisible()
    d.sign_in.setCurrentIndex(d.sign_in.findData(AuthKind.CERTIFICATE.value))
    assert d.certificate_path.isVisible() and d.browse_certificate.isVisible()
    assert d.certificate_passphrase.isVisible() and not d.client_secret.isVisible()
    assert d.certificate_passphrase.echoMode() == d.certificate_passphrase.EchoMode.Password
    assert "Upload certificate" in d.help_link.toolTip() and "thumbprint" in d.help_link.toolTip()

    picker = d.choose_certificate()  # opened non-modally; the user picks a file in it
    assert isinstance(picker, QFileDialog) and picker.isVisible()  # open(), never exec()
    assert "*.pfx" in ";".join(picker.nameFilters()) and "*.pem" in ";".join(picker.nameFilters())
    picker.reject()


def test_picking_a_protected_pfx_shows_the_thumbprint_and_saving_keeps_the_passphrase_only_in_the_keyring(  # type: ignore[no-untyped-def]
    qtbot, qloop, rig: GuiRig, cert: TestCertificate, tmp_path: Path, memory_keyring: InMemoryKeyring
) -> None:
    pfx = cert.write(tmp_path / "certs", "contoso-sync.pfx", cert.pfx(PASSPHRASE))
    d = _dialog(qtbot, rig.engine)
    _fill_certificate(d)

    picker = d.choose_certificate()
    with qtbot.waitSignal(picker.fileSelected, timeout=0, raising=False):
        picker.fileSelected.emit(str(pfx))  # what the picker does when the user double-clicks the file
    qloop.run_until_complete(settle(d._inspection))
    assert d.certificate_path.text() == str(pfx)
    assert d.certificate_passphrase_error.isVisible()
    assert "protected by a passphrase" in d.certificate_passphrase_error.text()

    d.certificate_passphrase.setText(PASSPHRASE)
    qloop.run_until_complete(settle(d.inspect_certificate_file()))
    assert not d.certificate_passphrase_error.isVisible() and not d.certificate_error.isVisible()
    info = d.certificate_info.text()
    assert d.certificate_info.isVisible()
    assert f"Thumbprint: {cert.thumbprint}" in info
    assert f"until {cert.cert.not_valid_after_utc:%Y-%m-%d}" in info and "PFX" in info
    assert d.certificate is not None and d.certificate.thumbprint == cert.thumbprint

    qloop.run_until_complete(settle(d.save()))
    stored = qloop.run_until_complete(rig.engine.get_profile(PROFILE))
    assert stored.server_auth_kind is AuthKind.CERTIFICATE and stored.certificate_path == str(pfx)
    assert memory_keyring.entries[PASSPHRASE_ACCOUNT] == PASSPHRASE
    assert str(pfx) not in memory_keyring.entries.values()
    assert d.certificate_passphrase.text() == ""
    assert d.certificate_passphrase.placeholderText() == STORED_PLACEHOLDER
    with closing(sqlite3.connect(tmp_path / "store.sqlite3")) as db:  # the path is there, the passphrase is not
        dump = "\n".join(db.iterdump())
    assert str(pfx) in dump and PASSPHRASE not in dump

    # Opened again: the path is there, the passphrase is not pre-filled, and the stored one is named.
    again = _dialog(qtbot, rig.engine, stored)
    qloop.run_until_complete(until(lambda: bool(again.stored) and again.certificate_info.text()
                                   and "Reading" not in again.certificate_info.text()))
    assert again.certificate_path.text() == str(pfx) and again.certificate_passphrase.text() == ""
    assert again.certificate_passphrase.placeholderText() == STORED_PLACEHOLDER
    assert not again.certificate_passphrase_error.isVisible()
    assert "the one stored in the keyring is used" in again.certificate_info.text()
    qloop.run_until_complete(settle(again.test_connection()))  # an empty passphrase keeps the stored one
    assert again.message.title_label.text() == "Both organizations answered"
    assert memory_keyring.entries[PASSPHRASE_ACCOUNT] == PASSPHRASE


def test_certificate_problems_show_next_to_the_fields_and_nothing_is_saved_or_sent(  # type: ignore[no-untyped-def]
    qtbot, qloop, rig: GuiRig, cert: TestCertificate, tmp_path: Path, memory_keyring: InMemoryKeyring
) -> None:
    d = _dialog(qtbot, rig.engine)
    _fill_certificate(d)

    assert d.save() is None  # no file picked: caught before anything runs
    assert "Pick the certificate file" in d.certificate_error.text() and d.certificate_error.isVisible()
    d.certificate_path.setText("certs/contoso.pfx")
    assert d.save() is None
    assert "full path" in d.certificate_error.text()

    missing = tmp_path / "gone" / "contoso.pfx"
    qloop.run_until_complete(settle(d.set_certificate_file(str(missing))))
    assert str(missing) in d.certificate_error.text() and "does not exist" in d.certificate_error.text()

    public_only = cert.write(tmp_path, "contoso.cer", cert.cert_der)
    qloop.run_until_complete(settle(d.set_certificate_file(str(public_only))))
    assert "private key" in d.certificate_error.text() and str(public_only) in d.certificate_error.text()
    qloop.run_until_complete(settle(d.save()))  # checked again on Save: refused, nothing stored
    assert d.message.title_label.text() == "Cannot use the certificate"
    assert qloop.run_until_complete(rig.engine.list_profiles()) == []

    protected = cert.write(tmp_path, "protected.pem", cert.pem(PASSPHRASE))
    d.certificate_passphrase.setText("not-the-passphrase")
    qloop.run_until_complete(settle(d.set_certificate_file(str(protected))))
    assert "is wrong" in d.certificate_passphrase_error.text() and not d.certificate_error.isVisible()
    qloop.run_until_complete(settle(d.test_connection()))
    assert "is wrong" in d.message.text_label.text()
    assert qloop.run_until_complete(rig.engine.list_profiles()) == []
    assert memory_keyring.entries == {} and rig.factory.opened == 0  # no secret stored, no request sent

    d.certificate_passphrase.clear()  # an encrypted PEM shows its thumbprint, but saving needs the passphrase
    qloop.run_until_complete(settle(d.inspect_certificate_file()))
    assert cert.thumbprint in d.certificate_info.text()
    assert "enter its passphrase" in d.certificate_passphrase_error.text()
    qloop.run_until_complete(settle(d.save()))
    assert qloop.run_until_complete(rig.engine.list_profiles()) == []

    d.certificate_passphrase.setText(PASSPHRASE)
    qloop.run_until_complete(settle(d.test_connection()))
    assert d.message.title_label.text() == "Both organizations answered"
    assert memory_keyring.entries[PASSPHRASE_ACCOUNT] == PASSPHRASE


def test_an_expired_certificate_is_flagged_but_can_still_be_used(  # type: ignore[no-untyped-def]
    qtbot, qloop, rig: GuiRig, tmp_path: Path
) -> None:
    old = make_certificate("expired", days=5, valid_from_days=-30)
    path = old.write(tmp_path, "expired.pem", old.pem())
    d = _dialog(qtbot, rig.engine)
    _fill_certificate(d)
    qloop.run_until_complete(settle(d.set_certificate_file(str(path))))
    text = d.certificate_info.text()
    assert old.thumbprint in text and "expired on" in text and "upload its .cer" in text
    assert "b3261e" in d.certificate_info.styleSheet()  # shown in red
    qloop.run_until_complete(settle(d.save()))
    assert qloop.run_until_complete(rig.engine.get_profile(PROFILE)).certificate_path == str(path)


def test_switching_away_from_certificate_clears_the_path_and_disconnect_says_what_happens(  # type: ignore[no-untyped-def]
    qtbot, qloop, rig: GuiRig, cert: TestCertificate, tmp_path: Path
) -> None:
    path = cert.write(tmp_path, "plain.pem", cert.pem())
    d = _dialog(qtbot, rig.engine)
    _fill_certificate(d)
    qloop.run_until_complete(settle(d.set_certificate_file(str(path))))
    qloop.run_until_complete(settle(d.connect_organizations()))
    box = d.ask_disconnect()
    assert box is not None
    assert "the certificate's passphrase" in box.text() and f"({path}) is not deleted" in box.text()
    box.close()
    d.sign_in.setCurrentIndex(d.sign_in.findData(AuthKind.CLIENT_SECRET.value))
    d.client_secret.setText("server-secret-456")
    qloop.run_until_complete(settle(d.save()))
    stored = qloop.run_until_complete(rig.engine.get_profile(PROFILE))
    assert stored.server_auth_kind is AuthKind.CLIENT_SECRET and stored.certificate_path == ""


# -- for real: the emulated Entra ID accepts the certificate ------------------------------------------


def test_test_connection_signs_in_with_the_certificate_against_the_emulated_entra_id(  # type: ignore[no-untyped-def]
    qtbot, qloop, tmp_path: Path, cert: TestCertificate
) -> None:
    with EmulatorPair(tmp_path / "emulator", seed_records=5, seed=2) as emu:
        assert emu.provider is not None
        app = emu.provider.directory.tenants[emu.tenant_id].apps[emu.client_id]
        app.certificates.append(cert.cert_pem)  # "Upload certificate" in the app registration
        pfx = cert.write(tmp_path / "certs", "contoso-sync.pfx", cert.pfx(PASSPHRASE))
        db = open_store(tmp_path / "store.sqlite3", tmp_path / "backups")
        credentials = CredentialStore()
        factory = ProfileConnectorFactory(credentials, ca_bundle=str(emu.ca_path))
        engine = SyncEngine(db, factory, credentials=credentials)
        try:
            d = _dialog(qtbot, engine)
            d.name_edit.setText(PROFILE)
            d.client_url.setText(f"{emu.resco_url}/{emu.resco_org}")
            d.client_user.setText(emu.resco_username)
            d.client_password.setText(emu.resco_password)
            d.server_url.setText(emu.dataverse_url)
            d.client_id.setText(emu.client_id)
            d.sign_in.setCurrentIndex(d.sign_in.findData(AuthKind.CERTIFICATE.value))
            d.certificate_passphrase.setText(PASSPHRASE)
            qloop.run_until_complete(settle(d.set_certificate_file(str(pfx))))
            assert cert.thumbprint in d.certificate_info.text()

            qloop.run_until_complete(settle(d.test_connection()))
            assert d.server_result.text().startswith("✔ Signed in as user"), d.server_result.text()
            assert d.client_result.text().startswith("✔"), d.client_result.text()
            assert d.message.title_label.text() == "Both organizations answered"

            app.certificates.clear()  # the certificate is removed from the app registration
            engine_factory = ProfileConnectorFactory(credentials, ca_bundle=str(emu.ca_path))
            engine2 = SyncEngine(db, engine_factory, credentials=credentials)
            server, _ = qloop.run_until_complete(engine2.test_connection(PROFILE))
            qloop.run_until_complete(engine2.aclose())
            engine_factory.close()
            assert server.title == "Application credentials rejected"  # type: ignore[union-attr]
            assert cert.thumbprint in server.message  # type: ignore[union-attr]
        finally:
            qloop.run_until_complete(engine.aclose())
            factory.close()
            db.close()
