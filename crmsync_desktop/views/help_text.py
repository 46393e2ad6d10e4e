"""Short help the console shows next to settings that are easy to get wrong.

Plain text, no Qt: the Connection dialog shows it as a tooltip and in a small help box. Each text is
a condensed copy of a section of ``docs/user-guide.md`` (named by ``*_SECTION``, with its Markdown
anchor), so an installed app that cannot open the repository's files still has the steps that matter.
Keep both in step: ``tests/views/test_connection_dialog.py`` checks that the guide still has the section.
"""

from __future__ import annotations

from crmsync_desktop.domain import AuthKind

__all__ = [
    "APP_REGISTRATION_ANCHOR",
    "APP_REGISTRATION_LINK_TEXT",
    "APP_REGISTRATION_SECTION",
    "GUIDE",
    "app_registration_help",
]

GUIDE = "docs/user-guide.md"
APP_REGISTRATION_SECTION = "Register the app in Entra ID"
APP_REGISTRATION_ANCHOR = "register-the-app-in-entra-id"  # GitHub's anchor for the section title
APP_REGISTRATION_LINK_TEXT = "How to set up the app registration"

_COMMON = (
    "In the Microsoft Entra admin center open App registrations ▸ New registration (single tenant). "
    "Copy its Application (client) ID into this dialog. Tenant ID is optional: crmsync finds the tenant "
    "from the organization URL; enter the Directory (tenant) ID if your network blocks that."
)

_BY_METHOD = {
    AuthKind.CLIENT_SECRET: (
        "Client secret: in the app registration open Certificates & secrets ▸ New client secret and paste its "
        "Value (not the Secret ID) here; note when it expires. Then, in the Power Platform admin center, open "
        "the environment ▸ Settings ▸ Users + permissions ▸ Application users ▸ New app user, pick this app and "
        "give it a security role with read on the synced tables (organization level) and create, write, "
        "delete, assign, append and append to on the tables that receive client changes."
    ),
    AuthKind.CERTIFICATE: (
        "Certificate (best for unattended sync machines): in the app registration open Certificates & secrets ▸ "
        "Certificates ▸ Upload certificate and upload the public part only (.cer, .crt or .pem, no private key). "
        "Here, pick the file with the private key (PFX/PKCS#12, or PEM with both the key and the certificate) and "
        "enter its passphrase if it has one (it is kept in the OS keyring). The thumbprint shown here must match "
        "the one the app registration lists. Then, in the Power Platform admin center, create the application "
        "user for this app with a security role, exactly as for a client secret."
    ),
    AuthKind.DEVICE_CODE: (
        "Device code: in the app registration set Authentication ▸ Allow public client flows to Yes, and add "
        "the API permission Dynamics CRM ▸ user_impersonation (delegated; grant admin consent). The person "
        "who signs in needs a Dataverse security role with the privileges the sync uses."
    ),
    AuthKind.INTERACTIVE: (
        "Browser: in the app registration add the platform Mobile and desktop applications with the redirect "
        "URI http://localhost (exactly, no port), set Allow public client flows to Yes, and add the API "
        "permission Dynamics CRM ▸ user_impersonation (delegated; grant admin consent). The person who signs "
        "in needs a Dataverse security role with the privileges the sync uses."
    ),
}


def app_registration_help(auth_kind: AuthKind) -> str:
    """The app-registration steps for ``auth_kind``, ending with where the full steps are."""
    method = _BY_METHOD.get(auth_kind, _BY_METHOD[AuthKind.CLIENT_SECRET])
    return (
        f"{_COMMON}\n\n{method}\n\n"
        f"All steps, with the privileges in detail: user guide ({GUIDE}), section \"{APP_REGISTRATION_SECTION}\"."
    )
