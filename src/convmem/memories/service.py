"""Memory use cases: observations (with revisions), conversation summaries, Recall.

Writes lock the profile first (a merge moves memories with their profile, so
a write racing it must see where the profile went) and answer ProfileMoved for
a merged-away id. Vectors are computed by the caller before the transaction
opens and handed in, one per text (None when embedding is off)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from convmem.kit import ids
from convmem.kit.db import utcnow
from convmem.kit.errors import NotFound, ProfileMoved, ProfileNotFound, ValidationFailed
from convmem.kit.pagination import Page, PageRequest, paginate
from convmem.memories import ranking, repository
from convmem.memories.embeddings import from_blobs, to_blob
from convmem.memories.models import (
    ConversationSummary,
    Observation,
    ObservationRevision,
)
from convmem.memories.schemas import (
    ObservationIn,
    ObservationPatch,
    RecallIn,
    SummaryIn,
    SummaryPatch,
)
from convmem.profiles import repository as profiles
from convmem.profiles import service as profile_service
from convmem.stores.models import StoreRef

# At most this many of each kind per profile; a create beyond it is a 400
# (nothing is evicted). Merges may bring a profile past it.
MAX_PER_PROFILE = 500
OBSERVATION_ID = ids.matcher(ids.OBSERVATION)
SUMMARY_ID = ids.matcher(ids.SUMMARY)


class ObservationNotFound(NotFound):
    code = 520003
    default_message = "Observation not found"


class SummaryNotFound(NotFound):
    default_message = "Conversation summary not found"


# Per kind: the id's pattern, its field, its prefix, and the 404 when unknown.
_KINDS: dict[Any, tuple[Any, str, str, type[NotFound]]] = {
    Observation: (OBSERVATION_ID, "observationId", ids.OBSERVATION, ObservationNotFound),
    ConversationSummary: (SUMMARY_ID, "summaryId", ids.SUMMARY, SummaryNotFound),
}


def _writable_profile(session: Session, store: StoreRef, profile_id: str) -> None:
    """Lock the profile's row (and its aliases) for the write, or say where it went."""
    profile_service.check_id(profile_id)
    state = profiles.lock_profiles(session, store.id, [profile_id])
    if profile_id not in state:
        raise ProfileNotFound(f"Profile {profile_id} not found")
    merged_into = state[profile_id]
    if merged_into is not None:
        raise ProfileMoved(merged_into)


def _readable_profile(session: Session, store: StoreRef, profile_id: str) -> None:
    profile_service.get_canonical(session, store=store, profile_id=profile_id)


def _room(session: Session, model: Any, store: StoreRef, profile_id: str, adding: int) -> None:
    held = repository.count(session, model, store_id=store.id, profile_id=profile_id)
    if held + adding > MAX_PER_PROFILE:
        kind = "observations" if model is Observation else "conversation summaries"
        raise ValidationFailed(
            f"A profile holds at most {MAX_PER_PROFILE} {kind}; profile {profile_id} has "
            f"{held}, so {adding} more do not fit (delete some first)"
        )


def _blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else to_blob(vector)


def _changed(row: Any, vector: np.ndarray | None, **given: Any) -> dict[str, Any]:
    """The columns a PATCH gives a new value (None: not given); new content
    brings its new embedding (`vector`)."""
    changes = {
        column: value
        for column, value in given.items()
        if value is not None and value != getattr(row, column)
    }
    if "content" in changes:
        changes["embedding"] = _blob(vector)
    return changes


def _apply(session: Session, row: Any, changes: dict[str, Any]) -> None:
    for column, value in changes.items():
        setattr(row, column, value)
    # Strictly later than before, even within one clock tick.
    row.updated_at = max(utcnow(), row.updated_at + dt.timedelta(microseconds=1))
    session.flush()


# -- observations ---------------------------------------------------------------------


def create_observations(
    session: Session,
    *,
    store: StoreRef,
    profile_id: str,
    items: Sequence[ObservationIn],
    vectors: np.ndarray | None,
) -> list[str]:
    _writable_profile(session, store, profile_id)
    _room(session, Observation, store, profile_id, len(items))
    now = utcnow()
    keys = repository.next_fts_ids(session, Observation, len(items))
    rows = []
    for n, item in enumerate(items):
        rows.append(
            Observation(
                store_id=store.id,
                id=ids.new_id(ids.OBSERVATION),
                profile_id=profile_id,
                content=item.content,
                source=item.source,
                conversation_ids=list(dict.fromkeys(item.conversationIds)),
                occurred_at=item.occurredAt,
                created_at=now,
                updated_at=now,
                embedding=_blob(vectors[n] if vectors is not None else None),
                fts_id=keys[n],
            )
        )
    repository.add(session, rows)
    for row in rows:
        repository.set_conversations(session, row, row.conversation_ids)
    return [row.id for row in rows]


def _get(
    session: Session,
    model: Any,
    *,
    store: StoreRef,
    profile_id: str,
    memory_id: str,
    write: bool,
) -> Any:
    """The profile's memory of `model` (checked id, 404 when unknown)."""
    (_writable_profile if write else _readable_profile)(session, store, profile_id)
    pattern, field, prefix, missing = _KINDS[model]
    ids.require(pattern, memory_id, field=field, prefix=prefix, error=ValidationFailed)
    row = repository.get(
        session, model, store_id=store.id, profile_id=profile_id, memory_id=memory_id
    )
    if row is None:
        raise missing(f"{missing.default_message} ({memory_id})")
    return row


def get_observation(
    session: Session, *, store: StoreRef, profile_id: str, observation_id: str, write: bool = False
) -> Observation:
    row: Observation = _get(
        session,
        Observation,
        store=store,
        profile_id=profile_id,
        memory_id=observation_id,
        write=write,
    )
    return row


@dataclass(frozen=True)
class ObservationFilter:
    source: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    conversation_id: str | None = None


def list_observations(
    session: Session,
    *,
    store: StoreRef,
    profile_id: str,
    page: PageRequest,
    filters: ObservationFilter,
) -> Page[Observation]:
    _readable_profile(session, store, profile_id)
    stmt = repository.observations_query(
        store_id=store.id,
        profile_id=profile_id,
        source=filters.source,
        created_after=filters.created_after,
        created_before=filters.created_before,
        conversation_id=filters.conversation_id,
    )
    # Ids are time-ordered, so id order is createdAt order.
    return paginate(
        session, stmt, Observation.id, page, key_of=lambda o: o.id, scope="observations"
    )


def patch_observation(
    session: Session,
    *,
    store: StoreRef,
    profile_id: str,
    observation_id: str,
    data: ObservationPatch,
    vector: np.ndarray | None,
) -> None:
    """Change the given fields; the full state before the change is kept as a revision."""
    row = get_observation(
        session, store=store, profile_id=profile_id, observation_id=observation_id, write=True
    )
    conversations = (
        list(dict.fromkeys(data.conversationIds)) if data.conversationIds is not None else None
    )
    changes = _changed(
        row,
        vector,
        content=data.content,
        source=data.source,
        occurred_at=data.occurredAt,
        conversation_ids=conversations,
    )
    if not changes:
        return  # nothing differs: no revision, updatedAt stays
    session.add(
        ObservationRevision(
            store_id=row.store_id,
            observation_id=row.id,
            revision_id=ids.new_id(ids.ROW),
            profile_id=row.profile_id,
            content=row.content,
            source=row.source,
            conversation_ids=list(row.conversation_ids),
            occurred_at=row.occurred_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
    )
    _apply(session, row, changes)
    if "conversation_ids" in changes:
        repository.set_conversations(session, row, changes["conversation_ids"])


def delete_observation(
    session: Session, *, store: StoreRef, profile_id: str, observation_id: str
) -> None:
    row = get_observation(
        session, store=store, profile_id=profile_id, observation_id=observation_id, write=True
    )
    repository.delete_observation(session, row)


def list_revisions(
    session: Session, *, store: StoreRef, profile_id: str, observation_id: str, page: PageRequest
) -> Page[ObservationRevision]:
    get_observation(session, store=store, profile_id=profile_id, observation_id=observation_id)
    return paginate(
        session,
        repository.revisions_query(store_id=store.id, observation_id=observation_id),
        ObservationRevision.revision_id,
        page,
        key_of=lambda r: r.revision_id,
        scope="revisions",
    )


# -- summaries ------------------------------------------------------------------------


def create_summaries(
    session: Session,
    *,
    store: StoreRef,
    profile_id: str,
    items: Sequence[SummaryIn],
    vectors: np.ndarray | None,
) -> list[str]:
    _writable_profile(session, store, profile_id)
    _room(session, ConversationSummary, store, profile_id, len(items))
    now = utcnow()
    keys = repository.next_fts_ids(session, ConversationSummary, len(items))
    rows = [
        ConversationSummary(
            store_id=store.id,
            id=ids.new_id(ids.SUMMARY),
            profile_id=profile_id,
            conversation_id=item.conversationId,
            content=item.content,
            source=item.source,
            occurred_at=item.occurredAt,
            created_at=now,
            updated_at=now,
            embedding=_blob(vectors[n] if vectors is not None else None),
            fts_id=keys[n],
        )
        for n, item in enumerate(items)
    ]
    repository.add(session, rows)
    return [row.id for row in rows]


def get_summary(
    session: Session, *, store: StoreRef, profile_id: str, summary_id: str, write: bool = False
) -> ConversationSummary:
    row: ConversationSummary = _get(
        session,
        ConversationSummary,
        store=store,
        profile_id=profile_id,
        memory_id=summary_id,
        write=write,
    )
    return row


def list_summaries(
    session: Session,
    *,
    store: StoreRef,
    profile_id: str,
    page: PageRequest,
    conversation_id: str | None,
) -> Page[ConversationSummary]:
    _readable_profile(session, store, profile_id)
    stmt = repository.summaries_query(
        store_id=store.id, profile_id=profile_id, conversation_id=conversation_id
    )
    return paginate(
        session, stmt, ConversationSummary.id, page, key_of=lambda s: s.id, scope="summaries"
    )


def patch_summary(
    session: Session,
    *,
    store: StoreRef,
    profile_id: str,
    summary_id: str,
    data: SummaryPatch,
    vector: np.ndarray | None,
) -> None:
    row = get_summary(
        session, store=store, profile_id=profile_id, summary_id=summary_id, write=True
    )
    changes = _changed(
        row,
        vector,
        content=data.content,
        source=data.source,
        occurred_at=data.occurredAt,
        conversation_id=data.conversationId,
    )
    if changes:
        _apply(session, row, changes)


def delete_summary(session: Session, *, store: StoreRef, profile_id: str, summary_id: str) -> None:
    row = get_summary(
        session, store=store, profile_id=profile_id, summary_id=summary_id, write=True
    )
    repository.delete_summary(session, row)


# -- recall ---------------------------------------------------------------------------
#
# Recall runs in three steps so that the query's embedding (a worker thread)
# and the database work overlap: `gather` reads what ranking needs, `choose`
# ranks it once the query's vector is there (no database), `fetch` reads the
# chosen rows. Without a query, `gather` alone answers: newest first.

KINDS: tuple[Any, ...] = (Observation, ConversationSummary)


@dataclass
class Candidates:
    """One kind of memory's ranking inputs: lexical scores (0..1) and vectors."""

    limit: int
    lexical: dict[str, float]
    ids: list[str]
    vectors: np.ndarray | None
    newest: list[Any] | None = None  # the answer itself when there is no query


@dataclass(frozen=True)
class Recalled:
    observations: list[tuple[Observation, float | None]]
    summaries: list[tuple[ConversationSummary, float | None]]


def gather(
    session: Session, *, store: StoreRef, profile_id: str, data: RecallIn, semantic: bool
) -> dict[Any, Candidates]:
    _readable_profile(session, store, profile_id)
    query = (data.query or "").strip()
    window = {"begin": data.beginDate, "end": data.endDate}
    found = {}
    for model, limit in zip(KINDS, (data.observationsLimit, data.summariesLimit), strict=True):
        if limit == 0:
            found[model] = Candidates(limit, {}, [], None, newest=[])
            continue
        if not query:
            rows = repository.newest(
                session, model, store_id=store.id, profile_id=profile_id, limit=limit, **window
            )
            found[model] = Candidates(limit, {}, [], None, newest=rows)
            continue
        lexical = ranking.normalized_lexical(
            repository.lexical(
                session,
                model,
                store_id=store.id,
                profile_id=profile_id,
                terms=ranking.query_terms(query),
                **window,
            )
        )
        ids_with_vectors: list[str] = []
        blobs: list[bytes] = []
        if semantic:
            for memory_id, blob in repository.vectors(
                session, model, store_id=store.id, profile_id=profile_id, **window
            ):
                if blob is not None:  # written while embedding was off: lexical only
                    ids_with_vectors.append(memory_id)
                    blobs.append(blob)
        found[model] = Candidates(
            limit, lexical, ids_with_vectors, from_blobs(blobs) if semantic else None
        )
    return found


def choose(
    candidates: Candidates, query_vector: np.ndarray | None, threshold: float
) -> list[tuple[str, float]]:
    """The best (id, score) pairs, best first: fused scores at or above the
    threshold, at most `limit`."""
    semantic: dict[str, float] = {}
    if query_vector is not None and candidates.vectors is not None and candidates.ids:
        similarity = ranking.normalized_semantic(candidates.vectors @ query_vector)
        semantic = dict(zip(candidates.ids, (float(v) for v in similarity), strict=True))
    scores = ranking.fuse(candidates.lexical, semantic, semantic_on=query_vector is not None)
    ranked = sorted(
        ((memory_id, score) for memory_id, score in scores.items() if score > 0),
        key=lambda item: (-item[1], item[0]),
    )
    return [(m, round(s, 6)) for m, s in ranked if s >= threshold][: candidates.limit]


def fetch(
    session: Session, *, store: StoreRef, chosen: dict[Any, list[tuple[str, float]]]
) -> Recalled:
    found: dict[Any, list[tuple[Any, float | None]]] = {}
    for model in KINDS:
        pairs = chosen.get(model, [])
        rows = {
            row.id: row
            for row in repository.by_ids(
                session, model, store_id=store.id, ids=[m for m, _ in pairs]
            )
        }
        # A memory deleted since `gather` is left out.
        found[model] = [(rows[m], s) for m, s in pairs if m in rows]
    return Recalled(found[Observation], found[ConversationSummary])


def newest_only(gathered: dict[Any, Candidates]) -> Recalled | None:
    """The answer when there was no query (gather already read it)."""
    if any(c.newest is None for c in gathered.values()):
        return None
    return Recalled(
        [(row, None) for row in gathered[Observation].newest or []],
        [(row, None) for row in gathered[ConversationSummary].newest or []],
    )
