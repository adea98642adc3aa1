"""the unique-identifier index holds only values of unique idTypes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 18:30:00

`unique_value` is NULL for every idType without enforceUnique (the default for
all four built-in ones), and NULLs never collide, so those entries bought
nothing; each was one more B-tree insert per identifier written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = ["store_id", "id_type", "unique_value"]


def upgrade() -> None:
    op.drop_index("uq_profile_identifiers_unique", table_name="profile_identifiers")
    op.create_index(
        "uq_profile_identifiers_unique",
        "profile_identifiers",
        COLUMNS,
        unique=True,
        postgresql_where=sa.text("unique_value IS NOT NULL"),
        sqlite_where=sa.text("unique_value IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_profile_identifiers_unique", table_name="profile_identifiers")
    op.create_index("uq_profile_identifiers_unique", "profile_identifiers", COLUMNS, unique=True)
