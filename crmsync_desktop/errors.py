"""The domain error tree: every error a user can meet, with a title and a message that says what to do.

Each boundary (HTTP, MSAL, keyring, SQLite, files) translates its own exceptions into these once,
so the console, the tray and the CLI can show any failure the same way::

    CrmSyncError
    ├── ConfigError                 bad input from the user: URL, filter, import file
    │   ├── InvalidUrlError
    │   ├── FilterError             malformed or unsafe FetchXML, unknown entity or field
    │   ├── ConfigFileError         an import file that cannot be used (nothing was changed)
    │   └── CertificateError        a sign-in certificate file that cannot be used (names the file)
    ├── CredentialError             the OS keyring
    │   ├── KeyringUnavailableError no usable backend (headless Linux without a Secret Service)
    │   ├── KeyringLockedError      the keyring exists but is locked
    │   ├── SecretTooLargeError     the platform caps entry size (Windows: 2,560 bytes)
    │   └── SecretMissingError      nothing stored for that profile and kind
    ├── AuthError                   sign-in failed or is needed
    │   └── AuthRequiredError       interactive sign-in is needed before anything can run
    ├── RemoteError                 the organization answered with an error
    │   ├── NotFoundError
    │   ├── ConcurrencyError        412: the record changed since it was read
    │   ├── PrivilegeError          403: the user lacks a privilege
    │   ├── ValidationError         400: the server rejected the data
    │   ├── ThrottledError          429: service protection limits; carries retry_after
    │   ├── ServerError             5xx
    │   └── FullResyncRequired      a change-tracking token expired
    ├── NetworkError                the organization cannot be reached (offline, DNS, TLS, timeout)
    │   └── TlsError
    ├── StoreError                  the local SQLite store
    │   ├── StoreCorruptError
    │   └── MigrationError
    └── ProfileNotFoundError
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "AuthRequiredError",
    "CertificateError",
    "ConcurrencyError",
    "ConfigError",
    "ConfigFileError",
    "CredentialError",
    "CrmSyncError",
    "FilterError",
    "FullResyncRequired",
    "InvalidUrlError",
    "KeyringLockedError",
    "KeyringUnavailableError",
    "MigrationError",
    "NetworkError",
    "NotFoundError",
    "PrivilegeError",
    "ProfileNotFoundError",
    "RemoteError",
    "SecretMissingError",
    "SecretTooLargeError",
    "ServerError",
    "StoreCorruptError",
    "StoreError",
    "ThrottledError",
    "TlsError",
    "ValidationError",
]


class CrmSyncError(Exception):
    """Base of every error a user can meet.

    Args:
        message: what happened and what to do about it, in one or two sentences.
        title: a short heading for a dialog or a tray notification; the class default if omitted.
        entity: the entity logical name the error concerns, if any.
        profile: the connection profile name the error concerns, if any.
    """

    default_title = "Something went wrong"
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        title: str | None = None,
        entity: str | None = None,
        profile: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.title = title or self.default_title
        self.entity = entity
        self.profile = profile

    def __str__(self) -> str:
        return self.message


class ConfigError(CrmSyncError):
    default_title = "Invalid settings"
    exit_code = 2


class InvalidUrlError(ConfigError):
    default_title = "Invalid organization URL"


class FilterError(ConfigError):
    default_title = "Invalid filter"


class ConfigFileError(ConfigError):
    default_title = "Cannot import this configuration file"


class CertificateError(ConfigError):
    """A certificate file for Dataverse sign-in is missing, unreadable or unusable.

    ``reason`` says which (one of the ``REASONS``), so a form can put the message next to the right
    field; ``path`` is the file. The message names the file and what to do; it never holds the key
    or the passphrase.
    """

    default_title = "Cannot use the certificate"
    REASONS = (
        "missing",
        "unreadable",
        "passphrase_needed",
        "wrong_passphrase",
        "no_private_key",
        "no_certificate",
        "key_mismatch",
        "unsupported_key",
        "not_a_certificate",
    )

    def __init__(self, message: str, *, reason: str, path: str = "", **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        assert reason in self.REASONS, reason
        self.reason = reason
        self.path = path


class CredentialError(CrmSyncError):
    default_title = "Credential store problem"
    exit_code = 3


class KeyringUnavailableError(CredentialError):
    default_title = "No keyring available"


class KeyringLockedError(CredentialError):
    default_title = "Keyring is locked"


class SecretTooLargeError(CredentialError):
    default_title = "Secret too large for the keyring"


class SecretMissingError(CredentialError):
    default_title = "No stored credentials"


class AuthError(CrmSyncError):
    default_title = "Sign-in failed"
    exit_code = 4


class AuthRequiredError(AuthError):
    default_title = "Sign-in needed"


class RemoteError(CrmSyncError):
    """The organization answered with an error. ``status`` and ``code`` are the wire values."""

    default_title = "The organization returned an error"
    exit_code = 5

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, **kw: object):
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        """Whether sending the same request later may succeed (throttling and server faults)."""
        return False


class NotFoundError(RemoteError):
    default_title = "Record or table not found"


class ConcurrencyError(RemoteError):
    default_title = "The record was changed by someone else"


class PrivilegeError(RemoteError):
    default_title = "Missing privilege"


class ValidationError(RemoteError):
    default_title = "The organization rejected the data"


class ThrottledError(RemoteError):
    """429 from service protection limits; ``retry_after`` is in seconds."""

    default_title = "Throttled by the organization"

    def __init__(self, message: str, *, retry_after: float, **kw: object):
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return True


class ServerError(RemoteError):
    default_title = "The organization had a server error"

    @property
    def retryable(self) -> bool:
        return True


class FullResyncRequired(RemoteError):
    default_title = "Full resynchronization needed"


class NetworkError(CrmSyncError):
    default_title = "Cannot reach the organization"
    exit_code = 6

    @property
    def retryable(self) -> bool:
        return True


class TlsError(NetworkError):
    default_title = "Secure connection failed"

    @property
    def retryable(self) -> bool:
        return False


class StoreError(CrmSyncError):
    default_title = "Local database problem"
    exit_code = 7


class StoreCorruptError(StoreError):
    default_title = "Local database is damaged"


class MigrationError(StoreError):
    default_title = "Local database upgrade failed"


class ProfileNotFoundError(CrmSyncError):
    default_title = "Connection profile not found"
    exit_code = 8
