"""`GET /v1/admin/conversations`: recent conversations with the feedback on their answers.

The router carries its full path and no key check of its own: the app includes it under the
admin-key dependency, with the rest of /v1/admin.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from serve.routes.deps import ConversationsDep
from serve.schemas import ErrorResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"])
# Every integer a client sends is bounded, so an absurd one is a 422 here, never a store's overflow (a 500).
MAX_OFFSET = 1_000_000_000


class FeedbackOut(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None
    principal: str | None = Field(description="Name of the key the rating came with (null on an open API).")
    created_at: float = Field(description="Unix seconds.")


class TurnOut(BaseModel):
    turn: int = Field(description="0-based index of the answer in its session.")
    question: str
    answer: str
    created_at: float = Field(description="Unix seconds.")
    feedback: FeedbackOut | None


class ConversationOut(BaseModel):
    session_id: str
    started_at: float = Field(description="Unix seconds.")
    updated_at: float = Field(description="Unix seconds of the latest answer.")
    turns: list[TurnOut]


class ConversationList(BaseModel):
    total: int = Field(description="Conversations matching the filter, across all pages.")
    limit: int
    offset: int
    conversations: list[ConversationOut] = Field(description="Most recently active first.")


ERRORS: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "The conversation store is not reachable."},
}


@router.get(
    "/conversations",
    response_model=ConversationList,
    responses=ERRORS,
    summary="Recent conversations, newest first, with the customers' ratings of each answer.",
)
async def list_conversations(
    conversations: ConversationsDep,
    limit: int = Query(20, ge=1, le=200, description="Conversations per page."),
    offset: int = Query(0, ge=0, le=MAX_OFFSET, description="Conversations to skip (limit * page)."),
    rating: Literal["up", "down"] | None = Query(None, description="Only conversations with an answer rated so."),
) -> ConversationList:
    page = await asyncio.to_thread(conversations.recent, limit, offset, rating)
    return ConversationList(
        total=page.total,
        limit=limit,
        offset=offset,
        conversations=[ConversationOut.model_validate(asdict(c)) for c in page.conversations],
    )
