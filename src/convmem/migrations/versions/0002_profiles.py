"""profiles

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 16:06:04.827211
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import convmem.kit.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "profile_identifiers",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("id_type", sa.String(length=30), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("unique_value", sa.String(length=255), nullable=True),
        sa.Column("sort_key", sa.String(length=64), nullable=False),
        sa.Column("fuzzy", sa.Boolean(), nullable=False),
        sa.Column("block_prefix", sa.String(length=8), nullable=False),
        sa.Column("block_suffix", sa.String(length=8), nullable=False),
        sa.Column("created_at", convmem.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id", "profile_id", "id_type", "value", name=op.f("pk_profile_identifiers")
        ),
    )
    with op.batch_alter_table("profile_identifiers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_profile_identifiers_block_prefix",
            ["store_id", "id_type", "block_prefix"],
            unique=False,
            postgresql_where=sa.text("fuzzy"),
            sqlite_where=sa.text("fuzzy"),
        )
        batch_op.create_index(
            "ix_profile_identifiers_block_suffix",
            ["store_id", "id_type", "block_suffix"],
            unique=False,
            postgresql_where=sa.text("fuzzy"),
            sqlite_where=sa.text("fuzzy"),
        )
        batch_op.create_index(
            "ix_profile_identifiers_lookup", ["store_id", "id_type", "value"], unique=False
        )
        batch_op.create_index(
            "uq_profile_identifiers_unique", ["store_id", "id_type", "unique_value"], unique=True
        )

    op.create_table(
        "profile_merges",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("canonical_id", sa.String(length=64), nullable=False),
        sa.Column("merged_id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=30), nullable=False),
        sa.Column("merged_at", convmem.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "id", name=op.f("pk_profile_merges")),
    )
    with op.batch_alter_table("profile_merges", schema=None) as batch_op:
        batch_op.create_index(
            "ix_profile_merges_store_id_canonical_id", ["store_id", "canonical_id"], unique=False
        )

    op.create_table(
        "profile_traits",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("trait_key", sa.String(length=130), nullable=False),
        sa.Column("group_name", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "value",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("updated_at", convmem.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id", "profile_id", "trait_key", name=op.f("pk_profile_traits")
        ),
    )
    op.create_table(
        "profiles",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("merged_into", sa.String(length=64), nullable=True),
        sa.Column("created_at", convmem.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", convmem.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "id", name=op.f("pk_profiles")),
    )
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_profiles_store_id_merged_into", ["store_id", "merged_into"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_profiles_store_id_merged_into")

    op.drop_table("profiles")
    op.drop_table("profile_traits")
    with op.batch_alter_table("profile_merges", schema=None) as batch_op:
        batch_op.drop_index("ix_profile_merges_store_id_canonical_id")

    op.drop_table("profile_merges")
    with op.batch_alter_table("profile_identifiers", schema=None) as batch_op:
        batch_op.drop_index("uq_profile_identifiers_unique")
        batch_op.drop_index("ix_profile_identifiers_lookup")
        batch_op.drop_index(
            "ix_profile_identifiers_block_suffix",
            postgresql_where=sa.text("fuzzy"),
            sqlite_where=sa.text("fuzzy"),
        )
        batch_op.drop_index(
            "ix_profile_identifiers_block_prefix",
            postgresql_where=sa.text("fuzzy"),
            sqlite_where=sa.text("fuzzy"),
        )

    op.drop_table("profile_identifiers")
