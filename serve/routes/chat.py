"""`POST /v1/chat`: the native API a support widget calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from ragtune.errors import RagtuneError
from serve.ratelimit import AnswerMeterDep
from serve.routes.deps import CallerDep, ChatDep, ConversationsDep
from serve.schemas import ChatRequest, ChatResponse, ErrorResponse, error_body
from serve.store.conversations import new_session_id

router = APIRouter(tags=["chat"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request (empty message, bad filter or session id)."},
    404: {"model": ErrorResponse, "description": "The session_id names a conversation another key or origin opened."},
    413: {"model": ErrorResponse, "description": "Message or prompt too long."},
    502: {"model": ErrorResponse, "description": "The model's reply did not match the answer schema twice."},
    503: {"model": ErrorResponse, "description": "No index yet, or the model server is down."},
}


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post(
    "/v1/chat",
    response_model=ChatResponse,
    responses=ERRORS
    | {200: {"content": {"text/event-stream": {}}, "description": "The answer, or with stream=true an event stream."}},
    summary="Answer a customer's question from the knowledge base.",
)
async def chat(request: ChatRequest, chat: ChatDep, meter: AnswerMeterDep, conversations: ConversationsDep, caller: CallerDep):
    # The conversation is the caller's before anything of it is read: another key's (or origin's) is a 404.
    session_id = request.session_id or new_session_id()
    await asyncio.to_thread(conversations.claim, session_id, caller)
    if not request.stream:
        response = await chat.answer(request.message, session_id, request.filters)
        meter.answered(response)
        return response
    events = chat.stream(request.message, session_id, request.filters)
    first = await events.__anext__()  # errors before the first byte still become proper HTTP errors
    meter.stream_started()  # from here a stream cut short is charged its reservation

    async def body() -> AsyncIterator[str]:
        item = first
        try:
            while True:
                kind, payload = item
                if kind != "delta":
                    meter.answered(payload)
                yield sse("delta", {"text": payload}) if kind == "delta" else sse("answer", payload.model_dump(mode="json"))
                item = await events.__anext__()
        except StopAsyncIteration:
            return
        except RagtuneError as exc:
            yield sse("error", error_body(exc) | {"status": exc.status_code})

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
