"""crmsync-desktop: keep a Resco Cloud client organization in sync with a Dataverse server organization.

Importing this package has no side effects: no Qt, no database, no logging configuration.
"""

__version__ = "0.1.0"
