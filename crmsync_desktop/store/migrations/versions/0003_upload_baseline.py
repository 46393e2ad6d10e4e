"""Upload baseline: the client's last captured version of each record (per-field digests).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upload_baseline",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=255), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=128), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["connection_profile.id"], name=op.f("fk_upload_baseline_profile_id_connection_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", "entity", "record_id", name=op.f("pk_upload_baseline")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("upload_baseline")
