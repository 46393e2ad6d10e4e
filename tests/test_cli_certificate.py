"""``crmsync profiles add --certificate PATH``: the file is checked now, the passphrase goes to the keyring only."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from crmsync_desktop.auth.credentials import SERVICE_NAME
from crmsync_desktop.cli import main
from crmsync_desktop.cli.commands import PASSPHRASE_ENV
from crmsync_desktop.paths import resolve_paths
from tests.fakes.certificates import TestCertificate, make_certificate
from tests.fakes.keyring_backend import InMemoryKeyring

PROFILE = "Unattended"
PASSPHRASE = "Pfx-Passphrase-4711"
ACCOUNT = (SERVICE_NAME, f"{PROFILE}:server-certificate-password")
BASE = ["profiles", "add", PROFILE, "--server-url", "https://contoso.crm4.dynamics.com",
        "--client-id", "51f81489-12ee-4a9e-aaae-a2591f45987d",
        "--client-url", "https://contoso.rescocrm.com", "--client-user", "sync@contoso.com"]


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return make_certificate("crmsync-sync.contoso.com")


@pytest.fixture(autouse=True)
def no_passphrase_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> io.StringIO:
    stream = io.StringIO(text)
    monkeypatch.setattr("sys.stdin", stream)
    return stream


def _out(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def _profiles(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["--json", "profiles", "list"]) == 0
    return _out(capsys)["result"]  # type: ignore[no-any-return]


def test_a_pem_without_passphrase_is_checked_and_its_thumbprint_shown(  # type: ignore[no-untyped-def]
    tmp_path: Path, cert: TestCertificate, capsys, monkeypatch: pytest.MonkeyPatch, memory_keyring: InMemoryKeyring
) -> None:
    cert.write(tmp_path / "certs", "sync.pem", cert.pem())
    monkeypatch.chdir(tmp_path)
    stdin = _stdin(monkeypatch, "should not be read\n")
    assert main(["--json", *BASE, "--certificate", "certs/sync.pem"]) == 0  # relative: made absolute
    result = _out(capsys)["result"]
    absolute = str((tmp_path / "certs" / "sync.pem").resolve())
    assert result["certificate"]["thumbprint"] == cert.thumbprint
    assert result["certificate"]["path"] == absolute and result["certificate"]["expired"] is False
    assert stdin.tell() == 0  # no passphrase needed, none asked for
    assert memory_keyring.entries == {}
    [listed] = _profiles(capsys)
    assert listed["server_auth_kind"] == "certificate" and listed["certificate_path"] == absolute

    assert main([*BASE, "--certificate", absolute]) == 0  # the text output names the thumbprint
    text = capsys.readouterr().out
    assert f"thumbprint {cert.thumbprint}" in text and "Certificates & secrets" in text


def test_the_passphrase_is_read_from_stdin_and_stored_only_in_the_keyring(  # type: ignore[no-untyped-def]
    tmp_path: Path, cert: TestCertificate, capsys, monkeypatch: pytest.MonkeyPatch, memory_keyring: InMemoryKeyring
) -> None:
    pfx = cert.write(tmp_path, "sync.pfx", cert.pfx(PASSPHRASE))
    _stdin(monkeypatch, PASSPHRASE + "\n")
    assert main(["--json", *BASE, "--certificate", str(pfx)]) == 0
    assert _out(capsys)["result"]["certificate"]["thumbprint"] == cert.thumbprint
    assert memory_keyring.entries[ACCOUNT] == PASSPHRASE

    # Editing the profile later: the stored passphrase opens the file; nothing is asked.
    stdin = _stdin(monkeypatch, "")
    assert main(["--json", *BASE[:4], "https://contoso.crm.dynamics.com", *BASE[5:]]) == 0
    assert _out(capsys)["result"]["certificate"]["thumbprint"] == cert.thumbprint
    assert stdin.tell() == 0
    [listed] = _profiles(capsys)
    assert listed["server_url"] == "https://contoso.crm.dynamics.com" and listed["certificate_path"] == str(pfx)

    home = resolve_paths(None)
    for path in home.data_dir.rglob("*"):
        if path.is_file():
            assert PASSPHRASE.encode() not in path.read_bytes(), path
    with closing(sqlite3.connect(home.database)) as db:
        assert str(pfx) in "\n".join(db.iterdump())


def test_the_passphrase_can_come_from_the_environment(  # type: ignore[no-untyped-def]
    tmp_path: Path, cert: TestCertificate, capsys, monkeypatch: pytest.MonkeyPatch, memory_keyring: InMemoryKeyring
) -> None:
    pfx = cert.write(tmp_path, "sync.pfx", cert.pfx(PASSPHRASE))
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong one")
    stdin = _stdin(monkeypatch, PASSPHRASE + "\n")
    assert main(["--json", *BASE, "--certificate", str(pfx)]) == 2  # an explicit wrong passphrase: no prompt
    error = _out(capsys)["error"]
    assert error["type"] == "CertificateError" and "is wrong" in error["message"] and str(pfx) in error["message"]
    assert stdin.tell() == 0 and _profiles(capsys) == [] and memory_keyring.entries == {}

    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    assert main(["--json", *BASE, "--certificate", str(pfx)]) == 0
    assert memory_keyring.entries[ACCOUNT] == PASSPHRASE


@pytest.mark.parametrize(
    ("setup", "extra", "fragments"),
    [
        ("missing", [], ["does not exist", "missing.pfx"]),
        ("public.cer", [], ["private key", ".cer"]),
        ("protected.pfx", ["stdin:"], ["protected by a passphrase", PASSPHRASE_ENV, "nothing was saved"]),
        ("protected.pfx", ["stdin:wrong"], ["is wrong"]),
        ("plain.pem", ["--auth", "client_secret"], ["--certificate is for certificate sign-in"]),
        ("plain.pem", ["--server-kind", "resco"], ["Dynamics 365 / Dataverse server"]),
    ],
)
def test_unusable_certificates_are_refused_and_nothing_is_saved(  # type: ignore[no-untyped-def]
    tmp_path: Path, cert: TestCertificate, capsys, monkeypatch: pytest.MonkeyPatch, memory_keyring: InMemoryKeyring,
    setup: str, extra: list[str], fragments: list[str],
) -> None:
    files = {"public.cer": cert.cert_der, "protected.pfx": cert.pfx(PASSPHRASE), "plain.pem": cert.pem()}
    path = cert.write(tmp_path, setup, files[setup]) if setup in files else tmp_path / "missing.pfx"
    stdin = next((e.removeprefix("stdin:") for e in extra if e.startswith("stdin:")), "")
    _stdin(monkeypatch, stdin + "\n")
    args = [a for a in extra if not a.startswith("stdin:")]
    assert main(["--json", *BASE, "--certificate", str(path), *args]) == 2
    message = _out(capsys)["error"]["message"]
    for fragment in fragments:
        assert fragment in message, message
    assert _profiles(capsys) == [] and memory_keyring.entries == {}


def test_auth_certificate_without_a_file_is_refused(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--json", *BASE, "--auth", "certificate"]) == 2
    assert "--certificate PATH" in _out(capsys)["error"]["message"]


def test_set_secret_refuses_a_wrong_certificate_passphrase(  # type: ignore[no-untyped-def]
    tmp_path: Path, cert: TestCertificate, capsys, monkeypatch: pytest.MonkeyPatch, memory_keyring: InMemoryKeyring
) -> None:
    pem = cert.write(tmp_path, "protected.pem", cert.pem(PASSPHRASE))
    _stdin(monkeypatch, PASSPHRASE + "\n")
    assert main(["--json", *BASE, "--certificate", str(pem)]) == 0
    capsys.readouterr()
    del memory_keyring.entries[ACCOUNT]

    _stdin(monkeypatch, "wrong\n")
    assert main(["--json", "profiles", "set-secret", PROFILE, "server-certificate-password"]) == 2
    assert "is wrong" in _out(capsys)["error"]["message"]
    assert ACCOUNT not in memory_keyring.entries

    _stdin(monkeypatch, PASSPHRASE + "\n")
    assert main(["profiles", "set-secret", PROFILE, "server-certificate-password"]) == 0
    assert f"thumbprint {cert.thumbprint}" in capsys.readouterr().out
    assert memory_keyring.entries[ACCOUNT] == PASSPHRASE
