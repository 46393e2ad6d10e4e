"""Certificate sign-in leaves neither the passphrase nor the private key anywhere but the keyring and the file.

Against the emulated organizations over HTTPS, logging at DEBUG: save a certificate profile, Test
connection (signs in with the key), export it, then a failed sign-in with a wrong stored passphrase
whose error goes through the default ``sys.excepthook``. Every file under the app's home, the export,
the log ring buffer and the hook's output are scanned for the passphrase and for the key in PEM,
base64 (DER) and hex.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from crmsync_desktop.auth.credentials import CredentialStore, SecretKind
from crmsync_desktop.domain import AuthKind, ConnectionProfile
from crmsync_desktop.emulator.runner import EmulatorPair
from crmsync_desktop.errors import CertificateError
from crmsync_desktop.logs import setup_logging
from crmsync_desktop.paths import resolve_paths
from crmsync_desktop.store.migrate import open_store
from crmsync_desktop.sync.engine import SyncEngine
from crmsync_desktop.sync.organizations import ProfileConnectorFactory
from crmsync_desktop.sync.profiles import ProfileService
from tests.fakes.certificates import make_certificate

PROFILE = "Unattended"
PASSPHRASE = "Pfx-Passphrase-4711"


def test_no_passphrase_or_private_key_anywhere_after_certificate_sign_in(tmp_path: Path, app_home: Path) -> None:
    paths = resolve_paths(app_home).ensure()
    setup = setup_logging(paths.log_file, level=logging.DEBUG)
    cert = make_certificate("crmsync-sync.contoso.com")
    pfx = cert.write(tmp_path / "certs", "sync.pfx", cert.pfx(PASSPHRASE))
    export = tmp_path / "export.crmsync.json"
    hook_output = io.StringIO()
    with EmulatorPair(tmp_path / "emu", seed_records=5, seed=3) as emu:
        assert emu.provider is not None
        emu.provider.directory.tenants[emu.tenant_id].apps[emu.client_id].certificates.append(cert.cert_pem)
        credentials = CredentialStore()
        db = open_store(paths.database, paths.backups_dir)
        factory = ProfileConnectorFactory(credentials, token_cache_path=paths.token_cache, ca_bundle=str(emu.ca_path))
        engine = SyncEngine(db, factory, credentials=credentials)
        profile = ConnectionProfile(
            name=PROFILE, server_url=emu.dataverse_url, server_auth_kind=AuthKind.CERTIFICATE,
            client_id=emu.client_id, certificate_path=str(pfx),
            client_url=f"{emu.resco_url}/{emu.resco_org}", client_user=emu.resco_username,
        )

        async def flow() -> object:
            await engine.save_connection(profile, {SecretKind.SERVER_CERTIFICATE_PASSWORD: PASSPHRASE,
                                                   SecretKind.CLIENT_PASSWORD: emu.resco_password})
            server, _ = await engine.test_connection(PROFILE)
            assert not isinstance(server, Exception), server
            await ProfileService(db).export_to_file(PROFILE, export)
            await credentials.aset_secret(PROFILE, SecretKind.SERVER_CERTIFICATE_PASSWORD, "Wr0ng-" + PASSPHRASE)
            failed, _ = await engine.test_connection(PROFILE)
            await engine.aclose()
            return failed

        try:
            failed = asyncio.run(flow())
            assert isinstance(failed, CertificateError) and failed.reason == "wrong_passphrase", failed
            stderr = sys.stderr
            sys.stderr = hook_output
            try:
                try:
                    raise RuntimeError("sync failed") from failed
                except RuntimeError:
                    sys.__excepthook__(*sys.exc_info())
            finally:
                sys.stderr = stderr
            logging.getLogger("crmsync_desktop.test").exception("uncaught", exc_info=failed)
        finally:
            factory.close()
            db.close()
            ring = "\n".join(line.message for line in setup.ring.lines()).encode()
            setup.close()

    der = cert.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    pem_lines = [line for line in cert.key_pem().decode().splitlines() if "-----" not in line]
    needles = {
        "passphrase": [PASSPHRASE.encode(), PASSPHRASE.encode("utf-16-le")],
        "private key (PEM line)": [pem_lines[5].encode()],
        "private key (base64)": [base64.b64encode(der)[200:260]],
        "private key (hex)": [der.hex()[400:480].encode()],
    }
    blobs = {str(p.relative_to(app_home)): p.read_bytes() for p in app_home.rglob("*") if p.is_file()}
    blobs["export"] = export.read_bytes()
    blobs["log ring buffer"] = ring
    blobs["sys.excepthook output"] = hook_output.getvalue().encode()
    assert str(pfx).encode() in blobs["export"]  # the path is exported, nothing else of the certificate
    assert "is wrong" in hook_output.getvalue()
    leaks = [f"{name} in {where}" for where, data in blobs.items() for name, forms in needles.items()
             if any(form in data for form in forms)]
    assert not leaks, leaks
