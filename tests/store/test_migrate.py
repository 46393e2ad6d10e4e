"""Migrations: from nothing to head, backups before upgrading, failures, models == migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table

from crmsync_desktop.errors import MigrationError
from crmsync_desktop.store import migrate
from crmsync_desktop.store.db import make_engine
from crmsync_desktop.store.models import Base


def _diff(path: Path, metadata: MetaData) -> list[object]:
    engine = make_engine(path)
    try:
        with engine.connect() as conn:
            return list(
                compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
            )
    finally:
        engine.dispose()


def _tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.fixture
def in_other_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Alembic must not depend on the working directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    yield


@pytest.mark.usefixtures("in_other_dir")
def test_a_new_database_is_created_at_head_without_a_backup(db_path: Path, backups_dir: Path) -> None:
    assert migrate.upgrade(db_path, backups_dir) is None
    assert migrate.current_revision(db_path) == migrate.head_revision() == "0005"
    assert not backups_dir.exists() or not any(backups_dir.iterdir())


def test_migrations_create_exactly_the_models_schema(db_path: Path, backups_dir: Path) -> None:
    migrate.upgrade(db_path, backups_dir)
    assert _diff(db_path, Base.metadata) == []


def test_the_schema_comparison_does_notice_differences(db_path: Path, backups_dir: Path) -> None:
    """Guards the test above against comparing nothing."""
    migrate.upgrade(db_path, backups_dir)
    changed = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    Table("extra", changed, Column("id", Integer, primary_key=True))
    changed.tables["sync_state"].append_column(Column("extra_col", Integer))
    kinds = {entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in _diff(db_path, changed)}
    assert {"add_table", "add_column"} <= kinds


def test_upgrading_is_a_no_op_at_head(db_path: Path, backups_dir: Path) -> None:
    migrate.upgrade(db_path, backups_dir)
    assert migrate.upgrade(db_path, backups_dir) is None
    assert not backups_dir.exists() or not any(backups_dir.iterdir())


def test_an_older_database_is_backed_up_consistently_before_upgrading(
    db_path: Path, backups_dir: Path
) -> None:
    """An existing database below head (here: at base, in WAL mode with data only in the WAL)."""
    db_path.parent.mkdir(parents=True)
    writer = sqlite3.connect(db_path)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")  # keep the rows in the -wal file only
        writer.execute("CREATE TABLE user_notes (note TEXT)")
        writer.executemany("INSERT INTO user_notes VALUES (?)", [(f"note {i}",) for i in range(100)])
        writer.commit()
        assert Path(f"{db_path}-wal").stat().st_size > 0

        backup = migrate.upgrade(db_path, backups_dir)
    finally:
        writer.close()

    assert backup is not None and backup.parent == backups_dir
    assert backup.name.startswith("crmsync-") and backup.name.endswith("Z.sqlite3")
    with closing(sqlite3.connect(backup)) as copy:
        assert copy.execute("SELECT count(*) FROM user_notes").fetchone() == (100,)
        assert "alembic_version" not in {r[0] for r in copy.execute("SELECT name FROM sqlite_master")}
    assert migrate.current_revision(db_path) == migrate.head_revision()
    assert "user_notes" in _tables(db_path)


def test_two_backups_in_the_same_second_do_not_overwrite_each_other(db_path: Path, backups_dir: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db_path)) as conn:
        conn.execute("CREATE TABLE t (x)")
    first = migrate.backup_database(db_path, backups_dir)
    second = migrate.backup_database(db_path, backups_dir)
    assert first != second and first.exists() and second.exists()


def test_a_failed_upgrade_names_the_backup_and_changes_nothing(db_path: Path, backups_dir: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db_path)) as conn:
        conn.execute("CREATE TABLE offline_transaction (id INTEGER PRIMARY KEY, note TEXT)")  # clashes
        conn.execute("INSERT INTO offline_transaction VALUES (1, 'only copy')")
        conn.commit()
    before = _tables(db_path)

    with pytest.raises(MigrationError) as caught:
        migrate.upgrade(db_path, backups_dir)

    backups = list(backups_dir.iterdir())
    assert len(backups) == 1
    assert str(backups[0]) in str(caught.value)
    assert "Nothing was changed" in str(caught.value)
    assert _tables(db_path) == before  # the DDL ran in one transaction and was rolled back
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT note FROM offline_transaction").fetchall() == [("only copy",)]


def test_a_database_from_a_newer_version_is_refused(db_path: Path, backups_dir: Path) -> None:
    migrate.upgrade(db_path, backups_dir)
    with closing(sqlite3.connect(db_path)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff_future'")
        conn.commit()
    with pytest.raises(MigrationError, match="newer version of crmsync"):
        migrate.upgrade(db_path, backups_dir)


def test_the_alembic_config_needs_no_ini_and_points_into_the_package() -> None:
    config = migrate.alembic_config()
    assert config.config_file_name is None
    location = Path(config.get_main_option("script_location") or "")
    assert location.is_absolute() and (location / "env.py").is_file()
    assert (location / "versions" / "0001_initial.py").is_file()


def test_open_store_migrates_then_opens(db_path: Path, backups_dir: Path) -> None:
    with migrate.open_store(db_path, backups_dir) as database:
        assert (
            database.read_sync(
                lambda s: s.connection().exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            )
            == migrate.head_revision()
        )


def _profile_columns(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(connection_profile)")]


def test_0005_adds_the_certificate_path_keeps_profiles_and_downgrades(
    db_path: Path, backups_dir: Path
) -> None:
    """0004 -> 0005: existing profiles keep their sign-in and get no certificate; 0005 -> 0004 drops it again."""
    from alembic import command

    golden = Path(__file__).with_name("data") / "schema-0004.db"
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(golden.read_bytes())
    assert "certificate_path" not in _profile_columns(db_path)

    backup = migrate.upgrade(db_path, backups_dir)

    assert backup is not None and migrate.current_revision(db_path) == "0005"
    assert "certificate_path" in _profile_columns(db_path)
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute("SELECT name, server_auth_kind, certificate_path FROM connection_profile").fetchall()
        assert rows == [("Contoso", "client_secret", "")]
        conn.execute("UPDATE connection_profile SET certificate_path = '/etc/crmsync/c.pfx'")
        conn.commit()

    engine = make_engine(db_path, foreign_keys=False)
    try:
        with engine.begin() as conn:
            config = migrate.alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0004")
    finally:
        engine.dispose()
    assert migrate.current_revision(db_path) == "0004"
    assert "certificate_path" not in _profile_columns(db_path)
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT name, server_auth_kind FROM connection_profile").fetchall() == [
            ("Contoso", "client_secret")
        ]
