"""All SQL of observations, their revisions and conversations, and summaries,
including the lexical search of each backend."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, delete, exists, func, select, text, update
from sqlalchemy.orm import Session

from convmem.kit.db import UTCDateTime, core, is_postgres
from convmem.memories import ranking
from convmem.memories.models import (
    ConversationSummary,
    Observation,
    ObservationConversation,
    ObservationRevision,
)

Memory = type[Observation] | type[ConversationSummary]
_FTS = {Observation: "observation_fts", ConversationSummary: "summary_fts"}


def next_fts_ids(session: Session, model: Memory, count: int) -> list[int | None]:
    """Keys for new rows in the SQLite FTS5 index (one writer at a time, so
    max + 1 is safe); PostgreSQL indexes a generated column instead."""
    if is_postgres(session):
        return [None] * count
    top = session.scalar(select(func.max(model.fts_id))) or 0
    return list(range(top + 1, top + 1 + count))


def add(session: Session, rows: Sequence[Any]) -> None:
    session.add_all(rows)
    session.flush()


def count(session: Session, model: Memory, *, store_id: str, profile_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(model)
            .where(model.store_id == store_id, model.profile_id == profile_id)
        )
        or 0
    )


def get(session: Session, model: Memory, *, store_id: str, profile_id: str, memory_id: str) -> Any:
    row: Any = session.get(model, (store_id, memory_id))
    return row if row is not None and row.profile_id == profile_id else None


def delete_observation(session: Session, row: Observation) -> None:
    for model in (ObservationRevision, ObservationConversation):
        session.execute(
            delete(model).where(model.store_id == row.store_id, model.observation_id == row.id)
        )
    session.delete(row)
    session.flush()


def delete_summary(session: Session, row: ConversationSummary) -> None:
    session.delete(row)
    session.flush()


def set_conversations(session: Session, row: Observation, conversation_ids: list[str]) -> None:
    session.execute(
        delete(ObservationConversation).where(
            ObservationConversation.store_id == row.store_id,
            ObservationConversation.observation_id == row.id,
        )
    )
    if conversation_ids:
        session.add_all(
            ObservationConversation(
                store_id=row.store_id,
                observation_id=row.id,
                conversation_id=c,
                profile_id=row.profile_id,
            )
            for c in dict.fromkeys(conversation_ids)
        )
    session.flush()


def observations_query(
    *,
    store_id: str,
    profile_id: str,
    source: str | None,
    created_after: dt.datetime | None,
    created_before: dt.datetime | None,
    conversation_id: str | None,
) -> Select[Any]:
    stmt = select(Observation).where(
        Observation.store_id == store_id, Observation.profile_id == profile_id
    )
    if source is not None:
        stmt = stmt.where(Observation.source == source)
    if created_after is not None:
        stmt = stmt.where(Observation.created_at >= created_after)
    if created_before is not None:
        stmt = stmt.where(Observation.created_at < created_before)
    if conversation_id is not None:
        stmt = stmt.where(
            exists().where(
                ObservationConversation.store_id == store_id,
                ObservationConversation.profile_id == profile_id,
                ObservationConversation.conversation_id == conversation_id,
                ObservationConversation.observation_id == Observation.id,
            )
        )
    return stmt


def revisions_query(*, store_id: str, observation_id: str) -> Select[Any]:
    return select(ObservationRevision).where(
        ObservationRevision.store_id == store_id,
        ObservationRevision.observation_id == observation_id,
    )


def summaries_query(*, store_id: str, profile_id: str, conversation_id: str | None) -> Select[Any]:
    stmt = select(ConversationSummary).where(
        ConversationSummary.store_id == store_id, ConversationSummary.profile_id == profile_id
    )
    if conversation_id is not None:
        stmt = stmt.where(ConversationSummary.conversation_id == conversation_id)
    return stmt


def _window(model: Memory, begin: dt.datetime | None, end: dt.datetime | None) -> list[Any]:
    conditions = []
    if begin is not None:
        conditions.append(model.occurred_at >= begin)
    if end is not None:
        conditions.append(model.occurred_at < end)
    return conditions


def newest(
    session: Session,
    model: Memory,
    *,
    store_id: str,
    profile_id: str,
    begin: dt.datetime | None,
    end: dt.datetime | None,
    limit: int,
) -> list[Any]:
    stmt = (
        select(model)
        .where(
            model.store_id == store_id, model.profile_id == profile_id, *_window(model, begin, end)
        )
        .order_by(model.occurred_at.desc(), model.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def vectors(
    session: Session,
    model: Memory,
    *,
    store_id: str,
    profile_id: str,
    begin: dt.datetime | None,
    end: dt.datetime | None,
) -> list[tuple[str, bytes | None]]:
    """(id, embedding) of the profile's memories in the window (a profile has
    at most a thousand or so: brute force is a fraction of a millisecond)."""
    stmt = select(model.id, model.embedding).where(
        model.store_id == store_id, model.profile_id == profile_id, *_window(model, begin, end)
    )
    return [(row[0], row[1]) for row in core(session).execute(stmt)]


def lexical(
    session: Session,
    model: Memory,
    *,
    store_id: str,
    profile_id: str,
    terms: list[str],
    begin: dt.datetime | None,
    end: dt.datetime | None,
) -> dict[str, float]:
    """Full-text rank of the profile's memories that contain any term
    (higher is better)."""
    if not terms:
        return {}
    table = model.__tablename__
    window = ""
    params: dict[str, Any] = {"store_id": store_id, "profile_id": profile_id}
    if begin is not None:
        window += " AND m.occurred_at >= :begin"
        params["begin"] = begin
    if end is not None:
        window += " AND m.occurred_at < :end"
        params["end"] = end
    if is_postgres(session):
        sql = (
            f"SELECT m.id, ts_rank_cd(m.search_vector, q) FROM {table} m, "
            "to_tsquery('english', :query) q WHERE m.store_id = :store_id "
            f"AND m.profile_id = :profile_id AND m.search_vector @@ q{window}"
        )
        params["query"] = ranking.pg_tsquery(terms)
    else:
        index = _FTS[model]
        # The index finds the profile's rows holding any term; they are
        # ranked in Python (ranking.bm25). CROSS JOIN keeps the index the
        # outer loop: SQLite would otherwise walk the profile's rows and run
        # the MATCH once per row.
        sql = (
            f"SELECT m.id, m.content FROM {index} CROSS JOIN {table} m "
            f"ON m.fts_id = {index}.rowid WHERE {index} MATCH :query "
            f"AND m.store_id = :store_id AND m.profile_id = :profile_id{window}"
        )
        params["query"] = ranking.fts5_query(profile_id, terms)
    stmt = text(sql)
    # Times bound as the column stores them (UTC; naive text on SQLite).
    stmt = stmt.bindparams(
        *(bindparam(k, type_=UTCDateTime()) for k in ("begin", "end") if k in params)
    )
    rows = core(session).execute(stmt, params).all()
    if is_postgres(session):
        return {row[0]: float(row[1]) for row in rows}
    total = count(session, model, store_id=store_id, profile_id=profile_id)
    return ranking.bm25(terms, {row[0]: row[1] for row in rows}, total)


def by_ids(session: Session, model: Memory, *, store_id: str, ids: Sequence[str]) -> list[Any]:
    if not ids:
        return []
    return list(session.scalars(select(model).where(model.store_id == store_id, model.id.in_(ids))))


def touch(session: Session, model: Memory, *, store_id: str, memory_id: str, **values: Any) -> None:
    session.execute(
        update(model)
        .where(model.store_id == store_id, model.id == memory_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
