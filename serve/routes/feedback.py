"""`POST /v1/feedback`: a customer rates one answer (thumbs up or down, an optional comment)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from serve.routes.deps import CallerDep, ConversationsDep
from serve.schemas import ErrorResponse, Text
from serve.store.conversations import MAX_COMMENT_CHARS, Rating

# Bounded so an absurd turn is a 422, never an integer past the store's 64-bit range (a 500).
MAX_TURN = 1_000_000

router = APIRouter(tags=["chat"])


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"session_id": "c0ffee", "turn": 0, "rating": "down", "comment": "Wrong plan."}]},
    )

    session_id: str = Field(
        description="The session_id of the answer, as the chat response gave it.", pattern=r"^[A-Za-z0-9_.:-]{1,64}$"
    )
    turn: int = Field(ge=0, le=MAX_TURN, description="The answer's `turn` from the chat response (0 for the first answer).")
    rating: Rating = Field(description="up: helpful; down: not helpful.")
    comment: Text | None = Field(
        None, max_length=MAX_COMMENT_CHARS, description="What was wrong or right, in the customer's words."
    )


class FeedbackResponse(BaseModel):
    session_id: str
    turn: int
    rating: Rating
    comment: str | None
    created_at: float = Field(description="When it was recorded (unix seconds).")


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorResponse,
        "description": "No such session for this key and origin, or the session has no answer with that turn.",
    },
    503: {"model": ErrorResponse, "description": "The conversation store is not reachable."},
}


@router.post(
    "/v1/feedback",
    response_model=FeedbackResponse,
    responses=ERRORS,
    summary="Rate an answer; a later rating of the same answer replaces the earlier one.",
)
async def feedback(
    body: FeedbackRequest, conversations: ConversationsDep, caller: CallerDep, request: Request
) -> FeedbackResponse:
    principal = getattr(getattr(request.state, "principal", None), "name", None)
    stored = await asyncio.to_thread(
        conversations.add_feedback, body.session_id, body.turn, body.rating, body.comment, principal, caller
    )
    return FeedbackResponse(
        session_id=body.session_id, turn=body.turn, rating=body.rating, comment=stored.comment, created_at=stored.created_at
    )
