"""Emulated Dataverse organization: the Web API subset of dataverse-web-api.md §10 on loopback.

Public API: ``DataverseOrg`` (the org and its admin API), ``create_app`` (the Starlette app), the
config dataclasses, and ``crmsync_desktop.emulator.seed.seed_sales_org`` for data.
"""

from .app import create_app
from .config import Faults, Performance, ServiceLimits
from .org import Caller, DataverseOrg

__all__ = ["Caller", "DataverseOrg", "Faults", "Performance", "ServiceLimits", "create_app"]
