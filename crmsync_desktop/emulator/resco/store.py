"""One emulated Resco Cloud organization = one SQLite file (schema, users, data, row versions).

A file per organization makes provisioning and deletion trivial and keeps organizations from
seeing each other's data, like separate tenants. Every write takes the next value of one
org-wide counter and stores it in ``versionnumber``: that is what ``GetMaxRowVersion`` reports and
what an incremental reader filters on (resco.md §7.4). Deletions leave a tombstone with their own
row version so "deleted since X" can be answered (an emulator design; see docs/emulator.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crmsync_desktop.emulator.resco.schema import (
    SYSTEM_FIELDS,
    TARGET_SUFFIX,
    EntityDef,
    FieldDef,
    SchemaError,
)

__all__ = ["ConcurrencyError", "NotFound", "RescoOrg"]


class NotFound(LookupError):
    """No such entity or record (HTTP 404)."""


class ConcurrencyError(Exception):
    """``If-Match`` did not match the record's current ETag (HTTP 412)."""


_meta = sa.MetaData()
_sys = sa.Table("_sys", _meta, sa.Column("key", sa.String, primary_key=True), sa.Column("value", sa.Text))
_entities = sa.Table(
    "_entities",
    _meta,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("definition", sa.Text, nullable=False),
)
_credentials = sa.Table(
    "_credentials",
    _meta,
    sa.Column("username", sa.String, primary_key=True),
    sa.Column("userid", sa.String(36), nullable=False),
    sa.Column("salt", sa.String),
    sa.Column("hash", sa.String),
)
_deleted = sa.Table(
    "_deleted",
    _meta,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("id", sa.String(36), nullable=False),
    sa.Column("versionnumber", sa.BigInteger, nullable=False, index=True),
    sa.Column("deletedon", sa.DateTime, nullable=False),
)


def _systemuser() -> EntityDef:
    entity = EntityDef.from_json(
        {
            "name": "systemuser",
            "display_name": "User",
            "primary_name": "fullname",
            "fields": [
                {"name": "firstname", "type": "string", "max_length": 64},
                {"name": "lastname", "type": "string", "max_length": 64},
                {"name": "emailaddress1", "type": "string", "max_length": 100},
                {"name": "domainname", "type": "string", "max_length": 256},
            ],
        }
    )
    entity.system = True
    return entity


def _team() -> EntityDef:
    entity = EntityDef.from_json(
        {
            "name": "team",
            "display_name": "Team",
            "primary_name": "name",
            "fields": [{"name": "name", "type": "string", "max_length": 160}],
        }
    )
    entity.system = True
    return entity


def _hash(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 20_000).hex()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


class RescoOrg:
    """Open with ``RescoOrg(path)``; make a new one with ``RescoOrg.provision(path, name, ...)``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise NotFound(f"No organization database at {self.path}")
        self._engine = sa.create_engine(f"sqlite:///{self.path}", connect_args={"check_same_thread": False})
        sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        self._lock = threading.RLock()
        self._login_cache: dict[str, str] = {}
        with self._engine.connect() as conn:
            settings = dict(conn.execute(sa.select(_sys.c.key, _sys.c.value)).all())
            definitions = conn.execute(sa.select(_entities.c.definition)).scalars().all()
        self.name: str = settings["name"]
        self.organization_id: str = settings["organization_id"]
        self.business_unit_id: str = settings["business_unit_id"]
        self._table_meta = sa.MetaData()
        self.entities: dict[str, EntityDef] = {}
        self.tables: dict[str, sa.Table] = {}
        for text in definitions:
            self._register(_entity_from_json(json.loads(text)))

    @classmethod
    def provision(
        cls, path: Path | str, name: str, *, username: str, password: str, fullname: str = "Administrator"
    ) -> RescoOrg:
        path = Path(path)
        if path.exists():
            raise FileExistsError(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(f"sqlite:///{path}")
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        _meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                _sys.insert(),
                [
                    {"key": "name", "value": name},
                    {"key": "organization_id", "value": str(uuid.uuid4())},
                    {"key": "business_unit_id", "value": str(uuid.uuid4())},
                    {"key": "rowversion", "value": "0"},
                    {"key": "created", "value": _now().isoformat()},
                ],
            )
        engine.dispose()
        org = cls(path)
        # Users and teams come with every organization; they own records (``ownerid``), so they
        # are created together (each one's system lookups point at both).
        org._create_entities([_systemuser(), _team()])
        org.add_user(username, password, fullname)
        return org

    def close(self) -> None:
        self._engine.dispose()

    # ---- users ---------------------------------------------------------------------------------

    def add_user(self, username: str, password: str, fullname: str, email: str | None = None) -> str:
        first, _, last = fullname.partition(" ")
        user_id = str(uuid.uuid4())
        salt = secrets.token_hex(8)
        with self._lock, self._engine.begin() as conn:
            self._insert(
                conn,
                "systemuser",
                {
                    "fullname": fullname,
                    "firstname": first,
                    "lastname": last or None,
                    "emailaddress1": email,
                    "domainname": username,
                },
                user_id,
                user_id,
            )
            conn.execute(
                _credentials.insert().values(
                    username=username.lower(), userid=user_id, salt=salt, hash=_hash(password, salt)
                )
            )
        return user_id

    def check_password(self, username: str, password: str) -> str | None:
        """The user id for valid credentials, else ``None`` (results cached: Basic auth hits every request)."""
        cache_key = hashlib.sha256(f"{username.lower()}\0{password}".encode()).hexdigest()
        if cache_key in self._login_cache:
            return self._login_cache[cache_key]
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(_credentials).where(_credentials.c.username == username.lower())
            ).first()
        if row is None or not secrets.compare_digest(row.hash, _hash(password, row.salt)):
            return None
        self._login_cache[cache_key] = row.userid
        return row.userid

    # ---- metadata ------------------------------------------------------------------------------

    def _register(self, entity: EntityDef) -> sa.Table:
        if entity.name in self._table_meta.tables:
            self._table_meta.remove(self._table_meta.tables[entity.name])
        table = entity.table(self._table_meta)
        self.entities[entity.name] = entity
        self.tables[entity.name] = table
        return table

    def entity(self, name: str) -> EntityDef:
        try:
            return self.entities[name.lower()]
        except KeyError:
            raise NotFound(f"Entity '{name}' does not exist.") from None

    def create_entity(self, entity: EntityDef) -> EntityDef:
        self._create_entities([entity])
        return entity

    def _create_entities(self, entities: list[EntityDef]) -> None:
        """Create entities whose lookups may point at each other (checked as one set)."""
        with self._lock:
            pending = {e.name for e in entities}
            for entity in entities:
                if entity.name in self.entities:
                    raise SchemaError(f"Entity '{entity.name}' already exists.")
                self._check_targets(entity.fields.values(), pending=pending)
            for entity in entities:
                table = self._register(entity)
                with self._engine.begin() as conn:
                    table.create(conn)
                    conn.execute(
                        _entities.insert().values(name=entity.name, definition=json.dumps(entity.to_json()))
                    )

    def add_field(self, entity_name: str, new: FieldDef) -> FieldDef:
        with self._lock:
            entity = self.entity(entity_name)
            if new.name in entity.fields:
                raise SchemaError(f"Field '{new.name}' already exists on '{entity.name}'.")
            self._check_targets([new], pending=set())
            with self._engine.begin() as conn:
                for column in new.columns():
                    type_sql = column.type.compile(dialect=self._engine.dialect)
                    conn.exec_driver_sql(f'ALTER TABLE "{entity.name}" ADD COLUMN "{column.name}" {type_sql}')
                entity.fields[new.name] = new
                conn.execute(
                    _entities.update()
                    .where(_entities.c.name == entity.name)
                    .values(definition=json.dumps(entity.to_json()))
                )
            self._register(entity)
        return new

    def update_field(self, entity_name: str, field_name: str, changes: Mapping[str, Any]) -> FieldDef:
        """Change a field's label, widen its length, add picklist options or lookup targets, set "required".

        A field's name and type never change; a length never narrows; existing options and targets
        are kept (their labels may change); system fields do not change. Anything else -> ``SchemaError``.
        """
        allowed = {"display_name", "max_length", "options", "targets", "required"}
        unknown = set(changes) - allowed - {"name", "type"}
        if unknown:
            raise SchemaError(f"Cannot change {', '.join(sorted(unknown))} of a field.")
        with self._lock:
            entity = self.entity(entity_name)
            if field_name not in entity.fields:
                raise NotFound(f"The entity '{entity.name}' has no field '{field_name}'.")
            current = entity.fields[field_name]
            for fixed in ("name", "type"):
                if fixed in changes and str(changes[fixed]).lower() != getattr(current, fixed):
                    raise SchemaError(f"The {fixed} of field '{current.name}' cannot be changed.")
            if current.system:
                raise SchemaError(f"System field '{current.name}' cannot be changed.")
            updated = FieldDef(**asdict(current))
            if "required" in changes:
                updated.required = bool(changes["required"])
            if "display_name" in changes:
                updated.display_name = str(changes["display_name"] or "") or current.name
            if "max_length" in changes and changes["max_length"] is not None:
                if current.type not in ("string", "memo"):
                    raise SchemaError(f"Field '{current.name}' ({current.type}) has no length.")
                length = int(changes["max_length"])
                if current.max_length and length < current.max_length:
                    raise SchemaError(f"The length of '{current.name}' cannot shrink below {current.max_length}.")
                updated.max_length = length
            if "options" in changes:
                if current.type != "picklist":
                    raise SchemaError(f"Field '{current.name}' is not a picklist.")
                merged = {o["value"]: o for o in current.options}
                merged.update({o["value"]: o for o in FieldDef(current.name, "picklist",
                                                                 options=list(changes["options"] or [])).options})
                updated.options = [merged[v] for v in sorted(merged)]
            if "targets" in changes:
                if current.type != "lookup":
                    raise SchemaError(f"Field '{current.name}' is not a lookup.")
                added = [str(t).lower() for t in changes["targets"] or [] if str(t).lower() not in current.targets]
                probe = FieldDef(current.name, "lookup", targets=added) if added else None
                if probe is not None:
                    self._check_targets([probe], pending=set())
                updated.targets = [*current.targets, *added]
            with self._engine.begin() as conn:
                entity.fields[current.name] = updated
                conn.execute(
                    _entities.update()
                    .where(_entities.c.name == entity.name)
                    .values(definition=json.dumps(entity.to_json()))
                )
            self._register(entity)
        return updated

    def update_entity(self, name: str, changes: Mapping[str, Any]) -> EntityDef:
        """Change an entity's display name (nothing else of an entity changes)."""
        unknown = set(changes) - {"display_name", "name"}
        if unknown:
            raise SchemaError(f"Cannot change {', '.join(sorted(unknown))} of an entity.")
        with self._lock:
            entity = self.entity(name)
            if "name" in changes and str(changes["name"]).lower() != entity.name:
                raise SchemaError(f"The name of entity '{entity.name}' cannot be changed.")
            if changes.get("display_name"):
                entity.display_name = str(changes["display_name"])
            with self._engine.begin() as conn:
                conn.execute(
                    _entities.update()
                    .where(_entities.c.name == entity.name)
                    .values(definition=json.dumps(entity.to_json()))
                )
        return entity

    def delete_field(self, entity_name: str, field_name: str) -> None:
        with self._lock:
            entity = self.entity(entity_name)
            found = entity.field(field_name)
            if found.system or field_name == entity.primary_name:
                raise SchemaError(f"Field '{field_name}' cannot be deleted.")
            with self._engine.begin() as conn:
                for column in found.columns():
                    conn.exec_driver_sql(f'ALTER TABLE "{entity.name}" DROP COLUMN "{column.name}"')
                del entity.fields[field_name]
                conn.execute(
                    _entities.update()
                    .where(_entities.c.name == entity.name)
                    .values(definition=json.dumps(entity.to_json()))
                )
            self._register(entity)

    def delete_entity(self, name: str) -> None:
        with self._lock:
            entity = self.entity(name)
            if entity.system:
                raise SchemaError(f"System entity '{name}' cannot be deleted.")
            with self._engine.begin() as conn:
                self.tables[entity.name].drop(conn)
                conn.execute(_entities.delete().where(_entities.c.name == entity.name))
            self._table_meta.remove(self.tables.pop(entity.name))
            del self.entities[entity.name]

    def _check_targets(self, fields: Iterable[FieldDef], pending: set[str]) -> None:
        for f in fields:
            for target in f.targets:
                if target not in self.entities and target not in pending:
                    raise SchemaError(f"Lookup '{f.name}' targets unknown entity '{target}'.")

    # ---- row versions --------------------------------------------------------------------------

    def max_row_version(self, entity: str | None = None) -> int:
        with self._engine.connect() as conn:
            if entity is None:
                return int(
                    conn.execute(sa.select(_sys.c.value).where(_sys.c.key == "rowversion")).scalar_one()
                )
            table = self.tables[self.entity(entity).name]
            live = conn.execute(sa.select(sa.func.max(table.c.versionnumber))).scalar() or 0
            gone = (
                conn.execute(
                    sa.select(sa.func.max(_deleted.c.versionnumber)).where(_deleted.c.entity == table.name)
                ).scalar()
                or 0
            )
            return int(max(live, gone))

    def _next_version(self, conn: sa.Connection) -> int:
        value = conn.execute(
            _sys.update()
            .where(_sys.c.key == "rowversion")
            .values(value=sa.cast(sa.cast(_sys.c.value, sa.BigInteger) + 1, sa.Text))
            .returning(_sys.c.value)
        ).scalar_one()
        return int(value)

    def deleted_since(self, entity: str | None, since: int, until: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(_deleted).where(_deleted.c.versionnumber > since).order_by(_deleted.c.versionnumber)
        if until is not None:
            query = query.where(_deleted.c.versionnumber <= until)
        if entity is not None:
            query = query.where(_deleted.c.entity == self.entity(entity).name)
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # ---- records -------------------------------------------------------------------------------

    def _values(self, entity: EntityDef, values: Mapping[str, Any]) -> dict[str, Any]:
        """Convert caller values (lookups: a GUID or ``{"id", "logicalname"}``) to column values."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            f = entity.field(name.lower())
            if f.name in SYSTEM_FIELDS and f.name != "ownerid":
                raise SchemaError(f"The system field '{f.name}' cannot be set.")
            if f.type == "lookup":
                target = None
                if isinstance(value, dict):
                    target = str(value.get("logicalname") or value.get("target") or "").lower() or None
                    value = value.get("id")
                if value is not None:
                    target = target or f.targets[0]
                    if target not in f.targets:
                        raise SchemaError(f"'{target}' is not a valid target of lookup '{f.name}'.")
                out[f.name + TARGET_SUFFIX] = target if value is not None else None
            out[f.name] = f.to_db(value)
        return out

    def _checked(self, entity: EntityDef, record_id: str, values: Mapping[str, Any]) -> _Checked:
        """One ``write_many`` item validated and converted to column values, or why it is refused."""
        try:
            return _Checked(str(uuid.UUID(str(record_id))), self._values(entity, values))
        except (SchemaError, ValueError) as exc:
            return _Checked(None, {}, str(exc))

    def _insert(
        self,
        conn: sa.Connection,
        entity_name: str,
        values: Mapping[str, Any],
        user_id: str,
        record_id: str | None = None,
    ) -> dict[str, Any]:
        entity = self.entity(entity_name)
        row = self._values(entity, values)
        key = str(uuid.UUID(record_id)) if record_id else str(uuid.uuid4())
        row = _created_row(row, key, user_id, _now(), self._next_version(conn))
        try:
            conn.execute(self.tables[entity.name].insert().values(**row))
        except sa.exc.IntegrityError as exc:
            raise SchemaError(f"A record with id '{row['id']}' already exists.") from exc
        return row

    def create(
        self, entity: str, values: Mapping[str, Any], user_id: str, record_id: str | None = None
    ) -> dict[str, Any]:
        with self._lock, self._engine.begin() as conn:
            row = self._insert(conn, entity, values, user_id, record_id)
        return self.get(entity, row["id"])

    def create_many(self, entity: str, rows: Iterable[Mapping[str, Any]], user_id: str) -> int:
        """Bulk insert in one transaction (tests and seeding); each row still gets its own row version."""
        count = 0
        with self._lock, self._engine.begin() as conn:
            for values in rows:
                self._insert(conn, entity, values, user_id)
                count += 1
        return count

    def write_many(
        self,
        entity: str,
        items: Iterable[tuple[str, Mapping[str, Any]]],
        user_id: str,
        *,
        create: bool,
    ) -> list[tuple[int, str | None]]:
        """``UpdateMultiple`` (``create``: also create missing records with the given id), one transaction.

        Each item is validated before anything of it is written, so a bad record only gets its own
        ``(400, message)`` and the others land; ``(404, …)`` when missing and not ``create``;
        ``(200, None)`` updated, ``(201, None)`` created. Every written item takes the next row
        version in request order, as if the items were written one by one.

        Set-based, because this is the emulator's hot path (a full sync writes every record through
        it, and row-by-row SQLAlchemy statements cost ~0.5 ms of CPU per record): one ``IN`` query
        finds the existing records, one counter update reserves the batch's row versions, and one
        ``executemany`` per set of columns writes the rows (``_plan_writes``, ``_final_rows``).
        """
        definition = self.entity(entity)
        table = self.tables[definition.name]
        with self._lock, self._engine.begin() as conn:
            checked = [self._checked(definition, record_id, values) for record_id, values in items]
            existing = self._existing_ids(conn, table, [c.key for c in checked if c.key is not None])
            out, writes = _plan_writes(entity, checked, existing, create)
            first_version = self._reserve_versions(conn, len(writes))
            inserts, updates = _final_rows(writes, user_id, _now(), first_version)
            for rows in _by_columns(inserts):
                conn.execute(table.insert(), rows)
            for rows in _by_columns(updates):
                conn.execute(table.update().where(table.c.id == sa.bindparam(_KEY_PARAM)), rows)
        return out

    def _existing_ids(self, conn: sa.Connection, table: sa.Table, keys: list[str]) -> set[str]:
        """Which of ``keys`` are stored (one query per 500, well under SQLite's bound-parameter limit)."""
        found: set[str] = set()
        unique = list(dict.fromkeys(keys))
        for k in range(0, len(unique), 500):
            found.update(conn.execute(sa.select(table.c.id).where(table.c.id.in_(unique[k : k + 500]))).scalars())
        return found

    def _reserve_versions(self, conn: sa.Connection, count: int) -> int:
        """Take ``count`` row versions in one counter update; returns the first (unused when ``count`` is 0).

        Same numbers as ``count`` calls of ``_next_version`` in the same transaction, under the org lock.
        """
        if count == 0:
            return 0
        value = conn.execute(
            _sys.update()
            .where(_sys.c.key == "rowversion")
            .values(value=sa.cast(sa.cast(_sys.c.value, sa.BigInteger) + count, sa.Text))
            .returning(_sys.c.value)
        ).scalar_one()
        return int(value) - count + 1

    def delete_many(self, entity: str, ids: Iterable[str]) -> list[tuple[int, str | None]]:
        """``DeleteMultiple`` in one transaction: ``(204, None)`` deleted, ``(404, …)`` missing."""
        definition = self.entity(entity)
        table = self.tables[definition.name]
        out: list[tuple[int, str | None]] = []
        with self._lock, self._engine.begin() as conn:
            for record_id in ids:
                try:
                    key = str(uuid.UUID(str(record_id)))
                except ValueError:
                    out.append((400, f"'{record_id}' is not a valid record id"))
                    continue
                if conn.execute(table.delete().where(table.c.id == key)).rowcount == 0:
                    out.append((404, f"{entity} With Id = {key} Does Not Exist"))
                    continue
                conn.execute(
                    _deleted.insert().values(
                        entity=definition.name, id=key, versionnumber=self._next_version(conn), deletedon=_now()
                    )
                )
                out.append((204, None))
        return out

    def get(self, entity: str, record_id: str) -> dict[str, Any]:
        table = self.tables[self.entity(entity).name]
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == _guid(record_id))).first()
        if row is None:
            raise NotFound(f"{entity} With Id = {record_id} Does Not Exist")
        return dict(row._mapping)

    def update(
        self,
        entity: str,
        record_id: str,
        values: Mapping[str, Any],
        user_id: str,
        if_match: int | None = None,
    ) -> dict[str, Any]:
        definition = self.entity(entity)
        table = self.tables[definition.name]
        row = self._values(definition, values)
        with self._lock, self._engine.begin() as conn:
            current = conn.execute(
                sa.select(table.c.versionnumber).where(table.c.id == _guid(record_id))
            ).scalar()
            if current is None:
                raise NotFound(f"{entity} With Id = {record_id} Does Not Exist")
            if if_match is not None and if_match != current:
                raise ConcurrencyError(record_id)
            row.update(
                {
                    "modifiedon": _now(),
                    "modifiedby": user_id,
                    "modifiedby" + TARGET_SUFFIX: "systemuser",
                    "versionnumber": self._next_version(conn),
                }
            )
            conn.execute(table.update().where(table.c.id == _guid(record_id)).values(**row))
        return self.get(entity, record_id)

    def delete(self, entity: str, record_id: str, if_match: int | None = None) -> None:
        definition = self.entity(entity)
        table = self.tables[definition.name]
        with self._lock, self._engine.begin() as conn:
            current = conn.execute(
                sa.select(table.c.versionnumber).where(table.c.id == _guid(record_id))
            ).scalar()
            if current is None:
                raise NotFound(f"{entity} With Id = {record_id} Does Not Exist")
            if if_match is not None and if_match != current:
                raise ConcurrencyError(record_id)
            conn.execute(table.delete().where(table.c.id == _guid(record_id)))
            conn.execute(
                _deleted.insert().values(
                    entity=definition.name,
                    id=_guid(record_id),
                    versionnumber=self._next_version(conn),
                    deletedon=_now(),
                )
            )

    def execute(self, statement: sa.Select[Any]) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(statement)]

    def scalar(self, statement: sa.Select[Any]) -> Any:
        with self._engine.connect() as conn:
            return conn.execute(statement).scalar()


# ---- write_many, set-based ---------------------------------------------------------------------

_KEY_PARAM = "_key"  # the WHERE parameter of the executemany UPDATE (not a column name, which SET owns)


@dataclass(slots=True)
class _Checked:
    """A ``write_many`` item after validation: its normalised id and column values, or ``error``."""

    key: str | None
    row: dict[str, Any]
    error: str | None = None


@dataclass(slots=True)
class _Write:
    """An item that will be written: ``insert`` for a new record, else an update of a stored one."""

    key: str
    row: dict[str, Any]
    insert: bool


def _plan_writes(
    entity: str, checked: list[_Checked], existing: set[str], create: bool
) -> tuple[list[tuple[int, str | None]], list[_Write]]:
    """Per-item results, and the items to write in request order.

    An id repeated in one request is created by its first occurrence and updated by the others,
    exactly as writing the items one by one would do.
    """
    present = set(existing)
    results: list[tuple[int, str | None]] = []
    writes: list[_Write] = []
    for item in checked:
        if item.key is None:
            results.append((400, item.error))
        elif item.key in present:
            writes.append(_Write(item.key, item.row, insert=False))
            results.append((200, None))
        elif create:
            present.add(item.key)
            writes.append(_Write(item.key, item.row, insert=True))
            results.append((201, None))
        else:
            results.append((404, f"{entity} With Id = {item.key} Does Not Exist"))
    return results, writes


def _final_rows(
    writes: list[_Write], user_id: str, now: dt.datetime, first_version: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows to INSERT and the rows to UPDATE (by ``_KEY_PARAM``), one per record.

    Row versions go to the writes in request order. Later writes of the same id are folded into
    its first one (later values win, the last version stays), which leaves the same stored row as
    writing them one after the other, without ordering statements across column sets.
    """
    rows: dict[str, dict[str, Any]] = {}
    inserted: list[str] = []
    for version, write in enumerate(writes, start=first_version):
        if write.insert:
            rows[write.key] = _created_row(write.row, write.key, user_id, now, version)
            inserted.append(write.key)
            continue
        row = _modified_row(write.row, user_id, now, version)
        if write.key in rows:
            rows[write.key].update(row)
        else:
            rows[write.key] = row
    new = set(inserted)
    updates = [{**row, _KEY_PARAM: key} for key, row in rows.items() if key not in new]
    return [rows[key] for key in inserted], updates


def _by_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their set of columns: ``executemany`` needs the same parameters in every row."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    return list(groups.values())


def _created_row(row: dict[str, Any], key: str, user_id: str, now: dt.datetime, version: int) -> dict[str, Any]:
    """A new record's column values plus what the service maintains; the caller is the default owner."""
    row.update(
        {
            "id": key,
            "createdon": now,
            "modifiedon": now,
            "createdby": user_id,
            "createdby" + TARGET_SUFFIX: "systemuser",
            "modifiedby": user_id,
            "modifiedby" + TARGET_SUFFIX: "systemuser",
            "versionnumber": version,
        }
    )
    if row.get("ownerid") is None:
        row["ownerid"], row["ownerid" + TARGET_SUFFIX] = user_id, "systemuser"
    return row


def _modified_row(row: dict[str, Any], user_id: str, now: dt.datetime, version: int) -> dict[str, Any]:
    """An update's column values plus the modification columns the service maintains."""
    row.update(
        {
            "modifiedon": now,
            "modifiedby": user_id,
            "modifiedby" + TARGET_SUFFIX: "systemuser",
            "versionnumber": version,
        }
    )
    return row


def _guid(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NotFound(f"'{value}' is not a valid record id") from None


def _entity_from_json(data: dict[str, Any]) -> EntityDef:
    entity = EntityDef(
        name=data["name"],
        display_name=data["display_name"],
        primary_name=data.get("primary_name"),
        system=bool(data.get("system")),
    )
    for raw in data["fields"]:
        f = FieldDef.from_json(raw)
        f.system = bool(raw.get("system"))
        entity.fields[f.name] = f
    return entity


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
