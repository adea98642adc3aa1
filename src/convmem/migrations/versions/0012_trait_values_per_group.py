"""a profile's trait values are stored per trait group, as one JSON object

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 09:00:00

`profile_traits` held one row per value; `profile_trait_groups` holds one row
per (profile, trait group): `{trait name: [value, updated_at, def_key]}`. A
profile of six traits in one group was six B-tree inserts and is now one; the
data is copied over in key order. `updated_at` becomes UTC text in the form
SQLite already stored (`YYYY-MM-DD HH:MM:SS.ffffff`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import convmem.kit.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _create_groups() -> None:
    op.create_table(
        "profile_trait_groups",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("profile_id", sa.String(64), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("traits", convmem.kit.db.JSONType, nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id", "profile_id", "group_name", name="pk_profile_trait_groups"
        ),
        sqlite_with_rowid=False,
    )


def _create_values() -> None:
    op.create_table(
        "profile_traits",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("profile_id", sa.String(64), nullable=False),
        sa.Column("trait_key", sa.String(130), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", convmem.kit.db.JSONType, nullable=False),
        sa.Column("updated_at", convmem.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("def_key", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("store_id", "profile_id", "trait_key", name="pk_profile_traits"),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _create_groups()
    if sqlite:
        entry = "json_array(json(value), updated_at, def_key)"
        aggregate = f"json_group_object(name, {entry})"
    else:
        stamp = "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        aggregate = f"jsonb_object_agg(name, jsonb_build_array(value, {stamp}, def_key))"
    op.execute(
        "INSERT INTO profile_trait_groups (store_id, profile_id, group_name, traits) "
        f"SELECT store_id, profile_id, group_name, {aggregate} FROM profile_traits "
        "GROUP BY store_id, profile_id, group_name ORDER BY store_id, profile_id, group_name"
    )
    op.drop_table("profile_traits")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _create_values()
    if sqlite:
        # `->` gives JSON text (what the value column holds), `->>` plain text.
        source = (
            "SELECT g.store_id, g.profile_id, g.group_name || '.' || e.key, g.group_name, e.key, "
            "e.value -> 0, e.value ->> 1, e.value ->> 2 "
            "FROM profile_trait_groups AS g, json_each(g.traits) AS e"
        )
    else:
        source = (
            "SELECT g.store_id, g.profile_id, g.group_name || '.' || e.key, g.group_name, e.key, "
            "e.value -> 0, CAST(e.value ->> 1 || '+00' AS TIMESTAMPTZ), e.value ->> 2 "
            "FROM profile_trait_groups AS g, jsonb_each(g.traits) AS e"
        )
    op.execute(
        "INSERT INTO profile_traits (store_id, profile_id, trait_key, group_name, name, value, "
        f"updated_at, def_key) {source}"
    )
    op.drop_table("profile_trait_groups")
