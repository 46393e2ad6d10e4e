"""A local certificate authority and a loopback server certificate for the emulated services.

MSAL refuses any authority that is not ``https`` (dataverse-web-api.md §2.4), and the real
Dataverse and Resco Cloud are HTTPS only, so every emulated service speaks TLS. The CA is made
once per data folder and reused, so a client that trusts ``ca.pem`` keeps trusting the emulator
across restarts; the leaf is re-issued whenever a requested host name is missing from it.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["EmulatorCertificates", "client_ssl_context", "ensure_certificates"]

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class EmulatorCertificates:
    """Paths of the PEM files; ``ca_path`` is the one clients must trust."""

    ca_path: Path
    cert_path: Path  # leaf certificate followed by the CA (full chain)
    key_path: Path
    hosts: tuple[str, ...]

    def client_context(self) -> ssl.SSLContext:
        return client_ssl_context(self.ca_path)


def client_ssl_context(ca_path: Path | str) -> ssl.SSLContext:
    """An SSL context that trusts only the emulator CA (pass it to ``httpx.Client(verify=...)``)."""
    return ssl.create_default_context(cafile=str(ca_path))


def ensure_certificates(
    data_dir: Path | str, extra_hosts: tuple[str, ...] | list[str] = ()
) -> EmulatorCertificates:
    """Load or create ``data_dir/tls/{ca,ca-key,server,server-key}.pem`` covering ``127.0.0.1``,
    ``localhost`` and ``extra_hosts`` (e.g. ``contoso.localhost`` for host-style Resco org names)."""
    folder = Path(data_dir) / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    ca_path, ca_key_path = folder / "ca.pem", folder / "ca-key.pem"
    cert_path, key_path, hosts_path = folder / "server.pem", folder / "server-key.pem", folder / "hosts.json"
    hosts = tuple(dict.fromkeys([*DEFAULT_HOSTS, *extra_hosts]))

    if ca_path.exists() and ca_key_path.exists():
        ca = trustme.CA.from_pem(ca_path.read_bytes(), ca_key_path.read_bytes())
    else:
        ca = trustme.CA(organization_name="crmsync emulator", organization_unit_name="local CA")
        ca.cert_pem.write_to_path(str(ca_path))
        ca.private_key_pem.write_to_path(str(ca_key_path))
        ca_key_path.chmod(0o600)
        cert_path.unlink(missing_ok=True)

    existing: list[str] = json.loads(hosts_path.read_text()) if hosts_path.exists() else []
    if not (cert_path.exists() and key_path.exists() and set(hosts) <= set(existing)):
        hosts = tuple(dict.fromkeys([*existing, *hosts]))
        leaf = ca.issue_cert(*hosts)
        # Full chain so clients that only trust the CA can build the path.
        cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key_path))
        key_path.chmod(0o600)
        hosts_path.write_text(json.dumps(list(hosts)))
    else:
        hosts = tuple(existing)
    return EmulatorCertificates(ca_path=ca_path, cert_path=cert_path, key_path=key_path, hosts=hosts)
