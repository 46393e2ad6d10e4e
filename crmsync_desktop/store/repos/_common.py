"""Helpers shared by the repository modules: profile look-up by name and batching."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from crmsync_desktop.errors import ProfileNotFoundError
from crmsync_desktop.store.models import ConnectionProfileModel

T = TypeVar("T")

# Ids per "IN (...)" list: far below SQLite's bound-parameter limit, large enough to be fast.
IN_CHUNK = 500
# Rows per executemany batch: keeps memory flat when millions of rows are written at once.
WRITE_CHUNK = 10_000


def profile_not_found(name: str) -> ProfileNotFoundError:
    return ProfileNotFoundError(
        f"There is no connection profile named {name!r}. Pick one of the existing profiles, "
        "or create or import it first.",
        profile=name,
    )


def profile_id(session: Session, name: str) -> int:
    """The id of the profile named ``name``; raises ``ProfileNotFoundError``."""
    found = session.execute(
        select(ConnectionProfileModel.id).where(ConnectionProfileModel.name == name)
    ).scalar_one_or_none()
    if found is None:
        raise profile_not_found(name)
    return found


def chunked(items: Iterable[T], size: int) -> Iterator[Sequence[T]]:
    """Yield lists of at most ``size`` items."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def bind_processor(session: Session, table: Table, column: str) -> Callable[[Any], Any]:
    """How SQLAlchemy turns a Python value of ``table.column`` into what SQLite stores (UTC text, JSON...).

    For :func:`upsert_many`, whose rows skip SQLAlchemy's per-row parameter processing.
    """
    dialect = session.get_bind().dialect
    process = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


_UPSERT_SQL: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = {}


def upsert_many(session: Session, table: Table, columns: Sequence[str], key: Sequence[str],
                rows: Iterable[tuple[Any, ...]]) -> None:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` of every non-key column, as one ``executemany`` per batch.

    The same statement SQLAlchemy Core compiles for ``insert().on_conflict_do_update()``, without
    its per-row work (parameter dicts, processors): the hot path of every download slice. ``rows``
    hold values already in stored form (see :func:`bind_processor`), in ``columns`` order.
    """
    cache_key = (table.name, tuple(columns), tuple(key))
    sql = _UPSERT_SQL.get(cache_key)
    if sql is None:
        quote = session.get_bind().dialect.identifier_preparer.quote
        updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in key)
        sql = _UPSERT_SQL[cache_key] = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(quote(c) for c in key)}) DO UPDATE SET {updates}"
        )
    connection = session.connection()
    for batch in chunked(rows, WRITE_CHUNK):
        connection.exec_driver_sql(sql, list(batch))
