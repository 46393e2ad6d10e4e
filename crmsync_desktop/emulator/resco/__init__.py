"""Emulated Resco Cloud: OData v4, the REST data service subset, a metadata API, provisioning, faults.

``RescoCloud`` hosts organizations (one SQLite file each); ``create_app(cloud)`` serves them.
"""

from crmsync_desktop.emulator.resco.app import create_app
from crmsync_desktop.emulator.resco.cloud import RescoCloud
from crmsync_desktop.emulator.resco.faults import FaultConfig, FaultInjector
from crmsync_desktop.emulator.resco.schema import FIELD_TYPES, EntityDef, FieldDef, SchemaError
from crmsync_desktop.emulator.resco.store import ConcurrencyError, NotFound, RescoOrg

__all__ = [
    "FIELD_TYPES",
    "ConcurrencyError",
    "EntityDef",
    "FaultConfig",
    "FaultInjector",
    "FieldDef",
    "NotFound",
    "RescoCloud",
    "RescoOrg",
    "SchemaError",
    "create_app",
]
