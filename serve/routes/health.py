"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ragtune.errors import RagtuneError
from serve.routes.deps import ChatDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up.")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Whether answers can be served, and in which mode.")
async def readyz(chat: ChatDep) -> JSONResponse:
    # Without a model every answer is extractive: the evidence sentences, verbatim, or a hand-off.
    body: dict = {"mode": "extractive", "model": None, "engine": None, "answer_mode": chat.settings.chat.answer_mode}
    try:
        body["index_version"] = chat.retriever.snapshot().version
        # The snapshot is files on disk; its vectors are in Chroma, which may be a server that is down.
        await asyncio.to_thread(chat.retriever.index.store.heartbeat)
    except RagtuneError as exc:
        return JSONResponse(status_code=503, content=body | {"status": "not_ready", "detail": str(exc)})
    if chat.engine is not None:
        body |= {"engine": chat.engine.kind, "model": chat.engine.name}
        if chat.settings.chat.answer_mode == "extractive":
            pass  # the model is never asked
        elif await chat.engine_ready():
            body["mode"] = "generated"
        else:
            reason = getattr(chat.engine, "unavailable_reason", None) or "not available"
            body["detail"] = f"{chat.engine.kind} model {chat.engine.name}: {reason}; answering extractively until it is"
    return JSONResponse(status_code=200, content=body | {"status": "ready"})
