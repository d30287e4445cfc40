"""The FastAPI app factory and its lifespan.

`create_app(settings, engine=..., retriever=...)` builds an app with no module-level state; tests
pass other collaborators. The lifespan opens the conversation store, the retriever and the engine
and closes them again. Errors become HTTP errors at the edge, in one shape (`serve/errors.py`);
request bodies are size-limited while they are read (`serve/body_limit.py`).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ragtune import __version__
from ragtune.embedding import Embedder
from ragtune.errors import RagtuneError
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Retriever
from ragtune.settings import Settings
from serve.body_limit import BodyLimitMiddleware
from serve.chat import ChatService
from serve.conversations import ConversationStore
from serve.engines import Engine, create_engine
from serve.errors import error_content, install_error_handlers
from serve.store import Database

log = logging.getLogger("ragtune.serve")
_UNSET: Any = object()


async def _warm_up(retriever: Retriever, engine: Engine | None) -> None:
    """Load the embedding and answer models before the first request, not during it."""
    try:
        await asyncio.to_thread(retriever.embedder.embed_query, "warm up")
    except RagtuneError as exc:
        log.warning("embedding model not loaded at start: %s", exc)
    if engine is not None and not await engine.ready():
        log.warning(
            "%s model %s is not available (%s); answering extractively (the evidence sentences) until it is",
            engine.kind,
            engine.name,
            getattr(engine, "unavailable_reason", None),
        )
    elif engine is not None:
        log.info("answering with %s model %s", engine.kind, engine.name)


def create_app(
    settings: Settings, *, engine: Engine | None = _UNSET, retriever: Retriever | None = None, warm_up: bool = True
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        db = Database.open(settings.store.url, Path(settings.data_dir))
        app.state.db = db
        store = ConversationStore(Path(settings.data_dir) / "conversations.sqlite3")
        the_retriever = retriever or Retriever(KnowledgeIndex(settings), Embedder(settings.embedding), settings.retrieval)
        the_engine = create_engine(settings) if engine is _UNSET else engine
        app.state.chat = ChatService(settings, the_retriever, the_engine, store)
        app.state.settings = settings
        if warm_up:
            await _warm_up(the_retriever, the_engine)
        try:
            yield
        finally:
            if the_engine is not None:
                await the_engine.aclose()
            store.close()
            db.close()

    app = FastAPI(
        title="ragtune",
        version=__version__,
        summary="Grounded JSON answers for customer-support widgets.",
        description="Retrieval over the company's documents plus a tuned model. `POST /v1/chat` is the native API; "
        "`/v1/chat/completions` and `/v1/models` follow the OpenAI API so existing SDKs work unchanged.",
        lifespan=lifespan,
    )
    # Inside CORS, so a 413 still carries the headers a browser needs to show it.
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(settings.server.max_body_mb * 1048576), error_content=error_content)
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.server.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )

    install_error_handlers(app)

    from serve.routes import chat, health, openai_compat, static

    app.include_router(health.router)
    app.include_router(chat.router)
    app.include_router(openai_compat.router)
    app.include_router(static.router)
    return app


def run_server(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
