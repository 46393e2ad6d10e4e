"""Executing a :class:`~crmsync_desktop.sync.metadata.plan.SchemaPlan` against the client organization.

Operations run in the plan's dependency order (entities, fields, relationships). A failing
operation is reported and the rest go on, except those that need an entity that could not be
created. Losing the connection stops the run (the remaining operations are reported as not
attempted); a sign-in problem is raised. Re-running is safe: re-plan against the client as it now
is, and only what is still missing is planned again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from crmsync_desktop import errors
from crmsync_desktop.sync.connectors.base import Connector
from crmsync_desktop.sync.connectors.types import EntityMeta, FieldMeta
from crmsync_desktop.sync.metadata.plan import (
    CreateEntity,
    CreateField,
    CreateRelationship,
    Operation,
    SchemaIssue,
    SchemaPlan,
    Severity,
    UpdateEntity,
    UpdateField,
)

__all__ = ["OperationOutcome", "ProgressCallback", "SchemaReport", "SupportsSchemaUpdates", "apply_plan"]

ProgressCallback = Callable[[str, int, int], None]
"""``(message, done, total)``: called before each operation and once at the end."""


@runtime_checkable
class SupportsSchemaUpdates(Protocol):
    """The proposed Connector additions for Update Server (not in the Protocol yet)."""

    async def update_field(self, entity: str, field: FieldMeta) -> None: ...

    async def update_entity(self, entity: EntityMeta) -> None: ...


@dataclass(frozen=True, slots=True)
class OperationOutcome:
    """An operation that failed (``error``) or was not attempted (``reason``)."""

    operation: Operation
    message: str
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class SchemaReport:
    applied: tuple[Operation, ...] = ()
    failed: tuple[OperationOutcome, ...] = ()
    skipped: tuple[OperationOutcome, ...] = ()
    issues: tuple[SchemaIssue, ...] = ()
    aborted: str | None = None  # why the run stopped early (the connection was lost)

    @property
    def ok(self) -> bool:
        """Every operation was applied (issues aside)."""
        return not self.failed and not self.skipped and self.aborted is None

    def summary(self) -> str:
        parts = [f"{len(self.applied)} change(s) applied"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} not attempted")
        if self.issues:
            parts.append(f"{len(self.issues)} issue(s) to review")
        text = ", ".join(parts) + "."
        return f"{text} Stopped: {self.aborted}" if self.aborted else text

    def lines(self) -> list[str]:
        """For the run log at INFO level: the summary, each applied change, warnings and notes."""
        out = [self.summary()]
        out += [op.describe() for op in self.applied]
        out += [i.message for i in self.issues if i.severity is not Severity.ERROR]
        return out

    def problems(self) -> list[str]:
        """For the run log at ERROR level: failed and skipped changes, the stop reason, error issues."""
        out = [f"{f.operation.describe()} failed: {f.message}" for f in self.failed]
        out += [f"{s.operation.describe()}: {s.message}" for s in self.skipped]
        if self.aborted:
            out.append(f"Stopped early: {self.aborted}")
        out += [i.message for i in self.issues if i.severity is Severity.ERROR]
        return out


async def _execute(op: Operation, client: Connector) -> None:
    if isinstance(op, CreateEntity):
        await client.create_entity(op.entity)
    elif isinstance(op, CreateField):
        await client.create_field(op.entity, op.field)
    elif isinstance(op, CreateRelationship):
        await client.create_relationship(op.relationship)
    else:
        name = "update_field" if isinstance(op, UpdateField) else "update_entity"
        update = getattr(client, name, None)  # proposed Protocol additions, see SupportsSchemaUpdates
        if update is None:
            raise errors.ConfigError(
                f"This client connection cannot change existing tables or columns yet ({name} is missing); "
                "the change was not applied. Make it in Woodford, or update crmsync.",
                entity=op.entity.logical_name if isinstance(op, UpdateEntity) else op.entity,
            )
        if isinstance(op, UpdateField):
            await update(op.entity, op.field)
        else:
            await update(op.entity)


async def apply_plan(
    plan: SchemaPlan, client: Connector, on_progress: ProgressCallback | None = None
) -> SchemaReport:
    """Apply ``plan`` to the client organization; see the module docstring for the failure rules.

    Raises:
        AuthError: the client needs a new sign-in (nothing after it was attempted).
    """
    total = len(plan.operations)
    applied: list[Operation] = []
    failed: list[OperationOutcome] = []
    skipped: list[OperationOutcome] = []
    missing_entities: set[str] = set()  # entities whose creation failed
    aborted: str | None = None
    for index, op in enumerate(plan.operations):
        if aborted is not None:
            skipped.append(OperationOutcome(op, "not attempted: the run stopped early", retryable=True))
            continue
        blockers = sorted(set(op.entities) & missing_entities)
        if blockers:
            skipped.append(OperationOutcome(op, f"not attempted: table {', '.join(blockers)} could not be created"))
            continue
        if on_progress is not None:
            on_progress(op.describe(), index, total)
        try:
            await _execute(op, client)
        except errors.AuthError:
            raise
        except errors.NetworkError as err:
            failed.append(OperationOutcome(op, err.message, retryable=err.retryable))
            aborted = f"{err.title}: {err.message}"
            continue
        except errors.CrmSyncError as err:
            failed.append(OperationOutcome(op, err.message, retryable=bool(getattr(err, "retryable", False))))
            if isinstance(op, CreateEntity):
                missing_entities.add(op.entity.logical_name)
            continue
        applied.append(op)
    if on_progress is not None:
        on_progress("Metadata update finished" if aborted is None else "Metadata update stopped", total, total)
    return SchemaReport(tuple(applied), tuple(failed), tuple(skipped), plan.issues, aborted)
