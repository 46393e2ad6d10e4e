"""Download retry set: server records whose download failed, retried by id on the next sync.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "download_retry",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=255), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["connection_profile.id"], name=op.f("fk_download_retry_profile_id_connection_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", "entity", "record_id", name=op.f("pk_download_retry")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("download_retry")
