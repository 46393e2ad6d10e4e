"""The redaction filter: no password, client secret, bearer token or Authorization header reaches a log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmsync_desktop.logs import LoggingSetup, redact, register_secret, setup_logging

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXZhbHVl"


@pytest.fixture
def logging_setup(tmp_path: Path) -> Iterator[LoggingSetup]:
    setup = setup_logging(tmp_path / "logs" / "crmsync.log")
    try:
        yield setup
    finally:
        setup.close()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("headers={'Authorization': 'Bearer tok3n-value'}", "tok3n-value"),
        ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("grant_type=client_credentials&client_secret=Sup3r~Secret&scope=x", "Sup3r~Secret"),
        ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
        ("refresh_token=0.AAAbbbCCC", "0.AAAbbbCCC"),
        (f"got token {JWT} from cache", JWT),
        ('{"access_token":"opaque-123456"}', "opaque-123456"),
        ("pwd=letmein1", "letmein1"),
        ("opening sync.pfx with passphrase=Pfx-Passphrase-4711", "Pfx-Passphrase-4711"),
        ("key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY----- ok",
         "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
        ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq", "MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq"),
        ("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nabcDEF123\n-----END RSA PRIVATE KEY-----",
         "abcDEF123"),
    ],
)
def test_redact_patterns(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert "***" in out


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "Synced 120 records of account in 3.2 s (page 2, nextLink present)"
    assert redact(text) == text
    certificate = "The passphrase for /etc/crmsync/c.pfx is wrong; thumbprint 6F275BA6F9BA2C822890E97E27D3859CA153E555"
    assert redact(certificate) == certificate
    public = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----"
    assert redact(public) == public  # a public certificate is not a secret


def test_no_secret_reaches_file_or_ring(logging_setup: LoggingSetup, tmp_path: Path) -> None:
    log = logging.getLogger("crmsync_desktop.test")
    register_secret("plain-known-secret-42")
    log.warning("request headers %s", {"Authorization": f"Bearer {JWT}"})
    log.warning("user typed %s into the wrong box", "plain-known-secret-42")
    log.info("form body: client_secret=%s", "s3cr3t-value!")
    try:
        raise RuntimeError(f"token endpoint said no for password=topsecret99 and {JWT}")
    except RuntimeError:
        log.exception("sign-in failed")
    logging.getLogger("httpx").warning("HTTP Request: POST https://h/t headers Authorization: Bearer zzz999")

    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "logs" / "crmsync.log").read_text(encoding="utf-8")
    ring_text = "\n".join(line.message for line in logging_setup.ring.lines())
    for body in (text, ring_text):
        for secret in (JWT, "plain-known-secret-42", "s3cr3t-value!", "topsecret99", "zzz999"):
            assert secret not in body
        assert "sign-in failed" in body
        assert "RuntimeError" in body  # the traceback is kept, only the secrets go


def test_ring_buffer_keeps_order_and_notifies(logging_setup: LoggingSetup) -> None:
    seen: list[str] = []
    unsubscribe = logging_setup.ring.subscribe(lambda line: seen.append(line.message))
    log = logging.getLogger("crmsync_desktop.ring")
    log.info("first")
    log.info("second")
    unsubscribe()
    log.info("third")
    messages = [line.message for line in logging_setup.ring.lines()]
    assert messages[-3:] == ["first", "second", "third"]
    assert seen == ["first", "second"]
    last_seq = logging_setup.ring.lines()[-2].seq
    assert [line.message for line in logging_setup.ring.lines(after_seq=last_seq)] == ["third"]
