"""The MSAL token cache, persisted encrypted by the OS (DPAPI, Keychain, libsecret) via msal-extensions.

Never in the keyring (too large for Windows' credential store) and never in plain text: when the
platform offers no encryption, opening the cache fails with an error that names the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msal
from msal_extensions import PersistedTokenCache, build_encrypted_persistence

from crmsync_desktop.errors import KeyringUnavailableError

log = logging.getLogger(__name__)

PersistenceFactory = Callable[[str], Any]

LINUX_FIX = (
    "On Linux install libsecret with its Python bindings (Debian/Ubuntu: apt install gir1.2-secret-1 "
    "python3-gi, or pip install PyGObject) and run a Secret Service such as GNOME Keyring or KeePassXC "
    "in your desktop session. "
)


def open_token_cache(
    path: Path, *, persistence_factory: PersistenceFactory = build_encrypted_persistence
) -> msal.SerializableTokenCache:
    """An MSAL token cache stored encrypted at ``path`` (shared safely between processes by a file lock).

    Raises:
        KeyringUnavailableError: the OS offers no encryption for it; the message says what to install.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        persistence = persistence_factory(str(path))
    except Exception as exc:  # ImportError (no gi), gi/libsecret errors, RuntimeError(unsupported OS), OSError
        log.warning("encrypted token cache unavailable: %s", type(exc).__name__)
        raise KeyringUnavailableError(
            "Sign-in tokens cannot be stored encrypted on this computer "
            f"({type(exc).__name__}: {exc}). {LINUX_FIX}"
            "crmsync-desktop never stores tokens in plain text.",
            title="No encrypted storage for sign-in tokens",
        ) from exc
    if not getattr(persistence, "is_encrypted", False):
        raise KeyringUnavailableError(
            f"The token storage offered for {path.name} is not encrypted. {LINUX_FIX}"
            "crmsync-desktop never stores tokens in plain text.",
            title="No encrypted storage for sign-in tokens",
        )
    return PersistedTokenCache(persistence)
