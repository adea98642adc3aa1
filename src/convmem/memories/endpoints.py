"""Observation, revision, conversation summary and Recall routes.

Texts are embedded on a worker thread before the write's transaction opens
(the model never runs on the event loop or inside a transaction); the write
then runs like any profile write (StoreWrite), Recall like a read."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Annotated, Any

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request

from convmem.kit.context import get_context
from convmem.kit.errors import ValidationFailed
from convmem.kit.http import JSONResponse
from convmem.kit.inputs import BoundedRoute
from convmem.kit.pagination import OrderBy, Page, PageRequest, PageToken, page_request
from convmem.kit.schemas import ERRORS, Accepted
from convmem.memories import service
from convmem.memories.embeddings import Embedder
from convmem.memories.schemas import (
    ConversationId,
    ObservationOut,
    ObservationPage,
    ObservationPatch,
    ObservationsIn,
    RecallIn,
    RecallOut,
    RevisionPage,
    Source,
    SummariesIn,
    SummaryOut,
    SummaryPage,
    SummaryPatch,
    observation_json,
    summary_json,
)
from convmem.stores.endpoints import StoreRead, StoreWrite

router = APIRouter(
    prefix="/v1/Stores/{storeId}/Profiles/{profileId}",
    route_class=BoundedRoute,
    responses=ERRORS,
    tags=["Memory"],
)
# Pages of memories hold at most 50 items (the spec's ObservationsMeta); a
# larger pageSize is served 50 at a time.
MAX_PAGE = 50


async def memory_page(
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=1000)] = 50,
    page_token: PageToken = None,
    order_by: OrderBy = None,
) -> PageRequest:
    return page_request(min(page_size, MAX_PAGE), page_token, order_by)


MemoryPage = Annotated[PageRequest, Depends(memory_page)]
ConversationParam = Annotated[ConversationId | None, Query(alias="conversationId")]


def embedder(request: Request) -> Embedder:
    found: Embedder = request.app.state.embedder
    return found


async def embed(request: Request, texts: list[str]) -> np.ndarray | None:
    """Vectors of `texts`, computed on a worker thread (None when embedding is off)."""
    if not texts:
        return None
    ctx = get_context(request)
    return await to_thread.run_sync(embedder(request).embed, texts, limiter=ctx.threads)


def page_meta(result: Page[Any], key: str, page: PageRequest) -> dict[str, Any]:
    # The spec's ObservationsMeta has pageSize >= 1: an empty page states the size asked for.
    meta = result.meta(key)
    meta["pageSize"] = meta["pageSize"] or page.page_size
    return meta


async def content_vector(request: Request, body: ObservationPatch | SummaryPatch) -> Any:
    """A PATCH body's new content as a vector (None when the content stays or
    embedding is off); a body that changes nothing is a 400."""
    if not body.model_fields_set:
        fields = ", ".join(type(body).model_fields)
        raise ValidationFailed(f"body: give at least one of {fields}")
    vectors = await embed(request, [body.content] if body.content is not None else [])
    return vectors[0] if vectors is not None else None


def accepted(message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=202)


# -- observations ---------------------------------------------------------------------


@router.post("/Observations", status_code=202, response_model=Accepted)
async def create_observations(
    profileId: str, body: ObservationsIn, request: Request, run: StoreWrite
) -> JSONResponse:
    """Create 1-10 observations; all or none are written."""
    vectors = await embed(request, [o.content for o in body.observations])
    await run(
        lambda s, store: service.create_observations(
            s, store=store, profile_id=profileId, items=body.observations, vectors=vectors
        )
    )
    return accepted("Observations creation accepted")


@router.get("/Observations", response_model=ObservationPage)
async def list_observations(
    profileId: str,
    run: StoreRead,
    page: MemoryPage,
    source: Annotated[Source | None, Query()] = None,
    created_after: Annotated[dt.datetime | None, Query(alias="createdAfter")] = None,
    created_before: Annotated[dt.datetime | None, Query(alias="createdBefore")] = None,
    conversation_id: ConversationParam = None,
) -> JSONResponse:
    filters = service.ObservationFilter(
        source=source,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        conversation_id=conversation_id,
    )
    result = await run(
        lambda s, store: service.list_observations(
            s, store=store, profile_id=profileId, page=page, filters=filters
        )
    )
    return JSONResponse(
        {
            "observations": [observation_json(row) for row in result.items],
            "meta": page_meta(result, "observations", page),
        }
    )


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


@router.get("/Observations/{observationId}", response_model=ObservationOut)
async def fetch_observation(profileId: str, observationId: str, run: StoreRead) -> JSONResponse:
    row = await run(
        lambda s, store: service.get_observation(
            s, store=store, profile_id=profileId, observation_id=observationId
        )
    )
    return JSONResponse(observation_json(row))


@router.patch("/Observations/{observationId}", status_code=202, response_model=Accepted)
async def patch_observation(
    profileId: str,
    observationId: str,
    body: ObservationPatch,
    request: Request,
    run: StoreWrite,
) -> JSONResponse:
    """Change the given fields; the previous full state becomes a revision."""
    vector = await content_vector(request, body)
    await run(
        lambda s, store: service.patch_observation(
            s,
            store=store,
            profile_id=profileId,
            observation_id=observationId,
            data=body,
            vector=vector,
        )
    )
    return accepted("Observation update accepted")


@router.delete("/Observations/{observationId}", status_code=202, response_model=Accepted)
async def delete_observation(profileId: str, observationId: str, run: StoreWrite) -> JSONResponse:
    await run(
        lambda s, store: service.delete_observation(
            s, store=store, profile_id=profileId, observation_id=observationId
        )
    )
    return accepted("Observation deletion accepted")


@router.get("/Observations/{observationId}/Revisions", response_model=RevisionPage)
async def list_revisions(
    profileId: str, observationId: str, run: StoreRead, page: MemoryPage
) -> JSONResponse:
    """Earlier full states of the observation, newest first."""
    result = await run(
        lambda s, store: service.list_revisions(
            s, store=store, profile_id=profileId, observation_id=observationId, page=page
        )
    )
    return JSONResponse(
        {
            "revisions": [observation_json(row) for row in result.items],
            "meta": page_meta(result, "revisions", page),
        }
    )


# -- summaries ------------------------------------------------------------------------


@router.post("/ConversationSummaries", status_code=202, response_model=Accepted)
async def create_summaries(
    profileId: str, body: SummariesIn, request: Request, run: StoreWrite
) -> JSONResponse:
    vectors = await embed(request, [s.content for s in body.summaries])
    await run(
        lambda s, store: service.create_summaries(
            s, store=store, profile_id=profileId, items=body.summaries, vectors=vectors
        )
    )
    return accepted("Summaries creation accepted")


@router.get("/ConversationSummaries", response_model=SummaryPage)
async def list_summaries(
    profileId: str, run: StoreRead, page: MemoryPage, conversation_id: ConversationParam = None
) -> JSONResponse:
    result = await run(
        lambda s, store: service.list_summaries(
            s, store=store, profile_id=profileId, page=page, conversation_id=conversation_id
        )
    )
    return JSONResponse(
        {
            "summaries": [summary_json(row) for row in result.items],
            "meta": page_meta(result, "summaries", page),
        }
    )


@router.get("/ConversationSummaries/{summaryId}", response_model=SummaryOut)
async def fetch_summary(profileId: str, summaryId: str, run: StoreRead) -> JSONResponse:
    row = await run(
        lambda s, store: service.get_summary(
            s, store=store, profile_id=profileId, summary_id=summaryId
        )
    )
    return JSONResponse(summary_json(row))


@router.patch("/ConversationSummaries/{summaryId}", status_code=202, response_model=Accepted)
async def patch_summary(
    profileId: str, summaryId: str, body: SummaryPatch, request: Request, run: StoreWrite
) -> JSONResponse:
    vector = await content_vector(request, body)
    await run(
        lambda s, store: service.patch_summary(
            s,
            store=store,
            profile_id=profileId,
            summary_id=summaryId,
            data=body,
            vector=vector,
        )
    )
    return accepted("Conversation summary update accepted")


@router.delete("/ConversationSummaries/{summaryId}", status_code=202, response_model=Accepted)
async def delete_summary(profileId: str, summaryId: str, run: StoreWrite) -> JSONResponse:
    await run(
        lambda s, store: service.delete_summary(
            s, store=store, profile_id=profileId, summary_id=summaryId
        )
    )
    return accepted("Conversation summary deletion accepted")


# -- recall ---------------------------------------------------------------------------


@router.post("/Recall", response_model=RecallOut, tags=["Retrieval"])
async def recall(profileId: str, body: RecallIn, request: Request, run: StoreRead) -> JSONResponse:
    """Observations and summaries for a query, ranked by hybrid (lexical +
    semantic) relevance; without a query, the newest first."""
    start = time.perf_counter()
    query = (body.query or "").strip()
    # The query's embedding (a worker thread) overlaps the database reads.
    semantic = bool(query) and embedder(request).model_id is not None
    embedding = asyncio.ensure_future(embed(request, [query])) if semantic else None
    try:
        gathered = await run(
            lambda s, store: service.gather(
                s, store=store, profile_id=profileId, data=body, semantic=semantic
            )
        )
        found = service.newest_only(gathered)
        if found is None:
            vectors = await embedding if embedding is not None else None
            vector = vectors[0] if vectors is not None else None
            chosen = {
                model: service.choose(candidates, vector, body.relevanceThreshold)
                for model, candidates in gathered.items()
            }
            found = await run(lambda s, store: service.fetch(s, store=store, chosen=chosen))
    finally:
        if embedding is not None and not embedding.done():
            embedding.cancel()
    observations = []
    for row, score in found.observations:
        item = observation_json(row)
        if score is not None:
            item["score"] = score
        observations.append(item)
    summaries = []
    for summary, score in found.summaries:
        item = summary_json(summary)
        if score is not None:
            item["score"] = score
        summaries.append(item)
    elapsed = int((time.perf_counter() - start) * 1000)
    return JSONResponse(
        {
            "observations": observations,
            "summaries": summaries,
            "communications": [],
            "meta": {"queryTime": elapsed},
        }
    )
