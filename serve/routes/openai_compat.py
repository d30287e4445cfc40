"""OpenAI-compatible `/v1/chat/completions` and `/v1/models`, so existing SDKs work unchanged.

The assistant message content is the answer JSON (the `Answer` contract); sources and the index
version ride along in the extra fields `sources` and `ragtune`. When streamed, the content pieces
concatenate to exactly that JSON: the answer text streams as it is generated, the rest of the
validated object follows at the end.

`usage` counts what the engine did for this answer: prompt tokens as its tokenizer renders the
prompt, completion tokens actually generated, both summed over a retry. An extractive answer or a
hand-off asks no model: its usage is 0 / 0. `temperature` and `max_tokens` (or
`max_completion_tokens`) are honoured, clamped to [0, 2] and to [16, llm.max_tokens]; a streamed
request with `stream_options.include_usage` gets OpenAI's final chunk with `usage` and no choices.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ragtune.errors import RagtuneError, UserInputError
from ragtune.prompt import Turn, answer_json
from serve.chat import AnswerOptions
from serve.ratelimit import AnswerMeterDep
from serve.routes.chat import ERRORS
from serve.routes.deps import ChatDep, SettingsDep
from serve.schemas import ChatResponse, Filters, OpenAIErrorResponse, Text, Usage, error_body

router = APIRouter(tags=["openai"])
# Every integer a client sends is bounded in the schema (an absurd one is a 422); the service clamps further.
MAX_TOKENS_PARAM = 1_000_000
# The same statuses as the native route, in OpenAI's error shape.
OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIErrorResponse, "description": spec["description"]} for status, spec in ERRORS.items()
}


class ContentPart(BaseModel):
    """One part of a message's content: text parts are read, others (images, ...) are ignored."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: Text | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: Text | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # top_p, n, stop, ... are accepted and ignored

    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    filters: Filters | None = None
    temperature: float | None = Field(None, description="Sampling temperature, clamped to [0, 2]; default llm.temperature.")
    max_tokens: int | None = Field(
        None,
        ge=1,
        le=MAX_TOKENS_PARAM,
        description="Most tokens to generate, clamped to [16, llm.max_tokens]; default chat.answer_max_tokens.",
    )
    max_completion_tokens: int | None = Field(
        None, ge=1, le=MAX_TOKENS_PARAM, description="OpenAI's newer name for max_tokens (wins if both are set)."
    )

    def options(self) -> AnswerOptions:
        return AnswerOptions(temperature=self.temperature, max_tokens=self.max_completion_tokens or self.max_tokens)


def _model_name(chat) -> str:
    return chat.engine.name if chat.engine is not None else "ragtune-retrieval-only"


def _history(messages: list[Message], limit: int) -> tuple[str, list[Turn]]:
    if len(messages) > limit:
        raise UserInputError(f"{len(messages)} messages sent; the limit is {limit} (chat.max_history_messages)")
    if messages[-1].role != "user":
        raise UserInputError("the last message must come from the user")
    turns: list[Turn] = []
    for m in messages[:-1]:
        if m.role == "user":
            turns.append(Turn("user", m.text()))
        elif m.role == "assistant":
            turns.append(Turn("assistant", _answer_text(m.text())))
    return messages[-1].text(), turns


def _answer_text(content: str) -> str:
    """An earlier assistant turn is our answer JSON; the history keeps only its text."""
    try:
        return str(json.loads(content)["answer"])
    except (ValueError, KeyError, TypeError, RecursionError):  # not our JSON (or JSON nested too deep to read)
        return content


def _extras(response: ChatResponse) -> dict[str, Any]:
    return {
        "sources": [s.model_dump(mode="json") for s in response.sources],
        "ragtune": {
            "mode": response.mode,
            "index_version": response.index_version,
            "session_id": response.session_id,
            "query": response.query,
            "context": response.context.model_dump(),
            "timings_ms": response.timings_ms,
        },
    }


@router.get("/v1/models", summary="The model answering (OpenAI format).")
async def models(chat: ChatDep) -> dict:
    return {"object": "list", "data": [{"id": _model_name(chat), "object": "model", "created": 0, "owned_by": "ragtune"}]}


@router.post(
    "/v1/chat/completions", responses=OPENAI_ERRORS, summary="OpenAI-compatible chat completion; content is the answer JSON."
)
async def completions(request: CompletionRequest, chat: ChatDep, settings: SettingsDep, meter: AnswerMeterDep):
    question, history = _history(request.messages, settings.chat.max_history_messages)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    model = _model_name(chat)
    options = request.options()
    if not request.stream:
        response = await chat.answer(question, filters=request.filters, history=history, options=options)
        meter.answered(response)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer_json(response.answer_only())},
                    "finish_reason": "stop",
                }
            ],
            "usage": response.usage.model_dump(exclude={"cached_prompt_tokens"}),
        } | _extras(response)

    events = chat.stream(question, filters=request.filters, history=history, options=options)
    include_usage = request.stream_options is not None and request.stream_options.include_usage
    first = await events.__anext__()
    meter.stream_started()  # from here a stream cut short is charged its reservation

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        } | extra
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def usage_chunk(usage: Usage) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": []}
        return f"data: {json.dumps(body | {'usage': usage.model_dump(exclude={'cached_prompt_tokens'})})}\n\n"

    async def body() -> AsyncIterator[str]:
        usage = Usage()
        yield chunk({"role": "assistant", "content": ""})
        sent = '{"answer": "'
        yield chunk({"content": sent})
        item = first
        try:
            while True:
                kind, payload = item
                if kind == "delta":
                    piece = json.dumps(payload, ensure_ascii=False)[1:-1]
                    sent += piece
                    yield chunk({"content": piece})
                else:
                    meter.answered(payload)
                    final = answer_json(payload.answer_only())
                    if not final.startswith(sent):
                        raise RagtuneError("the answer changed after a retry; request it again without streaming")
                    yield chunk({"content": final[len(sent) :]}, "stop", **_extras(payload))
                    usage = payload.usage
                item = await events.__anext__()
        except StopAsyncIteration:
            if include_usage:
                yield usage_chunk(usage)
            yield "data: [DONE]\n\n"
        except RagtuneError as exc:
            yield f"data: {json.dumps({'error': error_body(exc) | {'status': exc.status_code}})}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
