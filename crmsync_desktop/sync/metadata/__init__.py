"""Metadata sync: read an organization's schema, plan what the client needs, apply it, order entities.

Metadata flows server -> client only. Pure planning (``plan_connect``, ``plan_update``), one apply
step through the client :class:`~crmsync_desktop.sync.connectors.base.Connector` (``apply_plan``),
the stored snapshot codec, the entity sync order and the columns that cannot be deselected. No Qt
and no store access: the engine facade passes snapshots in and out.
"""

from __future__ import annotations

from crmsync_desktop.sync.metadata.apply import (
    OperationOutcome,
    ProgressCallback,
    SchemaReport,
    SupportsSchemaUpdates,
    apply_plan,
)
from crmsync_desktop.sync.metadata.order import DeferredLookup, SyncOrder, locked_fields, sync_order
from crmsync_desktop.sync.metadata.plan import (
    CreateEntity,
    CreateField,
    CreateRelationship,
    IssueCode,
    Operation,
    SchemaIssue,
    SchemaPlan,
    Severity,
    UpdateEntity,
    UpdateField,
    plan_connect,
    plan_update,
)
from crmsync_desktop.sync.metadata.schema import (
    ALWAYS_SYNCED,
    NEVER_SYNCED,
    Schema,
    compatible,
    filter_metadata,
    read_schema,
    schema_to_snapshot,
    snapshot_to_schema,
)

__all__ = [
    "ALWAYS_SYNCED",
    "NEVER_SYNCED",
    "CreateEntity",
    "CreateField",
    "CreateRelationship",
    "DeferredLookup",
    "IssueCode",
    "Operation",
    "OperationOutcome",
    "ProgressCallback",
    "Schema",
    "SchemaIssue",
    "SchemaPlan",
    "SchemaReport",
    "Severity",
    "SupportsSchemaUpdates",
    "SyncOrder",
    "UpdateEntity",
    "UpdateField",
    "apply_plan",
    "compatible",
    "filter_metadata",
    "locked_fields",
    "plan_connect",
    "plan_update",
    "read_schema",
    "schema_to_snapshot",
    "snapshot_to_schema",
    "sync_order",
]
