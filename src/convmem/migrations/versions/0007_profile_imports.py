"""profile imports and their reports

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 13:45:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import convmem.kit.db


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profile_imports",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("column_mappings", _json(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.String(length=64), nullable=False),
        sa.Column("upload_expires_at", convmem.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", convmem.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("counts", _json(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("detail", sa.String(length=1024), nullable=True),
        sa.Column("created_at", convmem.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", convmem.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "id", name=op.f("pk_profile_imports")),
    )
    op.create_index("uq_profile_imports_id", "profile_imports", ["id"], unique=True)
    op.create_table(
        "profile_import_report",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("import_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("column", sa.String(length=255), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("message", sa.String(length=1024), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("warning", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id", "import_id", "seq", name=op.f("pk_profile_import_report")
        ),
    )


def downgrade() -> None:
    op.drop_table("profile_import_report")
    op.drop_index("uq_profile_imports_id", table_name="profile_imports")
    op.drop_table("profile_imports")
