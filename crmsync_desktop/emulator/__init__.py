"""Emulated organizations: a local Dataverse (with an Entra ID-like sign-in) and a local Resco Cloud.

Real HTTP servers on loopback that speak the documented wire formats. Written from the
documentation alone: this package shares no code with the connectors in ``crmsync_desktop.sync``
(an import-linter contract enforces it), so a misreading on either side fails a test.
"""
