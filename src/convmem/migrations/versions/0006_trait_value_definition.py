"""trait values remember the definition they were written under

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("profile_traits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("def_key", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE profile_traits SET def_key = (SELECT d.sort_key FROM trait_definitions d "
        "WHERE d.store_id = profile_traits.store_id AND d.group_name = profile_traits.group_name "
        "AND d.name = profile_traits.name)"
    )


def downgrade() -> None:
    with op.batch_alter_table("profile_traits", schema=None) as batch_op:
        batch_op.drop_column("def_key")
