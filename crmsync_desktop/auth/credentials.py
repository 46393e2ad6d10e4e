"""The only code that touches the OS keyring: small secrets (passwords, client secrets) per profile.

Secrets never go anywhere else: not the SQLite store, not the configuration file, not a log line
(each secret read or written is registered with the log redaction filter). When the machine has no
usable keyring we say so and name the fix; we never fall back to a plaintext file, and we refuse
backends that are plaintext in disguise (``keyrings.alt``) or that silently drop secrets (``null``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import sys

import keyring
import keyring.backend
import keyring.errors

from crmsync_desktop.errors import (
    CredentialError,
    KeyringLockedError,
    KeyringUnavailableError,
    SecretMissingError,
    SecretTooLargeError,
)
from crmsync_desktop.logs import register_secret

log = logging.getLogger(__name__)

SERVICE_NAME = "crmsync-desktop"
# Windows Credential Manager caps a blob at 2,560 bytes (stored as UTF-16: 1,280 characters).
WINDOWS_MAX_SECRET_CHARS = 1280

_REJECTED_BACKEND_MODULES = ("keyrings.alt", "keyring.backends.null", "keyring.backends.fail")

_FIX_BY_PLATFORM = {
    "linux": (
        "Install and unlock a Secret Service provider (for example GNOME Keyring: "
        "'sudo apt install gnome-keyring', then sign in to a desktop session, or start it with "
        "'gnome-keyring-daemon --unlock' inside 'dbus-run-session' on a headless machine), "
        "or KWallet on KDE."
    ),
    "darwin": "Unlock the login keychain in Keychain Access and try again.",
    "win32": "Make sure the Windows Credential Manager service is running and try again.",
}


class SecretKind(enum.StrEnum):
    """Which secret of a profile an entry holds."""

    SERVER_CLIENT_SECRET = "server-client-secret"
    SERVER_CERTIFICATE_PASSWORD = "server-certificate-password"
    SERVER_PASSWORD = "server-password"
    CLIENT_PASSWORD = "client-password"


def _fix_hint() -> str:
    for prefix, hint in _FIX_BY_PLATFORM.items():
        if sys.platform.startswith(prefix):
            return hint
    return "Install and unlock a system keyring supported by the Python 'keyring' package."


def _backend_leaves(backend: keyring.backend.KeyringBackend) -> list[keyring.backend.KeyringBackend]:
    return list(getattr(backend, "backends", None) or [backend])


class CredentialStore:
    """Stores secrets in the OS keyring under service ``crmsync-desktop``, account ``<profile>:<kind>``.

    Methods are blocking (keyring may talk to D-Bus or show an unlock prompt); the ``a*`` variants
    run them in a worker thread so the event loop never waits on the keyring.
    """

    def __init__(self, backend: keyring.backend.KeyringBackend | None = None) -> None:
        self._backend = backend

    @property
    def backend(self) -> keyring.backend.KeyringBackend:
        return self._backend if self._backend is not None else keyring.get_keyring()

    @staticmethod
    def account(profile: str, kind: SecretKind) -> str:
        return f"{profile}:{kind.value}"

    def check_available(self) -> str:
        """Return the backend's name, or raise KeyringUnavailableError naming the fix."""
        backend = self.backend
        leaves = [b for b in _backend_leaves(backend) if not type(b).__module__.startswith(_REJECTED_BACKEND_MODULES)]
        if not leaves:
            name = f"{type(backend).__module__}.{type(backend).__name__}"
            raise KeyringUnavailableError(
                f"No secure keyring is available on this machine (found {name}). "
                f"Passwords and client secrets are only ever stored in the OS keyring. {_fix_hint()}"
            )
        return ", ".join(f"{type(b).__module__}.{type(b).__name__}" for b in leaves)

    def set_secret(self, profile: str, kind: SecretKind, value: str) -> None:
        if not value:
            raise CredentialError("An empty secret cannot be stored. Enter the secret and try again.")
        self.check_available()
        if sys.platform == "win32" and len(value) > WINDOWS_MAX_SECRET_CHARS:
            raise SecretTooLargeError(
                f"This secret is {len(value)} characters long; the Windows Credential Manager holds at "
                f"most {WINDOWS_MAX_SECRET_CHARS}. Use a certificate file instead of a long secret."
            )
        register_secret(value)
        self._call(lambda: self.backend.set_password(SERVICE_NAME, self.account(profile, kind), value))
        log.info("Stored %s for profile %r in the keyring", kind.value, profile)

    def get_secret(self, profile: str, kind: SecretKind) -> str:
        """Return the secret or raise SecretMissingError saying where to enter it."""
        self.check_available()
        value = self._call(lambda: self.backend.get_password(SERVICE_NAME, self.account(profile, kind)))
        if value is None:
            raise SecretMissingError(
                f"No {kind.value.replace('-', ' ')} is stored for profile '{profile}'. "
                "Open Connection and enter it again.",
                profile=profile,
            )
        register_secret(value)
        return value

    def has_secret(self, profile: str, kind: SecretKind) -> bool:
        try:
            self.get_secret(profile, kind)
        except SecretMissingError:
            return False
        return True

    def delete_secret(self, profile: str, kind: SecretKind) -> None:
        """Remove the secret; removing one that is not there is not an error."""
        self.check_available()
        try:
            self._call(lambda: self.backend.delete_password(SERVICE_NAME, self.account(profile, kind)))
        except CredentialError as exc:
            if not isinstance(exc.__cause__, keyring.errors.PasswordDeleteError):
                raise

    def delete_profile(self, profile: str) -> None:
        for kind in SecretKind:
            self.delete_secret(profile, kind)

    async def aset_secret(self, profile: str, kind: SecretKind, value: str) -> None:
        await asyncio.to_thread(self.set_secret, profile, kind, value)

    async def aget_secret(self, profile: str, kind: SecretKind) -> str:
        return await asyncio.to_thread(self.get_secret, profile, kind)

    async def adelete_profile(self, profile: str) -> None:
        await asyncio.to_thread(self.delete_profile, profile)

    @staticmethod
    def _call(fn):  # type: ignore[no-untyped-def]
        try:
            return fn()
        except keyring.errors.KeyringLocked as exc:
            raise KeyringLockedError(
                f"The keyring is locked, so stored credentials cannot be read. Unlock it and try again. "
                f"{_fix_hint()}"
            ) from exc
        except keyring.errors.NoKeyringError as exc:
            raise KeyringUnavailableError(
                f"No secure keyring is available on this machine. {_fix_hint()}"
            ) from exc
        except keyring.errors.PasswordDeleteError as exc:
            raise CredentialError("The secret was not in the keyring.") from exc
        except keyring.errors.KeyringError as exc:
            raise CredentialError(
                f"The keyring refused the operation ({type(exc).__name__}). Check that it is unlocked "
                "and try again."
            ) from exc
