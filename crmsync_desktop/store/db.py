"""Open the local SQLite store and run work on it off the event loop.

Why this shape (stack-recipes §8): the sync engine + plain threads stalls the qasync loop far less
than aiosqlite, and a single dedicated writer thread serializes every write in the order it was
asked for, so no two writes in this process ever race for SQLite's lock. Readers get a small pool
of their own: in WAL mode they never block the writer nor each other.

Every connection gets ``journal_mode=WAL``, ``synchronous=NORMAL`` (a commit survives a crash of
the app; only a power cut may lose the last few), ``foreign_keys=ON`` and ``busy_timeout=5000``
(another process, such as the CLI, holding the lock makes us wait, not fail). Write transactions
start with ``BEGIN IMMEDIATE`` so they take the write lock up front and wait for it through
``busy_timeout`` instead of failing half-way when a read turns into a write.

A file SQLite cannot read is moved aside (``*.corrupt-<timestamp>``, with its ``-wal``/``-shm``)
and never deleted: the offline transaction queue in it may be the only copy of a user's changes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any, Self, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from crmsync_desktop.errors import StoreCorruptError, StoreError
from crmsync_desktop.store.coltypes import utcnow

__all__ = ["Database", "make_engine", "open_database", "quarantine_corrupt_file", "raise_if_corrupt"]

T = TypeVar("T")

DEFAULT_READERS = 2
BUSY_TIMEOUT_MS = 5000
_SQLITE_HEADER = b"SQLite format 3\x00"
_CORRUPTION_CODES = {sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT}


def make_engine(path: Path, *, begin: str = "BEGIN", pool_size: int = 1, foreign_keys: bool = True) -> Engine:
    """A SQLAlchemy engine on ``path`` with the store's pragmas; transactions start with ``begin``.

    Migrations pass ``foreign_keys=False``: Alembic's batch mode rebuilds a table by dropping it,
    which would otherwise cascade deletes into its children (the pragma cannot change inside a
    transaction, so it is set per connection here).
    """
    engine = create_engine(f"sqlite:///{path}", pool_size=pool_size, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start (not the driver).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL").fetchall()  # sticks to the file once set
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _is_corruption(exc: BaseException) -> bool:
    """Whether ``exc`` means "this file is not a (sound) SQLite database", not e.g. "locked"."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if not isinstance(orig, sqlite3.DatabaseError):
        return False
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _CORRUPTION_CODES:
        return True
    text = str(orig).lower()
    return "file is not a database" in text or "malformed" in text


def quarantine_corrupt_file(path: Path) -> Path:
    """Move ``path`` (and its ``-wal``/``-shm`` companions) aside; return the new main file path.

    The companions keep their suffix after the new name, so SQLite still pairs them when someone
    opens the moved file to recover what it can.
    """
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{target}{suffix}"))
    return target


def _corrupt_error(path: Path, moved_to: Path) -> StoreCorruptError:
    return StoreCorruptError(
        f"The local database {path} is damaged and could not be opened. It was moved aside to "
        f"{moved_to} and kept, because it may hold offline transactions that were never delivered. "
        "Start crmsync again to continue with a new, empty database, then import or re-enter your "
        "connection profiles; keep the moved file if pending changes need to be recovered."
    )


def raise_if_corrupt(path: Path) -> None:
    """Check that ``path`` is a readable SQLite database; if not, move it aside and raise.

    The check never writes: the header is read as bytes, then the schema through a read-only
    connection, because a read-write connection to a damaged file would checkpoint its WAL into
    it and delete the WAL on close, destroying what could still be recovered.

    Raises:
        StoreCorruptError: the file was moved aside; the message names where to.
        StoreError: SQLite failed for another reason (permissions, disk, a lock held too long).
    """
    if not path.exists():
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(
            f"Cannot read the local database {path}: {exc}. Check the file's permissions."
        ) from exc
    if header and header != _SQLITE_HEADER:
        raise _corrupt_error(path, quarantine_corrupt_file(path))
    uri = f"{path.resolve().as_uri()}?mode=ro"
    failure: sqlite3.DatabaseError | None = None
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot open the local database {path}: {exc}.") from exc
    with closing(connection) as conn:
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            failure = exc
    if failure is None:
        return
    if _is_corruption(failure):  # moved only once the read-only connection is closed
        raise _corrupt_error(path, quarantine_corrupt_file(path)) from failure
    raise StoreError(f"Cannot open the local database {path}: {failure}.") from failure


class Database:
    """The local store: one writer thread, a few reader threads, sessions handed to callables.

    ``fn`` passed to :meth:`run`/:meth:`read` receives a ``Session`` and must return plain data
    (domain values, dataclasses, ints, strings), never ORM objects: the session is gone once ``fn``
    returns. Cancelling the awaiting task does not stop a write already started; it still commits.
    """

    def __init__(self, path: Path, *, readers: int = DEFAULT_READERS) -> None:
        self.path = path
        self._write_engine = make_engine(path, begin="BEGIN IMMEDIATE", pool_size=1)
        self._read_engine = make_engine(path, begin="BEGIN", pool_size=readers)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._read_engine)
        self._writer_ident: int | None = None
        self._writer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="crmsync-db-writer", initializer=self._mark_writer
        )
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="crmsync-db-reader")
        self._closed = False

    def _mark_writer(self) -> None:
        self._writer_ident = threading.get_ident()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The local database {self.path} is closed.")

    def _write(self, fn: Callable[[Session], T]) -> T:
        try:
            with self._write_sessions() as session, session.begin():
                result = fn(session)
        except sa_exc.DBAPIError as exc:
            raise self._translate(exc) from exc
        return _plain(result)

    def _read(self, fn: Callable[[Session], T]) -> T:
        try:
            with self._read_sessions() as session:
                return _plain(fn(session))
        except sa_exc.DBAPIError as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: sa_exc.DBAPIError) -> StoreError:
        """SQLite failures become domain errors here, once, with what to do about them."""
        if _is_corruption(exc):
            return StoreCorruptError(
                f"The local database {self.path} is damaged ({exc.orig}). Close crmsync, keep a copy "
                "of that file and restore the latest copy from the backups folder."
            )
        text = str(exc.orig).lower()
        if "locked" in text or "busy" in text:
            return StoreError(
                f"The local database {self.path} is in use by another crmsync process. "
                "Wait for it to finish, or close it, then try again."
            )
        if "disk" in text and "full" in text:
            return StoreError(f"The disk holding {self.path} is full. Free some space, then try again.")
        return StoreError(f"The local database {self.path} failed: {exc.orig}.")

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in the writer thread inside one transaction; committed on return."""
        self._check_open()
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._write, fn)

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in a reader thread on one consistent snapshot; nothing is written."""
        self._check_open()
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, fn)

    def run_sync(self, fn: Callable[[Session], T]) -> T:
        """Blocking :meth:`run` for the CLI and start-up code (still serialized by the writer)."""
        self._check_open()
        if threading.get_ident() == self._writer_ident:
            raise RuntimeError("run_sync() called from inside a write: it would wait for itself")
        return self._writer.submit(self._write, fn).result()

    def read_sync(self, fn: Callable[[Session], T]) -> T:
        """Blocking :meth:`read`."""
        self._check_open()
        return self._read(fn)

    def close(self) -> None:
        """Finish queued work, fold the WAL back into the file and release every connection."""
        if self._closed:
            return
        self._closed = True
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        try:
            with self._write_engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except sa_exc.DBAPIError:
            pass  # another process holds the database; the WAL is folded in by a later checkpoint
        self._write_engine.dispose()
        self._read_engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _plain(result: T) -> T:
    from crmsync_desktop.store.models import Base

    if isinstance(result, Base):
        raise TypeError(
            f"a store callable returned an ORM object ({type(result).__name__}); return plain data"
        )
    return result


def open_database(path: str | os.PathLike[str], *, readers: int = DEFAULT_READERS) -> Database:
    """Open (creating if needed) the SQLite store at ``path``; run ``migrate.upgrade`` before this.

    Raises:
        StoreCorruptError: the file is not a readable SQLite database; it was moved aside.
        StoreError: the file cannot be opened for another reason.
    """
    db_path = Path(path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    raise_if_corrupt(db_path)
    database = Database(db_path, readers=readers)
    try:
        database.read_sync(
            lambda s: s.connection().exec_driver_sql("SELECT count(*) FROM sqlite_master").all()
        )
    except (sa_exc.DBAPIError, sqlite3.DatabaseError) as exc:
        database.close()
        if _is_corruption(exc):
            raise _corrupt_error(db_path, quarantine_corrupt_file(db_path)) from exc
        raise StoreError(f"Cannot open the local database {db_path}: {exc}.") from exc
    return database
