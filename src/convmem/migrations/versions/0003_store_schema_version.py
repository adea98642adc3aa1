"""store schema version

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:16:34.883226
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("schema_version", sa.Integer(), server_default="1", nullable=False)
        )


def downgrade() -> None:

    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.drop_column("schema_version")
