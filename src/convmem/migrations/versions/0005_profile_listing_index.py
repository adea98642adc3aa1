"""canonical profiles listed in id order from an index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_profiles_store_id_merged_into")
        batch_op.create_index(
            "ix_profiles_store_id_merged_into_id", ["store_id", "merged_into", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_profiles_store_id_merged_into_id")
        batch_op.create_index(
            "ix_profiles_store_id_merged_into", ["store_id", "merged_into"], unique=False
        )
