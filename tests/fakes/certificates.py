"""Throwaway client certificates for tests: RSA (or EC) keys, self-signed certificates, PEM and PFX files."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

__all__ = ["TestCertificate", "make_certificate"]


@dataclass(frozen=True)
class TestCertificate:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    __test__ = False  # not a pytest test class

    @property
    def thumbprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA1()).hex().upper()

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def key_pem(self, passphrase: str | None = None, *, traditional: bool = False) -> bytes:
        encryption = (
            serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
            else serialization.NoEncryption()
        )
        fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, encryption)

    def pem(self, passphrase: str | None = None, *, traditional: bool = False) -> bytes:
        """Key then certificate, as ``openssl pkcs12 -nodes`` or a hand-made bundle has them."""
        return self.key_pem(passphrase, traditional=traditional) + self.cert_pem

    def pfx(self, passphrase: str | None = None, *, with_key: bool = True) -> bytes:
        encryption = (
            serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
            else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            b"crmsync", self.key if with_key else None, self.cert, None, encryption  # type: ignore[arg-type]
        )

    def write(self, folder: Path, name: str, data: bytes) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(data)
        return path


def make_certificate(
    common_name: str = "crmsync-test",
    *,
    days: int = 30,
    valid_from_days: int = -1,
    key_type: str = "rsa",
) -> TestCertificate:
    """A self-signed certificate valid from ``valid_from_days`` to ``valid_from_days + days`` days from now."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if key_type == "rsa"
           else ec.generate_private_key(ec.SECP256R1()))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=valid_from_days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return TestCertificate(key, cert)
