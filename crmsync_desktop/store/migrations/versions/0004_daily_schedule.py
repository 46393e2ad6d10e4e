"""Daily schedule: the periodic sync can run once a day at a local wall-clock time ("HH:MM").

A NULL ``daily_at`` (every existing row) keeps the interval schedule, so the upgrade changes no
profile's behaviour.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("schedule_state", sa.Column("daily_at", sa.String(length=5), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("schedule_state") as batch:
        batch.drop_column("daily_at")
