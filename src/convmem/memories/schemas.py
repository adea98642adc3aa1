from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from convmem.kit.schemas import RequestModel, timestamp
from convmem.memories.models import ConversationSummary, Observation, ObservationRevision

Content = Annotated[str, Field(min_length=1, max_length=4096)]
Source = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-zA-Z0-9 _.-]+$")]
ConversationId = Annotated[str, Field(pattern=r"^conv_conversation_[0-7][0-9a-z]{25}$")]


def _aware(value: dt.datetime) -> dt.datetime:
    # A time without an offset is taken as UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


When = Annotated[dt.datetime, AfterValidator(_aware)]


class ObservationIn(RequestModel):
    content: Content
    source: Source
    occurredAt: When
    conversationIds: Annotated[list[ConversationId], Field(max_length=10)] = Field(
        default_factory=list
    )


class ObservationsIn(RequestModel):
    observations: Annotated[list[ObservationIn], Field(min_length=1, max_length=10)]


class ObservationPatch(RequestModel):
    content: Content | None = None
    source: Source | None = None
    occurredAt: When | None = None
    conversationIds: Annotated[list[ConversationId], Field(max_length=10)] | None = None


class SummaryIn(RequestModel):
    conversationId: ConversationId
    content: Content
    occurredAt: When
    source: Source | None = None


class SummariesIn(RequestModel):
    summaries: Annotated[list[SummaryIn], Field(min_length=1, max_length=10)]


class SummaryPatch(RequestModel):
    conversationId: ConversationId | None = None
    content: Content | None = None
    occurredAt: When | None = None
    source: Source | None = None


class RecallIn(RequestModel):
    query: Annotated[str, Field(max_length=1024)] | None = None
    conversationId: ConversationId | None = None
    beginDate: When | None = None
    endDate: When | None = None
    communicationsLimit: Annotated[int, Field(ge=0, le=100)] = 0
    observationsLimit: Annotated[int, Field(ge=0, le=100)] = 20
    summariesLimit: Annotated[int, Field(ge=0, le=100)] = 5
    relevanceThreshold: Annotated[float, Field(ge=0, le=1)] = 0.0


# -- responses ------------------------------------------------------------------------


class MemoryMeta(BaseModel):
    key: str
    pageSize: int
    nextToken: str | None = None
    previousToken: str | None = None


class ObservationOut(BaseModel):
    id: str
    content: str
    source: str
    occurredAt: str
    conversationIds: list[str] | None = None
    createdAt: str
    updatedAt: str
    score: float | None = None


class ObservationPage(BaseModel):
    observations: list[ObservationOut]
    meta: MemoryMeta


class RevisionPage(BaseModel):
    revisions: list[ObservationOut]
    meta: MemoryMeta


class SummaryOut(BaseModel):
    id: str
    conversationId: str
    content: str
    source: str | None = None
    occurredAt: str
    createdAt: str
    updatedAt: str
    score: float | None = None


class SummaryPage(BaseModel):
    summaries: list[SummaryOut]
    meta: MemoryMeta


class RecallOut(BaseModel):
    observations: list[ObservationOut]
    summaries: list[SummaryOut]
    communications: list[Any]
    meta: dict[str, int]


def observation_json(row: Observation | ObservationRevision) -> Any:
    """An observation, or one of its revisions (the full state it had)."""
    body: dict[str, Any] = {
        "id": row.id if isinstance(row, Observation) else row.observation_id,
        "content": row.content,
        "source": row.source,
        "occurredAt": timestamp(row.occurred_at),
    }
    if row.conversation_ids:
        body["conversationIds"] = list(row.conversation_ids)
    body["createdAt"] = timestamp(row.created_at)
    body["updatedAt"] = timestamp(row.updated_at)
    return body


def summary_json(row: ConversationSummary) -> Any:
    body: dict[str, Any] = {
        "id": row.id,
        "conversationId": row.conversation_id,
        "content": row.content,
    }
    if row.source is not None:
        body["source"] = row.source
    body.update(
        occurredAt=timestamp(row.occurred_at),
        createdAt=timestamp(row.created_at),
        updatedAt=timestamp(row.updated_at),
    )
    return body
