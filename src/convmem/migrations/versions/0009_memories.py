"""observations, their revisions and conversations, conversation summaries; lexical indexes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 17:00:00

Lexical search lives next to the tables, per backend: SQLite gets an FTS5
index per table (external content keyed by `fts_id`, the porter stemmer),
kept in step by triggers, so every insert, update (a merge re-points
profile_id) and delete reaches it in the same transaction; PostgreSQL gets a
generated `search_vector` column (English configuration).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import convmem.kit.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def _fts(table: str, index: str) -> list[str]:
    columns = "rowid, profile_id, content"
    old = (
        f"INSERT INTO {index}({index}, {columns}) "
        "VALUES ('delete', old.fts_id, old.profile_id, old.content);"
    )
    new = f"INSERT INTO {index}({columns}) VALUES (new.fts_id, new.profile_id, new.content);"
    return [
        f"CREATE VIRTUAL TABLE {index} USING fts5(profile_id, content, content='{table}', "
        "content_rowid='fts_id', tokenize='porter unicode61')",
        f"CREATE TRIGGER {table}_fts_insert AFTER INSERT ON {table} BEGIN {new} END",
        f"CREATE TRIGGER {table}_fts_delete AFTER DELETE ON {table} BEGIN {old} END",
        f"CREATE TRIGGER {table}_fts_update AFTER UPDATE OF profile_id, content ON {table} "
        f"BEGIN {old} {new} END",
    ]


def upgrade() -> None:
    when = convmem.kit.db.UTCDateTime(timezone=True)
    op.create_table(
        "observations",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("conversation_ids", _json(), nullable=False),
        sa.Column("occurred_at", when, nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("fts_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("store_id", "id", name=op.f("pk_observations")),
    )
    op.create_index("ix_observations_profile", "observations", ["store_id", "profile_id", "id"])
    op.create_index("uq_observations_fts_id", "observations", ["fts_id"], unique=True)
    op.create_table(
        "observation_conversations",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id",
            "observation_id",
            "conversation_id",
            name=op.f("pk_observation_conversations"),
        ),
    )
    op.create_index(
        "ix_observation_conversations_lookup",
        "observation_conversations",
        ["store_id", "profile_id", "conversation_id"],
    )
    op.create_table(
        "observation_revisions",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("revision_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("conversation_ids", _json(), nullable=False),
        sa.Column("occurred_at", when, nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id", "observation_id", "revision_id", name=op.f("pk_observation_revisions")
        ),
    )
    op.create_index(
        "ix_observation_revisions_profile", "observation_revisions", ["store_id", "profile_id"]
    )
    op.create_table(
        "conversation_summaries",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("occurred_at", when, nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("fts_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("store_id", "id", name=op.f("pk_conversation_summaries")),
    )
    op.create_index(
        "ix_conversation_summaries_profile",
        "conversation_summaries",
        ["store_id", "profile_id", "id"],
    )
    op.create_index(
        "ix_conversation_summaries_conversation",
        "conversation_summaries",
        ["store_id", "profile_id", "conversation_id"],
    )
    op.create_index(
        "uq_conversation_summaries_fts_id", "conversation_summaries", ["fts_id"], unique=True
    )
    if op.get_bind().dialect.name == "sqlite":
        for table, index in (
            ("observations", "observation_fts"),
            ("conversation_summaries", "summary_fts"),
        ):
            for statement in _fts(table, index):
                op.execute(statement)
    else:
        for table in ("observations", "conversation_summaries"):
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN search_vector tsvector "
                "GENERATED ALWAYS AS (to_tsvector('english', content)) STORED"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table, index in (
            ("observations", "observation_fts"),
            ("conversation_summaries", "summary_fts"),
        ):
            for suffix in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_fts_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {index}")
    op.drop_table("conversation_summaries")
    op.drop_table("observation_revisions")
    op.drop_table("observation_conversations")
    op.drop_table("observations")
