"""Certificate sign-in: a connection profile keeps the path of its certificate file.

The path only (a PEM or PFX file with the private key); the file's passphrase stays in the OS
keyring. Existing profiles get ``""`` (no certificate), so the upgrade changes no profile's sign-in.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "connection_profile",
        sa.Column("certificate_path", sa.Text(), nullable=False, server_default=""),
    )


def downgrade() -> None:
    with op.batch_alter_table("connection_profile") as batch:
        batch.drop_column("certificate_path")
