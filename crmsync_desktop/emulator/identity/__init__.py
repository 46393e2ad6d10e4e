"""Emulated Microsoft Entra ID: enough of ``login.microsoftonline.com`` for MSAL to sign in for real.

``IdentityProvider`` holds the rules and doubles as the Dataverse emulator's bearer-token
validator; ``create_identity_app`` serves it over HTTP(S).
"""

from crmsync_desktop.emulator.identity.app import create_identity_app
from crmsync_desktop.emulator.identity.provider import IdentityProvider
from crmsync_desktop.emulator.identity.registry import (
    AppRegistration,
    Directory,
    Tenant,
    User,
    certificate_thumbprints,
)
from crmsync_desktop.emulator.identity.tokens import SigningKey

__all__ = [
    "AppRegistration",
    "Directory",
    "IdentityProvider",
    "SigningKey",
    "Tenant",
    "User",
    "certificate_thumbprints",
    "create_identity_app",
]
