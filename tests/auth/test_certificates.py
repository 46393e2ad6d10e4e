"""Reading a sign-in certificate: PEM and PFX files, and a clear error naming the file for each way one is unusable."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from crmsync_desktop.auth.certificates import (
    MAX_CERTIFICATE_FILE_BYTES,
    inspect_certificate,
    load_client_certificate,
)
from crmsync_desktop.errors import CertificateError, ConfigError
from tests.fakes.certificates import TestCertificate, make_certificate

PASSPHRASE = "c0rrect horse ¦ battery"


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return make_certificate("crmsync-sync.contoso.com")


def _error(path: Path, passphrase: str | None = None, *, inspect: bool = False) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        (inspect_certificate if inspect else load_client_certificate)(path, passphrase)
    error = info.value
    assert isinstance(error, ConfigError) and error.title == "Cannot use the certificate"
    assert str(path) in error.message, error.message  # every message names the file
    assert PASSPHRASE not in error.message
    return error


def _key_body(cert: TestCertificate) -> str:
    """A distinctive slice of the key's base64, to prove it never shows up anywhere."""
    der = cert.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return base64.b64encode(der).decode()[100:140]


# -- files that work -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make", "passphrase", "fmt", "encrypted"),
    [
        ("plain.pem", lambda c: c.pem(), None, "PEM", False),
        ("plain-crlf.pem", lambda c: c.pem().replace(b"\n", b"\r\n"), None, "PEM", False),
        ("cert-first.pem", lambda c: c.cert_pem + c.key_pem(), None, "PEM", False),
        ("pkcs8-encrypted.pem", lambda c: c.pem(PASSPHRASE), PASSPHRASE, "PEM", True),
        ("traditional-encrypted.pem", lambda c: c.pem(PASSPHRASE, traditional=True), PASSPHRASE, "PEM", True),
        ("protected.pfx", lambda c: c.pfx(PASSPHRASE), PASSPHRASE, "PFX", True),
        ("open.pfx", lambda c: c.pfx(), None, "PFX", False),
        ("open-with-stale-passphrase.p12", lambda c: c.pfx(), "no longer needed", "PFX", False),
        ("plain-with-stale-passphrase.pem", lambda c: c.pem(), "no longer needed", "PEM", False),
    ],
)
def test_pem_and_pfx_files_give_the_key_and_the_thumbprint(  # type: ignore[no-untyped-def]
    tmp_path: Path, cert: TestCertificate, name: str, make, passphrase: str | None, fmt: str, encrypted: bool
) -> None:
    path = cert.write(tmp_path, name, make(cert))
    loaded = load_client_certificate(path, passphrase)
    info = loaded.info
    assert info.thumbprint == cert.thumbprint and len(info.thumbprint) == 40 and info.thumbprint.isupper()
    assert info.file_format == fmt and info.encrypted is encrypted
    assert info.subject == "CN=crmsync-sync.contoso.com"
    assert info.not_after == cert.cert.not_valid_after_utc and not info.expired()
    assert info.path == str(path)
    key = serialization.load_pem_private_key(loaded.private_key_pem.encode(), None)  # unencrypted PKCS#8
    assert key.public_key().public_numbers() == cert.key.public_key().public_numbers()  # type: ignore[union-attr]
    assert loaded.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert "PRIVATE KEY" not in repr(loaded) and _key_body(cert) not in repr(loaded)
    assert inspect_certificate(path, passphrase) == info
    assert f"Thumbprint {cert.thumbprint}, valid until" in info.summary()


def test_a_chain_file_uses_the_certificate_that_belongs_to_the_key(tmp_path: Path, cert: TestCertificate) -> None:
    other = make_certificate("intermediate CA")
    path = cert.write(tmp_path, "chain.pem", other.cert_pem + cert.key_pem() + cert.cert_pem)
    assert load_client_certificate(path).info.thumbprint == cert.thumbprint


def test_inspecting_a_protected_pem_shows_the_thumbprint_without_the_passphrase(
    tmp_path: Path, cert: TestCertificate
) -> None:
    path = cert.write(tmp_path, "protected.pem", cert.pem(PASSPHRASE))
    info = inspect_certificate(path)
    assert info.thumbprint == cert.thumbprint and info.encrypted
    assert _error(path).reason == "passphrase_needed"  # signing in needs it


def test_a_home_relative_path_is_expanded(
    tmp_path: Path, cert: TestCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cert.write(tmp_path / "certs", "sync.pem", cert.pem())
    assert load_client_certificate("~/certs/sync.pem").info.thumbprint == cert.thumbprint


# -- each way a file is unusable -------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    error = _error(tmp_path / "nowhere" / "sync.pfx")
    assert error.reason == "missing" and "does not exist" in error.message
    assert "pick the file again in Connection" in error.message and "--certificate" in error.message


def test_no_path_at_all() -> None:
    with pytest.raises(CertificateError, match="No certificate file is set") as info:
        load_client_certificate("")
    assert info.value.reason == "missing"


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    error = _error(tmp_path)
    assert error.reason == "unreadable" and "is a folder" in error.message


def test_unreadable_file(tmp_path: Path, cert: TestCertificate, monkeypatch: pytest.MonkeyPatch) -> None:
    path = cert.write(tmp_path, "sync.pfx", cert.pfx(PASSPHRASE))

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # as root, chmod 000 would not stop the test
    error = _error(path, PASSPHRASE)
    assert error.reason == "unreadable"
    assert "permission denied" in error.message and "read access" in error.message


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.pem", b""),
        ("notes.txt", b"these are not the certificates you are looking for\n"),
        ("random.bin", bytes(range(256)) * 4),
        ("public.pem", b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"),
        ("ssh.key", b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
    ],
)
def test_not_a_certificate(tmp_path: Path, name: str, data: bytes) -> None:
    error = _error(_write(tmp_path, name, data))
    assert error.reason == "not_a_certificate"
    assert "PFX" in error.message and "PEM" in error.message  # says what would work


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def test_a_huge_file_is_not_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "huge.pfx", b"\0" * (MAX_CERTIFICATE_FILE_BYTES + 1))
    assert _error(path).reason == "not_a_certificate"


def test_a_damaged_certificate_block(tmp_path: Path, cert: TestCertificate) -> None:
    path = _write(tmp_path, "damaged.pem", cert.key_pem() + cert.cert_pem.replace(b"MII", b"XXX", 1))
    error = _error(path)
    assert error.reason == "not_a_certificate" and "certificate block" in error.message


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("protected.pem", lambda c: c.pem(PASSPHRASE)),
        ("traditional.pem", lambda c: c.pem(PASSPHRASE, traditional=True)),
        ("protected.pfx", lambda c: c.pfx(PASSPHRASE)),
    ],
)
def test_passphrase_needed_and_wrong_passphrase(  # type: ignore[no-untyped-def]
    tmp_path: Path, cert: TestCertificate, name: str, make
) -> None:
    path = cert.write(tmp_path, name, make(cert))
    needed = _error(path)
    assert needed.reason == "passphrase_needed"
    assert "protected by a passphrase" in needed.message and "set-secret" in needed.message
    wrong = _error(path, "not the passphrase")
    assert wrong.reason == "wrong_passphrase" and "passphrase for" in wrong.message and "is wrong" in wrong.message
    assert "not the passphrase" not in wrong.message
    assert _error(path, "not the passphrase", inspect=True).reason == "wrong_passphrase"


def test_a_protected_pfx_cannot_even_be_inspected_without_its_passphrase(
    tmp_path: Path, cert: TestCertificate
) -> None:
    path = cert.write(tmp_path, "protected.pfx", cert.pfx(PASSPHRASE))
    assert _error(path, inspect=True).reason == "passphrase_needed"


@pytest.mark.parametrize(
    ("name", "make", "hint"),
    [
        ("public.cer", lambda c: c.cert_der, ".cer"),
        ("public.pem", lambda c: c.cert_pem, "BEGIN PRIVATE KEY"),
        ("cert-only.pfx", lambda c: c.pfx(with_key=False), "PFX"),
    ],
)
def test_no_private_key(tmp_path: Path, cert: TestCertificate, name: str, make, hint: str) -> None:  # type: ignore[no-untyped-def]
    path = cert.write(tmp_path, name, make(cert))
    error = _error(path)
    assert error.reason == "no_private_key" and "private key" in error.message
    assert hint in error.message
    assert _error(path, inspect=True).reason == "no_private_key"


def test_a_key_without_its_certificate(tmp_path: Path, cert: TestCertificate) -> None:
    error = _error(cert.write(tmp_path, "key-only.pem", cert.key_pem()))
    assert error.reason == "no_certificate" and "no certificate" in error.message
    error = _error(cert.write(tmp_path, "key-only-protected.pem", cert.key_pem(PASSPHRASE)), inspect=True)
    assert error.reason == "no_certificate"


def test_a_key_that_belongs_to_another_certificate(tmp_path: Path, cert: TestCertificate) -> None:
    other = make_certificate("someone else")
    error = _error(cert.write(tmp_path, "mixed.pem", cert.key_pem() + other.cert_pem))
    assert error.reason == "key_mismatch" and "does not belong" in error.message


def test_an_ec_key_is_refused_because_entra_wants_rsa(tmp_path: Path) -> None:
    ec_cert = make_certificate("ec", key_type="ec")
    for name, data in (("ec.pem", ec_cert.pem()), ("ec.pfx", ec_cert.pfx(PASSPHRASE))):
        error = _error(ec_cert.write(tmp_path, name, data), PASSPHRASE)
        assert error.reason == "unsupported_key" and "RSA" in error.message


# -- validity: a warning, and still a try ---------------------------------------------------------


def test_an_expired_certificate_is_warned_about_and_still_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = make_certificate("expired", days=10, valid_from_days=-40)
    path = old.write(tmp_path, "expired.pfx", old.pfx(PASSPHRASE))
    with caplog.at_level(logging.WARNING, logger="crmsync_desktop.auth.certificates"):
        loaded = load_client_certificate(path, PASSPHRASE)
    assert loaded.info.expired() and loaded.private_key_pem
    warning = caplog.text
    assert "expired on" in warning and str(path) in warning and old.thumbprint in warning
    assert "upload its .cer to the app registration" in warning and "anyway" in warning
    assert PASSPHRASE not in warning and _key_body(old) not in warning and "PRIVATE KEY" not in warning


def test_a_not_yet_valid_certificate_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    future = make_certificate("future", valid_from_days=3)
    path = future.write(tmp_path, "future.pem", future.pem())
    with caplog.at_level(logging.WARNING, logger="crmsync_desktop.auth.certificates"):
        info = load_client_certificate(path).info
    assert info.not_yet_valid() and "is valid only from" in caplog.text and "clock" in caplog.text


def test_validity_problem_is_none_inside_the_period(cert: TestCertificate, tmp_path: Path) -> None:
    info = inspect_certificate(cert.write(tmp_path, "ok.pem", cert.pem()))
    assert info.validity_problem() is None
    later = info.not_after + timedelta(seconds=1)
    assert info.validity_problem(later) and info.expired(later)
    assert info.not_after.tzinfo is not None and info.not_after > datetime.now(UTC)
