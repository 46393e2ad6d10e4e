"""Pure planning of metadata sync: what the client organization lacks, or what changed on the server.

Metadata only ever flows server -> client. Client entities, columns and data are never dropped:
what the server removed is *reported* with what to do, and an impossible change (a column's type)
is reported as an error and that column left out of data sync (:attr:`SchemaPlan.excluded_fields`).

A plan is a list of operations in dependency order (entities, entity updates, fields, field
updates, relationships) and a list of issues. Re-planning after applying a plan gives an empty one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import TypeAlias

from crmsync_desktop.sync.connectors.types import (
    EntityMeta,
    FieldMeta,
    FieldType,
    OptionMeta,
    RelationshipKind,
    RelationshipMeta,
)
from crmsync_desktop.sync.metadata.schema import Schema, compatible

__all__ = [
    "CreateEntity",
    "CreateField",
    "CreateRelationship",
    "IssueCode",
    "Operation",
    "SchemaIssue",
    "SchemaPlan",
    "Severity",
    "UpdateEntity",
    "UpdateField",
    "plan_connect",
    "plan_update",
]

from crmsync_desktop.sync.records import SYSTEM_MANAGED  # noqa: E402

_NOT_CREATED = (FieldType.OTHER, FieldType.ROWVERSION)  # not copied / maintained by the client itself


# --- operations -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CreateEntity:
    """Create an entity with its primary key and primary name (``entity.fields`` holds only those two)."""

    entity: EntityMeta

    @property
    def entities(self) -> tuple[str, ...]:
        return ()

    def describe(self) -> str:
        return f"Create table {self.entity.logical_name}"


@dataclass(frozen=True, slots=True)
class UpdateEntity:
    """Change the labels of an existing client entity (needs the proposed ``Connector.update_entity``)."""

    entity: EntityMeta
    changes: tuple[str, ...]

    @property
    def entities(self) -> tuple[str, ...]:
        return (self.entity.logical_name,)

    def describe(self) -> str:
        return f"Update table {self.entity.logical_name} ({', '.join(self.changes)})"


@dataclass(frozen=True, slots=True)
class CreateField:
    entity: str
    field: FieldMeta

    @property
    def entities(self) -> tuple[str, ...]:
        return (self.entity, *self.field.targets)

    def describe(self) -> str:
        return f"Create column {self.entity}.{self.field.logical_name}"


@dataclass(frozen=True, slots=True)
class UpdateField:
    """Change an existing client column; ``field`` is the client column as it should become (same type).

    Needs the proposed ``Connector.update_field(entity, field)``.
    """

    entity: str
    field: FieldMeta
    changes: tuple[str, ...]

    @property
    def entities(self) -> tuple[str, ...]:
        return (self.entity, *self.field.targets)

    def describe(self) -> str:
        return f"Update column {self.entity}.{self.field.logical_name} ({', '.join(self.changes)})"


@dataclass(frozen=True, slots=True)
class CreateRelationship:
    relationship: RelationshipMeta

    @property
    def entities(self) -> tuple[str, ...]:
        r = self.relationship
        if r.kind is RelationshipKind.ONE_TO_MANY:
            return (r.referenced_entity, r.referencing_entity)
        return tuple(e for e in (r.entity1, r.entity2, r.intersect_entity) if e)

    def describe(self) -> str:
        return f"Create relationship {self.relationship.schema_name}"


Operation: TypeAlias = CreateEntity | UpdateEntity | CreateField | UpdateField | CreateRelationship


# --- issues ---------------------------------------------------------------------------------------

class Severity(enum.StrEnum):
    ERROR = "error"  # something will not be synchronized until the user acts
    WARNING = "warning"  # the server lost something the client keeps
    INFO = "info"


class IssueCode(enum.StrEnum):
    TYPE_CONFLICT = "type-conflict"  # the client has a column of the same name and another type
    TYPE_CHANGED = "type-changed"  # the server changed a replicated column's type
    TARGET_NOT_SYNCED = "target-not-synced"  # a lookup whose target entities are not synchronized
    RELATIONSHIP_CONFLICT = "relationship-conflict"
    REMOVED_ENTITY = "removed-entity"
    REMOVED_FIELD = "removed-field"
    REMOVED_RELATIONSHIP = "removed-relationship"


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """Something the plan cannot or will not do, in words that say what to do about it."""

    severity: Severity
    code: IssueCode
    entity: str
    message: str
    field: str = ""


@dataclass(frozen=True, slots=True)
class SchemaPlan:
    operations: tuple[Operation, ...] = ()
    issues: tuple[SchemaIssue, ...] = ()

    @property
    def is_empty(self) -> bool:
        """Nothing to apply (there may still be issues to show)."""
        return not self.operations

    @property
    def errors(self) -> tuple[SchemaIssue, ...]:
        return tuple(i for i in self.issues if i.severity is Severity.ERROR)

    @property
    def excluded_fields(self) -> dict[str, frozenset[str]]:
        """entity -> columns data sync must leave out: their client type cannot hold the server's values."""
        out: dict[str, set[str]] = {}
        for i in self.issues:
            if i.code in (IssueCode.TYPE_CONFLICT, IssueCode.TYPE_CHANGED) and i.field:
                out.setdefault(i.entity, set()).add(i.field)
        return {e: frozenset(f) for e, f in out.items()}


# --- planning -------------------------------------------------------------------------------------

def plan_connect(server: Schema, client: Schema) -> SchemaPlan:
    """What the client lacks to hold the server's schema (Connect).

    Missing entities, columns and relationships are created; existing client entities are extended,
    never dropped or narrowed. A client column with the server's name and an incompatible type is
    reported (``TYPE_CONFLICT``), not overwritten. Text columns too short for the server's values
    are widened and missing choice values added, since data could not be copied otherwise.
    """
    return _Planner(server, client, None).plan()


def plan_update(snapshot: Schema, server_now: Schema, client_now: Schema) -> SchemaPlan:
    """Update Server: bring the client up to the server's current schema, given what was replicated last.

    Besides what :func:`plan_connect` does: labels (entity, column, choice) and max lengths changed on
    the server since ``snapshot`` are updated on the client; entities, columns and relationships the
    server removed are reported (the client keeps them and their data); a column whose type changed
    on the server is reported as an error (``TYPE_CHANGED``) with what to do. Never client -> server.

    ``server_now`` should be read for the entities still selected plus any new ones; ``client_now``
    for the same names (``read_schema`` leaves out what the client lacks). ``server_now.catalog``
    tells an entity deleted on the server from one merely not read.
    """
    return _Planner(server_now, client_now, snapshot).plan()


def _intersect_last(e: EntityMeta) -> tuple[bool, str]:
    return (e.is_intersect, e.logical_name)


def _created_with_entity(e: EntityMeta, f: FieldMeta) -> bool:
    return f.is_primary_id or f.logical_name == e.primary_id or f.is_primary_name or f.logical_name == e.primary_name


class _Planner:
    def __init__(self, server: Schema, client: Schema, snapshot: Schema | None) -> None:
        self.server = server
        self.client = client
        self.snapshot = snapshot
        self.available = set(client.names) | set(server.names)  # what exists once entities are created
        self.entity_ops: list[Operation] = []
        self.entity_updates: list[Operation] = []
        self.field_ops: list[Operation] = []
        self.field_updates: list[Operation] = []
        self.relationship_ops: list[Operation] = []
        self.issues: list[SchemaIssue] = []
        self.blocked: set[tuple[str, str]] = set()  # (entity, field) not created or incompatible

    def plan(self) -> SchemaPlan:
        for se in sorted(self.server.entities, key=_intersect_last):
            self._entity(se)
        for sr in self.server.relationships:
            self._relationship(sr)
        if self.snapshot is not None:
            self._removals(self.snapshot)
        ops = self.entity_ops + self.entity_updates + self.field_ops + self.field_updates + self.relationship_ops
        return SchemaPlan(tuple(ops), tuple(self.issues))

    def _issue(self, severity: Severity, code: IssueCode, entity: str, message: str, field: str = "") -> None:
        self.issues.append(SchemaIssue(severity, code, entity, message, field))

    # -- entities and fields ------------------------------------------------------------------------
    def _entity(self, se: EntityMeta) -> None:
        name = se.logical_name
        ce = self.client.entity(name)
        old = self.snapshot.entity(name) if self.snapshot is not None else None
        if ce is None:
            keep = tuple(f for f in se.fields if _created_with_entity(se, f))
            self.entity_ops.append(CreateEntity(replace(se, fields=keep)))
        else:
            # A differently named key (Resco Cloud calls every key ``id``) is expected: the engine
            # matches keys by role (records.FieldPlan), so it is not reported.
            if old is not None:
                self._entity_labels(se, ce, old)
        for sf in se.fields:
            if (sf.type in _NOT_CREATED or sf.is_primary_id or sf.logical_name == se.primary_id
                    or sf.logical_name in SYSTEM_MANAGED):  # each organization maintains its own
                continue
            if ce is None and _created_with_entity(se, sf):
                continue
            self._field(se, ce, sf, old.field(sf.logical_name) if old is not None else None)

    def _entity_labels(self, se: EntityMeta, ce: EntityMeta, old: EntityMeta) -> None:
        changes = tuple(
            attr for attr in ("label", "collection_label")
            if getattr(se, attr) and getattr(se, attr) != getattr(old, attr) and getattr(se, attr) != getattr(ce, attr)
        )
        if changes:
            target = replace(ce, fields=(), **{a: getattr(se, a) for a in changes})
            self.entity_updates.append(UpdateEntity(target, changes))

    def _field(self, se: EntityMeta, ce: EntityMeta | None, sf: FieldMeta, old: FieldMeta | None) -> None:
        entity, name = se.logical_name, sf.logical_name
        targets = tuple(t for t in sf.targets if t in self.available)
        if sf.type.is_lookup and not targets:
            self.blocked.add((entity, name))
            self._issue(Severity.INFO, IssueCode.TARGET_NOT_SYNCED, entity,
                        f"{entity}.{name} is not replicated: it points to {', '.join(sf.targets) or 'nothing'}, "
                        "which is not synchronized. Select that table to include the column.", name)
            return
        cf = ce.field(name) if ce is not None else None
        if cf is None:
            self.field_ops.append(CreateField(entity, replace(sf, targets=targets)))
            return
        if not compatible(sf.type, cf.type):
            self.blocked.add((entity, name))
            if old is not None and old.type != sf.type:
                self._issue(Severity.ERROR, IssueCode.TYPE_CHANGED, entity,
                            f"The column {entity}.{name} changed type on the server from {old.type} to {sf.type}. "
                            f"Resco Cloud cannot change a column's type, so the client column stays {cf.type} "
                            "and is no longer synchronized. To sync it again, export its data if needed, delete "
                            "the column in Woodford and run Update Server (it is recreated as "
                            f"{sf.type}); or add a new column on the server instead of changing this one.", name)
            else:
                self._issue(Severity.ERROR, IssueCode.TYPE_CONFLICT, entity,
                            f"The client already has a column {entity}.{name} of type {cf.type}, but the server's "
                            f"is {sf.type}. It was left unchanged and is not synchronized. Rename or delete the "
                            "client column in Woodford, then run Update Server.", name)
            return
        desired, changes = self._desired(sf, cf, old, targets)
        if changes:
            self.field_updates.append(UpdateField(entity, desired, changes))

    def _desired(
        self, sf: FieldMeta, cf: FieldMeta, old: FieldMeta | None, targets: tuple[str, ...]
    ) -> tuple[FieldMeta, tuple[str, ...]]:
        """The client column as it should be: never narrower, with every server choice and target."""

        def server_changed(attr: str) -> bool:
            return old is not None and getattr(old, attr) != getattr(sf, attr)

        label = sf.label if sf.label and server_changed("label") else cf.label
        max_length = cf.max_length
        if sf.max_length is not None and cf.max_length is not None and sf.max_length > cf.max_length:
            max_length = sf.max_length
        options: dict[int, OptionMeta] = {o.value: o for o in cf.options}
        relabel = server_changed("options")
        for o in sf.options:
            if o.value not in options or (relabel and o.label):
                options[o.value] = o
        merged = tuple(sorted(options.values(), key=lambda o: o.value))
        all_targets = (*cf.targets, *(t for t in targets if t not in cf.targets))
        desired = replace(cf, label=label, max_length=max_length, options=merged, targets=all_targets)
        changes = tuple(a for a in ("label", "max_length", "options", "targets") if getattr(desired, a) != getattr(cf, a))
        return desired, changes

    # -- relationships ------------------------------------------------------------------------------
    def _relationship(self, sr: RelationshipMeta) -> None:
        cr = self.client.relationship(sr.schema_name)
        if cr is not None:
            if _shape(cr) != _shape(sr):
                self._issue(Severity.WARNING, IssueCode.RELATIONSHIP_CONFLICT, sr.referencing_entity or sr.entity1,
                            f"The client's relationship {sr.schema_name} links {_shape(cr)}, the server's "
                            f"{_shape(sr)}. It was left unchanged; check it in Woodford.")
            return
        ends = CreateRelationship(sr).entities
        if any(e not in self.available for e in ends if e != sr.intersect_entity):
            return  # read_schema never yields this; a hand-built schema may
        if sr.kind is RelationshipKind.ONE_TO_MANY:
            key = (sr.referencing_entity, sr.referencing_attribute)
            cf = self.client.field(*key)
            if key in self.blocked or (cf is not None and not cf.type.is_lookup):
                return  # the column's issue is reported already
            if cf is not None and sr.referenced_entity in cf.targets:
                return  # the client has it under its own name (a lookup column to the same table)
        self.relationship_ops.append(CreateRelationship(sr))

    # -- removals -----------------------------------------------------------------------------------
    def _removals(self, snapshot: Schema) -> None:
        """What the server lost since ``snapshot``. The client keeps it: reported unless the client
        schema shows it is gone there too (an entity the client schema was not read for counts as kept)."""
        catalog = self.server.catalog or frozenset(self.server.names)
        for old in snapshot.entities:
            name = old.logical_name
            ce = self.client.entity(name)
            se = self.server.entity(name)
            if se is None:
                if name not in catalog and (ce is not None or name in self.client.catalog or not self.client.catalog):
                    self._issue(Severity.WARNING, IssueCode.REMOVED_ENTITY, name,
                                f"The table {old.label or name} ({name}) was deleted on the server. Its Resco Cloud "
                                "copy and data were kept but are no longer synchronized. Export the data if you "
                                "need it, then delete the table in Woodford and deselect it.")
                continue
            for f in old.fields:
                if se.field(f.logical_name) is None and (ce is None or ce.field(f.logical_name) is not None):
                    self._issue(Severity.WARNING, IssueCode.REMOVED_FIELD, name,
                                f"The column {name}.{f.logical_name} was deleted on the server. The client column "
                                "and its values were kept but are no longer synchronized. Delete it in Woodford "
                                "if you do not need the data.", f.logical_name)
        for r in snapshot.relationships:
            rname = r.schema_name
            if self.server.relationship(rname) is not None:
                continue
            ends = [e for e in CreateRelationship(r).entities if e != r.intersect_entity]
            if self.client.relationship(rname) is None and any(self.client.has(e) for e in ends):
                continue  # the client schema was read for it, and it is gone there too
            if all(self.server.has(e) for e in ends):
                self._issue(Severity.WARNING, IssueCode.REMOVED_RELATIONSHIP, r.referencing_entity or r.entity1,
                            f"The relationship {rname} was deleted on the server. The client keeps it and its "
                            "links, which are no longer synchronized. Delete it in Woodford if it is not needed.")


def _shape(r: RelationshipMeta) -> str:
    if r.kind is RelationshipKind.ONE_TO_MANY:
        return f"{r.referencing_entity}.{r.referencing_attribute} -> {r.referenced_entity}"
    return f"{r.entity1} <-> {r.entity2} through {r.intersect_entity}"

