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
        body |= {"engine": chat.engine.kind, "model": chat.engine.name, "adapter": getattr(chat.engine, "adapter_name", None)}
        if chat.settings.chat.answer_mode == "extractive":
            pass  # the model is never asked
        elif await chat.engine_ready():
            rate, wanted = chat.model_pass_rate(), chat.settings.chat.min_model_pass_rate
            accuracy, wanted_accuracy = chat.model_phrased_accuracy(), chat.settings.chat.min_model_fact_accuracy
            body["model_pass_rate"], body["model_phrased_accuracy"] = rate, accuracy
            if chat.settings.chat.answer_mode == "generative" or await chat.model_allowed():
                body["mode"] = "generated"
            elif rate is None or rate < wanted:
                measured = "never measured" if rate is None else f"measured at {rate:.2f}"
                body["detail"] = (
                    f"{chat.engine.kind} model {chat.engine.name}: verified-pass rate {measured}, below "
                    f"chat.min_model_pass_rate {wanted}; answering extractively (run `ragtune train eval` on a tuned model)"
                )
            else:
                measured = "never measured" if accuracy is None else f"measured at {accuracy:.2f}"
                body["detail"] = (
                    f"{chat.engine.kind} model {chat.engine.name}: the answers it phrased held the right fact {measured}, "
                    f"below chat.min_model_fact_accuracy {wanted_accuracy}; answering extractively"
                )
        else:
            reason = getattr(chat.engine, "unavailable_reason", None) or "not available"
            body["detail"] = f"{chat.engine.kind} model {chat.engine.name}: {reason}; answering extractively until it is"
    return JSONResponse(status_code=200, content=body | {"status": "ready"})
