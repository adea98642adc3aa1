"""datasets, data mappings, their syncs and the syncs' reports

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 16:30:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import convmem.kit.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def upgrade() -> None:
    when = convmem.kit.db.UTCDateTime(timezone=True)
    op.create_table(
        "datasets",
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source", _json(), nullable=False),
        sa.Column("fields", _json(), nullable=False),
        sa.Column("primary_key", sa.String(length=256), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.PrimaryKeyConstraint("account_sid", "id", name=op.f("pk_datasets")),
    )
    op.create_index(
        "uq_datasets_account_sid_display_name",
        "datasets",
        ["account_sid", "display_name"],
        unique=True,
    )
    op.create_table(
        "data_mappings",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=True),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("source_type", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=True),
        sa.Column("columns", _json(), nullable=True),
        sa.Column("mappings", _json(), nullable=False),
        sa.Column("sync", _json(), nullable=True),
        sa.Column("watermark", _json(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "id", name=op.f("pk_data_mappings")),
    )
    op.create_index(
        "uq_data_mappings_store_id_display_name",
        "data_mappings",
        ["store_id", "display_name"],
        unique=True,
    )
    op.create_index("ix_data_mappings_dataset_id", "data_mappings", ["dataset_id"])
    op.create_table(
        "data_mapping_syncs",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("mapping_id", sa.String(length=64), nullable=False),
        sa.Column("operation_id", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("counts", _json(), nullable=True),
        sa.Column("cursor", _json(), nullable=True),
        sa.Column("detail", sa.String(length=1024), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("started_at", when, nullable=True),
        sa.Column("finished_at", when, nullable=True),
        sa.PrimaryKeyConstraint("store_id", "id", name=op.f("pk_data_mapping_syncs")),
    )
    op.create_index(
        "ix_data_mapping_syncs_mapping",
        "data_mapping_syncs",
        ["store_id", "mapping_id", "id"],
    )
    op.create_table(
        "data_mapping_sync_report",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("sync_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("column", sa.String(length=255), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("message", sa.String(length=1024), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("warning", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id", "sync_id", "seq", name=op.f("pk_data_mapping_sync_report")
        ),
    )


def downgrade() -> None:
    op.drop_table("data_mapping_sync_report")
    op.drop_index("ix_data_mapping_syncs_mapping", table_name="data_mapping_syncs")
    op.drop_table("data_mapping_syncs")
    op.drop_index("ix_data_mappings_dataset_id", table_name="data_mappings")
    op.drop_index("uq_data_mappings_store_id_display_name", table_name="data_mappings")
    op.drop_table("data_mappings")
    op.drop_index("uq_datasets_account_sid_display_name", table_name="datasets")
    op.drop_table("datasets")
