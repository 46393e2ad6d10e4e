"""Bring the local database to the current schema at start-up, after backing it up.

Alembic is configured in code: ``script_location`` comes from this file's folder, never the
working directory, so it works from a source checkout, a wheel and a PyInstaller bundle alike (the
bundle must ship ``store/migrations`` as data). Before touching an existing database that is not
at head, it is copied to ``backups_dir/crmsync-<UTC timestamp>.sqlite3`` with SQLite's backup API,
which copies a WAL database consistently even while another process uses it. The upgrade itself
runs in one transaction: it either completes or leaves the file as it was.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from crmsync_desktop.errors import MigrationError, StoreError
from crmsync_desktop.store.coltypes import utcnow
from crmsync_desktop.store.db import Database, make_engine, open_database, raise_if_corrupt

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "backup_database",
    "current_revision",
    "head_revision",
    "open_store",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(path: Path | None = None) -> Config:
    """An Alembic ``Config`` for the store's migrations; ``path`` sets ``sqlalchemy.url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if path is not None:
        config.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    return config


def head_revision() -> str:
    """The revision this version of crmsync needs."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the store ships at least one migration"
    return head


def current_revision(path: str | os.PathLike[str]) -> str | None:
    """The revision the database at ``path`` is at; None for a new or empty database."""
    db_path = Path(path)
    if not db_path.exists():
        return None
    engine = make_engine(db_path)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def backup_database(path: Path, backups_dir: Path) -> Path:
    """Copy the database consistently to ``backups_dir/crmsync-<UTC timestamp>.sqlite3``."""
    backups_dir.mkdir(parents=True, exist_ok=True)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    target = backups_dir / f"crmsync-{stamp}.sqlite3"
    n = 1
    while target.exists():
        target = backups_dir / f"crmsync-{stamp}-{n}.sqlite3"
        n += 1
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target


def upgrade(path: str | os.PathLike[str], backups_dir: str | os.PathLike[str]) -> Path | None:
    """Create or upgrade the database at ``path`` to head; return the backup made, if any.

    Raises:
        StoreCorruptError: the file is not a readable database; it was moved aside, not deleted.
        MigrationError: the backup or the upgrade failed, or the database comes from a newer
            crmsync; the message names the backup when one was made. The database is unchanged.
    """
    db_path = Path(path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    raise_if_corrupt(db_path)
    script = ScriptDirectory.from_config(alembic_config())
    head = head_revision()
    existed = db_path.exists()
    try:
        current = current_revision(db_path)
    except StoreError:
        raise
    except Exception as exc:
        raise MigrationError(
            f"Cannot read the schema version of the local database {db_path}: {exc}."
        ) from exc
    if current == head:
        return None
    if current is not None:
        try:
            script.get_revision(current)
        except CommandError as exc:
            raise MigrationError(
                f"The local database {db_path} was written by a newer version of crmsync "
                f"(schema {current}). Install that version again, or move the file away to start over."
            ) from exc

    backup: Path | None = None
    if existed:
        try:
            backup = backup_database(db_path, Path(backups_dir))
        except (OSError, sqlite3.Error) as exc:
            raise MigrationError(
                f"Could not back up the local database {db_path} to {backups_dir} before upgrading it "
                f"({exc}); nothing was changed. Free some disk space or fix the folder's permissions."
            ) from exc

    engine = make_engine(db_path, begin="BEGIN IMMEDIATE", foreign_keys=False)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise MigrationError(f"the upgrade left {len(broken)} rows pointing at missing rows")
    except Exception as exc:
        where = f" A copy from before the upgrade is at {backup}." if backup else ""
        raise MigrationError(
            f"Upgrading the local database {db_path} failed: {exc}. Nothing was changed.{where} "
            "Report this problem; meanwhile keep using the previous version of crmsync."
        ) from exc
    finally:
        engine.dispose()
    return backup


def open_store(path: str | os.PathLike[str], backups_dir: str | os.PathLike[str]) -> Database:
    """Start-up in one call: :func:`upgrade`, then :func:`~crmsync_desktop.store.db.open_database`."""
    upgrade(path, backups_dir)
    return open_database(path)
