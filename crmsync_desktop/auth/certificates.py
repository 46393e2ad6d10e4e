"""Client certificates for Dataverse sign-in: a PEM file (private key + certificate) or a PFX/PKCS#12 file.

An app registration can prove who it is with a certificate instead of a client secret: Entra ID
holds the public certificate (the ``.cer`` uploaded to the app registration), crmsync signs each
token request with the private key. The connection profile keeps the file's *path* (a path is not
a secret); the file's passphrase, if it has one, lives only in the OS keyring.

Every way a file can be unusable becomes one :class:`~crmsync_desktop.errors.CertificateError`
that names the file and says what to do: missing, unreadable, passphrase needed or wrong, no
private key, no certificate, a key that does not belong to the certificate, a key type Entra ID
does not accept, or no certificate at all. An expired (or not yet valid) certificate is only
warned about: the sign-in is still tried, and Entra ID has the last word.

The private key is decrypted in memory and handed to MSAL as unencrypted PKCS#8 PEM; it is never
written anywhere, logged, or put in a message or a ``repr``. The thumbprint is the SHA-1 of the
certificate (upper-case hex), the value the app registration lists under Certificates & secrets.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from crmsync_desktop.errors import CertificateError
from crmsync_desktop.logs import register_secret

__all__ = [
    "CERTIFICATE_FILE_FILTER",
    "MAX_CERTIFICATE_FILE_BYTES",
    "CertificateInfo",
    "ClientCertificate",
    "inspect_certificate",
    "load_client_certificate",
]

log = logging.getLogger(__name__)

MAX_CERTIFICATE_FILE_BYTES = 1024 * 1024
"""A certificate file is a few kilobytes; anything above 1 MiB is not one (and is not read)."""
CERTIFICATE_FILE_FILTER = "Certificate with private key (*.pem *.pfx *.p12 *.key *.crt);;All files (*)"
"""The file-picker filter the console uses."""

_KEY_BLOCK_RE = re.compile(
    rb"-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL
)
_HOW_TO_EXPORT = (
    "Export the certificate together with its private key: a PFX/PKCS#12 file (.pfx, .p12), or a PEM file "
    "holding both a 'BEGIN PRIVATE KEY' and a 'BEGIN CERTIFICATE' block. Only the public .cer goes to the "
    "app registration."
)
_WHERE_PASSPHRASE = (
    "Enter it as the certificate passphrase in Connection, or store it with "
    "'crmsync profiles set-secret PROFILE server-certificate-password' (it is kept in the OS keyring)."
)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What the user needs to match a certificate file with the app registration (no key material)."""

    path: str
    thumbprint: str  # SHA-1, upper-case hex: the "Thumbprint" column of the app registration
    thumbprint_sha256: str
    subject: str
    not_before: datetime  # aware, UTC
    not_after: datetime  # aware, UTC
    file_format: str  # "PEM" or "PFX"
    encrypted: bool  # the private key needs a passphrase

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) > self.not_after

    def not_yet_valid(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) < self.not_before

    def validity_problem(self, now: datetime | None = None) -> str | None:
        """A warning when the certificate is outside its validity period, naming the file and the fix."""
        if self.expired(now):
            return (
                f"The certificate in {self.path} (thumbprint {self.thumbprint}) expired on "
                f"{self.not_after:%Y-%m-%d %H:%M} UTC; Microsoft Entra ID refuses expired certificates. Create a "
                "new certificate, upload its .cer to the app registration (Certificates & secrets ▸ "
                "Certificates) and pick the new file in Connection."
            )
        if self.not_yet_valid(now):
            return (
                f"The certificate in {self.path} (thumbprint {self.thumbprint}) is valid only from "
                f"{self.not_before:%Y-%m-%d %H:%M} UTC; Microsoft Entra ID refuses it until then. Check the "
                "machine's clock, or use a certificate that is valid now."
            )
        return None

    def summary(self) -> str:
        """One line for a dialog or the CLI: thumbprint, expiry, subject."""
        return (
            f"Thumbprint {self.thumbprint}, valid until {self.not_after:%Y-%m-%d} "
            f"({self.file_format}, {self.subject or 'no subject'})"
        )


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A certificate with its decrypted private key, ready for MSAL. The key never shows in a repr."""

    info: CertificateInfo
    private_key_pem: str = field(repr=False)


# -- reading the file --------------------------------------------------------------------------------


def _read(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    shown = str(path)
    if not shown.strip():
        raise CertificateError(
            "No certificate file is set. Pick the certificate file (PEM or PFX with its private key) in Connection.",
            reason="missing",
        )
    file = Path(path).expanduser()
    try:
        if not file.exists():
            raise CertificateError(
                f"The certificate file {shown} does not exist. Copy the certificate (with its private key) to that "
                "path, or pick the file again in Connection ('crmsync profiles add … --certificate PATH').",
                reason="missing", path=shown,
            )
        if file.is_dir():
            raise CertificateError(
                f"{shown} is a folder, not a certificate file. Pick the .pfx or .pem file itself.",
                reason="unreadable", path=shown,
            )
        size = file.stat().st_size
        if size > MAX_CERTIFICATE_FILE_BYTES:
            raise CertificateError(
                f"{shown} is {size:,} bytes; a certificate file is a few kilobytes, so this is not one. "
                f"{_HOW_TO_EXPORT}",
                reason="not_a_certificate", path=shown,
            )
        data = file.read_bytes()
    except PermissionError as exc:
        raise CertificateError(
            f"The certificate file {shown} cannot be read: permission denied. Give the account that runs crmsync "
            "read access to it (and keep everyone else out: it holds the private key).",
            reason="unreadable", path=shown,
        ) from exc
    except OSError as exc:
        raise CertificateError(
            f"The certificate file {shown} cannot be read ({exc.strerror or type(exc).__name__}). Check the path "
            "and that the drive or share is available.",
            reason="unreadable", path=shown,
        ) from exc
    if not data.strip():
        raise CertificateError(
            f"The certificate file {shown} is empty. {_HOW_TO_EXPORT}", reason="not_a_certificate", path=shown
        )
    return shown, data


def _looks_like_pfx(data: bytes) -> bool:
    """A PKCS#12 PFX is a DER SEQUENCE whose first element is INTEGER 3 (the PFX version)."""
    if len(data) < 8 or data[0] != 0x30:
        return False
    first = data[1]
    header = 2 if first < 0x80 else 2 + (first & 0x7F)
    return data[header:header + 3] == b"\x02\x01\x03"


def _passphrase_bytes(passphrase: str | None) -> bytes | None:
    if not passphrase:
        return None
    register_secret(passphrase)
    return passphrase.encode("utf-8")


def _info(path: str, cert: x509.Certificate, file_format: str, encrypted: bool) -> CertificateInfo:
    return CertificateInfo(
        path=path,
        thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # what Entra ID shows and MSAL sends
        thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        subject=cert.subject.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        file_format=file_format,
        encrypted=encrypted,
    )


def _matches(key: object, cert: x509.Certificate) -> bool:
    try:
        return key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False


def _checked_key(path: str, key: object) -> rsa.RSAPrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey):
        kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "") or "unknown"
        raise CertificateError(
            f"The private key in {path} is a {kind} key; Microsoft Entra ID signs in applications with RSA "
            "certificates only. Create an RSA certificate (2048 bits or more) and upload its .cer to the app "
            "registration.",
            reason="unsupported_key", path=path,
        )
    return key


def _pem_key(path: str, data: bytes, passphrase: bytes | None, need_key: bool) -> tuple[object | None, bool]:
    """(the private key or None when it is encrypted and no passphrase was given, whether it is encrypted)."""
    match = _KEY_BLOCK_RE.search(data)
    if match is None:
        if b"-----BEGIN CERTIFICATE-----" in data:
            raise CertificateError(
                f"{path} holds a certificate but no private key. crmsync signs in with the private key. "
                f"{_HOW_TO_EXPORT}",
                reason="no_private_key", path=path,
            )
        return None, False  # not PEM material at all: the caller says so
    block = match.group(0)
    encrypted = match.group(1) == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and passphrase is None:
        if need_key:
            raise CertificateError(
                f"The private key in {path} is protected by a passphrase, and none is stored. {_WHERE_PASSPHRASE}",
                reason="passphrase_needed", path=path,
            )
        return None, True
    try:
        key = serialization.load_pem_private_key(block, passphrase if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise CertificateError(
                f"The passphrase for {path} is wrong: the private key cannot be decrypted with it. Enter the "
                "passphrase the file was exported with (in Connection, or with 'crmsync profiles set-secret "
                "PROFILE server-certificate-password').",
                reason="wrong_passphrase", path=path,
            ) from None
        raise CertificateError(
            f"The private key block in {path} is damaged and cannot be read. {_HOW_TO_EXPORT}",
            reason="not_a_certificate", path=path,
        ) from exc
    except UnsupportedAlgorithm as exc:
        raise CertificateError(
            f"The private key in {path} uses an encryption or key type this version cannot read. Export it again "
            "as PKCS#8 (openssl pkcs8 -topk8 -v2 aes-256-cbc) or as a PFX with AES-256 encryption.",
            reason="unsupported_key", path=path,
        ) from exc
    return key, encrypted


def _from_pem(path: str, data: bytes, passphrase: bytes | None, need_key: bool) -> tuple[CertificateInfo, object | None]:
    key, encrypted = _pem_key(path, data, passphrase, need_key)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        if key is not None or encrypted:
            raise CertificateError(
                f"{path} holds a private key but no certificate. Add the certificate to the same file (append its "
                "'BEGIN CERTIFICATE' block after the key) or use the PFX file that has both.",
                reason="no_certificate", path=path,
            )
        raise _not_a_certificate(path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateError(
            f"The certificate block in {path} is damaged and cannot be read. {_HOW_TO_EXPORT}",
            reason="not_a_certificate", path=path,
        ) from exc
    if key is None and not encrypted:
        raise _no_private_key(path)
    if key is None:  # encrypted and no passphrase: show the first certificate (the leaf, by convention)
        return _info(path, certs[0], "PEM", True), None
    cert = next((c for c in certs if _matches(key, c)), None)
    if cert is None:
        raise CertificateError(
            f"The private key in {path} does not belong to the certificate in that file. Put the matching "
            "certificate and key together (export them again as one PFX).",
            reason="key_mismatch", path=path,
        )
    return _info(path, cert, "PEM", encrypted), key


def _from_pfx(path: str, data: bytes, passphrase: bytes | None) -> tuple[CertificateInfo, object | None]:
    attempts = [passphrase, None] if passphrase is not None else [None, b""]
    loaded = None
    for attempt in attempts:
        try:
            loaded = pkcs12.load_key_and_certificates(data, attempt)
        except ValueError:
            continue
        except UnsupportedAlgorithm as exc:
            raise CertificateError(
                f"{path} uses an encryption this version cannot read. Export the PFX again with AES-256 "
                "encryption (Windows: certificate export wizard, encryption AES256-SHA256), or convert it to PEM.",
                reason="unsupported_key", path=path,
            ) from exc
        encrypted = attempt not in (None, b"")
        break
    if loaded is None:
        if passphrase is None:
            raise CertificateError(
                f"{path} is protected by a passphrase, and none is stored. {_WHERE_PASSPHRASE}",
                reason="passphrase_needed", path=path,
            )
        raise CertificateError(
            f"The passphrase for {path} is wrong (or the file uses an encryption this version cannot read). "
            "Enter the passphrase the PFX was exported with; if it is right, export the PFX again with AES-256 "
            "encryption.",
            reason="wrong_passphrase", path=path,
        )
    key, cert, extra = loaded
    if key is None:
        raise _no_private_key(path)
    if cert is None or not _matches(key, cert):
        cert = next((c for c in extra or () if _matches(key, c)), None)
    if cert is None:
        raise CertificateError(
            f"{path} holds a private key but not its certificate. Export the PFX again with the certificate "
            "included.",
            reason="no_certificate", path=path,
        )
    return _info(path, cert, "PFX", encrypted), key


def _no_private_key(path: str) -> CertificateError:
    return CertificateError(
        f"{path} holds a certificate but no private key. crmsync signs in with the private key. {_HOW_TO_EXPORT}",
        reason="no_private_key", path=path,
    )


def _not_a_certificate(path: str) -> CertificateError:
    return CertificateError(
        f"{path} is not a certificate file crmsync can read. {_HOW_TO_EXPORT}",
        reason="not_a_certificate", path=path,
    )


def _load(
    path: str | os.PathLike[str], passphrase: str | None, *, need_key: bool
) -> tuple[CertificateInfo, object | None]:
    shown, data = _read(path)
    secret = _passphrase_bytes(passphrase)
    if _looks_like_pfx(data):
        return _from_pfx(shown, data, secret)
    if b"-----BEGIN" in data:
        return _from_pem(shown, data, secret, need_key)
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        raise _not_a_certificate(shown) from None
    raise CertificateError(
        f"{shown} holds only a certificate (DER, like a .cer file), without its private key. That file is the "
        f"one to upload to the app registration; crmsync needs the private key. {_HOW_TO_EXPORT}",
        reason="no_private_key", path=shown,
    )


# -- the two entry points ----------------------------------------------------------------------------


def inspect_certificate(path: str | os.PathLike[str], passphrase: str | None = None) -> CertificateInfo:
    """The certificate's thumbprint, validity and subject, for showing after the file is picked.

    A PEM file's certificate is readable without the passphrase (its key is only checked when a
    passphrase is given); a protected PFX needs the passphrase to be read at all. Blocking (file
    I/O and decryption): call it through ``asyncio.to_thread`` from the event loop.

    Raises:
        CertificateError: the file cannot be used; the message names it and says what to do.
    """
    info, key = _load(path, passphrase, need_key=False)
    if key is not None:
        _checked_key(info.path, key)
    return info


def load_client_certificate(
    path: str | os.PathLike[str], passphrase: str | None = None, *, now: datetime | None = None
) -> ClientCertificate:
    """The certificate and its decrypted private key, for signing in (blocking; use a worker thread).

    An expired or not-yet-valid certificate is logged as a warning and still returned: Entra ID
    decides, and its answer says what is wrong.

    Raises:
        CertificateError: the file cannot be used; the message names it and says what to do.
    """
    info, key = _load(path, passphrase, need_key=True)
    if key is None:  # a PEM without a key was refused already; this is defensive
        raise CertificateError(
            f"{info.path} holds no usable private key. {_HOW_TO_EXPORT}", reason="no_private_key", path=info.path
        )
    rsa_key = _checked_key(info.path, key)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    register_secret(pem)
    problem = info.validity_problem(now)
    if problem:
        log.warning("%s Trying to sign in with it anyway.", problem)
    return ClientCertificate(info=info, private_key_pem=pem)
