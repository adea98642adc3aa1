"""covering identifier lookup index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 16:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("profile_identifiers", schema=None) as batch_op:
        batch_op.drop_index("ix_profile_identifiers_lookup")
        batch_op.create_index(
            "ix_profile_identifiers_lookup",
            ["store_id", "id_type", "value", "profile_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("profile_identifiers", schema=None) as batch_op:
        batch_op.drop_index("ix_profile_identifiers_lookup")
        batch_op.create_index(
            "ix_profile_identifiers_lookup", ["store_id", "id_type", "value"], unique=False
        )
