"""Initial schema: profiles, entity configuration, metadata snapshot, sync and record state,
offline transactions, job runs with their log, schedule state.

Written against plain SQLAlchemy types (not the app's column types or enums) so this file stays
valid whatever later versions of the models look like.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connection_profile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("server_kind", sa.String(length=16), nullable=False),
        sa.Column("server_url", sa.Text(), nullable=False),
        sa.Column("server_auth_kind", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("server_user", sa.String(length=255), nullable=False),
        sa.Column("client_url", sa.Text(), nullable=False),
        sa.Column("client_user", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("metadata_updated_at", sa.DateTime(), nullable=True),
        sa.Column("verify_tls", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection_profile")),
        sa.UniqueConstraint("name", name=op.f("uq_connection_profile_name")),
    )
    op.create_table(
        "entity_config",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("logical_name", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("sync_filter", sa.Text(), nullable=False),
        sa.Column("upload_filter", sa.Text(), nullable=False),
        sa.Column("sync_deletion", sa.Boolean(), nullable=False),
        sa.Column("deletion_strategy", sa.String(length=32), nullable=False),
        sa.Column("conflict_policy", sa.String(length=32), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["connection_profile.id"],
            name=op.f("fk_entity_config_profile_id_connection_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entity_config")),
        sa.UniqueConstraint(
            "profile_id", "logical_name", name=op.f("uq_entity_config_profile_id_logical_name")
        ),
    )
    op.create_table(
        "job_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["connection_profile.id"],
            name=op.f("fk_job_run_profile_id_connection_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_run")),
    )
    op.create_index(op.f("ix_job_run_profile_id_id"), "job_run", ["profile_id", "id"], unique=False)
    op.create_table(
        "metadata_entity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("logical_name", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("primary_id_attribute", sa.String(length=255), nullable=False),
        sa.Column("primary_name_attribute", sa.String(length=255), nullable=False),
        sa.Column("entity_set_name", sa.String(length=255), nullable=False),
        sa.Column("change_tracking", sa.Boolean(), nullable=False),
        sa.Column("is_intersect", sa.Boolean(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["connection_profile.id"],
            name=op.f("fk_metadata_entity_profile_id_connection_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadata_entity")),
        sa.UniqueConstraint(
            "profile_id", "logical_name", name=op.f("uq_metadata_entity_profile_id_logical_name")
        ),
    )
    op.create_table(
        "metadata_relationship",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("schema_name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("entity1", sa.String(length=255), nullable=False),
        sa.Column("attribute1", sa.String(length=255), nullable=False),
        sa.Column("entity2", sa.String(length=255), nullable=False),
        sa.Column("attribute2", sa.String(length=255), nullable=False),
        sa.Column("intersect_entity", sa.String(length=255), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["connection_profile.id"],
            name=op.f("fk_metadata_relationship_profile_id_connection_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadata_relationship")),
        sa.UniqueConstraint(
            "profile_id", "schema_name", name=op.f("uq_metadata_relationship_profile_id_schema_name")
        ),
    )
    op.create_table(
        "offline_transaction",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=255), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=True),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("processed_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["connection_profile.id"],
            name=op.f("fk_offline_transaction_profile_id_connection_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offline_transaction")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_offline_transaction_profile_id_entity_status_id"),
        "offline_transaction",
        ["profile_id", "entity", "status", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_offline_transaction_profile_id_status_id"),
        "offline_transaction",
        ["profile_id", "status", "id"],
        unique=False,
    )
    op.create_table(
        "record_state",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=255), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("server_row_version", sa.Text(), nullable=True),
        sa.Column("client_row_version", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=128), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["connection_profile.id"],
            name=op.f("fk_record_state_profile_id_connection_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", "entity", "record_id", name=op.f("pk_record_state")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "schedule_state",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("last_started_at", sa.DateTime(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("paused_until", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["connection_profile.id"],
            name=op.f("fk_schedule_state_profile_id_connection_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_schedule_state")),
    )
    op.create_table(
        "sync_state",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=255), nullable=False),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("last_full_sync_at", sa.DateTime(), nullable=True),
        sa.Column("last_sync_at", sa.DateTime(), nullable=True),
        sa.Column("server_count", sa.Integer(), nullable=True),
        sa.Column("client_count", sa.Integer(), nullable=True),
        sa.Column("last_client_row_version", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["connection_profile.id"],
            name=op.f("fk_sync_state_profile_id_connection_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", "entity", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "metadata_field",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("logical_name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["metadata_entity.id"],
            name=op.f("fk_metadata_field_entity_id_metadata_entity"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadata_field")),
        sa.UniqueConstraint(
            "entity_id", "logical_name", name=op.f("uq_metadata_field_entity_id_logical_name")
        ),
    )
    op.create_table(
        "run_log_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("entity", sa.String(length=255), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["job_run.id"], name=op.f("fk_run_log_line_run_id_job_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_log_line")),
    )
    op.create_index(op.f("ix_run_log_line_run_id_id"), "run_log_line", ["run_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_run_log_line_run_id_id"), table_name="run_log_line")
    op.drop_table("run_log_line")
    op.drop_table("metadata_field")
    op.drop_table("sync_state")
    op.drop_table("schedule_state")
    op.drop_table("record_state")
    op.drop_index(op.f("ix_offline_transaction_profile_id_status_id"), table_name="offline_transaction")
    op.drop_index(
        op.f("ix_offline_transaction_profile_id_entity_status_id"), table_name="offline_transaction"
    )
    op.drop_table("offline_transaction")
    op.drop_table("metadata_relationship")
    op.drop_table("metadata_entity")
    op.drop_index(op.f("ix_job_run_profile_id_id"), table_name="job_run")
    op.drop_table("job_run")
    op.drop_table("entity_config")
    op.drop_table("connection_profile")
