"""Memories of a profile. Every table carries `store_id` and `profile_id`, so
a merge re-points them at the canonical profile and a profile's deletion
removes them (profiles.repository.profile_scoped_tables).

Lexical search: on SQLite an FTS5 index per table (`observation_fts`,
`summary_fts`, external content keyed by `fts_id` and kept in step by
triggers, see migration 0009); on PostgreSQL a generated `search_vector`
tsvector column. Neither is declared here: they exist only on their backend."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from convmem.kit.db import Base, JSONType, UTCDateTime


class Observation(Base):
    __tablename__ = "observations"
    __table_args__ = (
        Index("ix_observations_profile", "store_id", "profile_id", "id"),
        Index("uq_observations_fts_id", "fts_id", unique=True),
    )

    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(100))
    conversation_ids: Mapped[list[str]] = mapped_column(JSONType)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # float32 x 384 (MiniLM), None when embedding is off.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The row's key in the SQLite FTS5 index (NULL on PostgreSQL).
    fts_id: Mapped[int | None] = mapped_column(BigInteger)


class ObservationConversation(Base):
    """Which conversations an observation belongs to (for the conversationId filter)."""

    __tablename__ = "observation_conversations"
    __table_args__ = (
        Index("ix_observation_conversations_lookup", "store_id", "profile_id", "conversation_id"),
    )

    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(64))


class ObservationRevision(Base):
    """An observation's full state before a change."""

    __tablename__ = "observation_revisions"
    # A merge or a profile's deletion finds the profile's revisions by it.
    __table_args__ = (Index("ix_observation_revisions_profile", "store_id", "profile_id"),)

    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # A time-ordered row id: revisions list newest first by it.
    revision_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(100))
    conversation_ids: Mapped[list[str]] = mapped_column(JSONType)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ConversationSummary(Base):
    __tablename__ = "conversation_summaries"
    __table_args__ = (
        Index("ix_conversation_summaries_profile", "store_id", "profile_id", "id"),
        Index(
            "ix_conversation_summaries_conversation", "store_id", "profile_id", "conversation_id"
        ),
        Index("uq_conversation_summaries_fts_id", "fts_id", unique=True),
    )

    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    fts_id: Mapped[int | None] = mapped_column(BigInteger)
