"""The FastAPI app factory and its lifespan.

`create_app(settings, engine=..., retriever=...)` builds an app with no module-level state; tests
pass other collaborators. The lifespan opens the conversation store, the retriever and the engine
and closes them again. Errors become HTTP errors at the edge, in one shape (`serve/errors.py`);
request bodies are size-limited while they are read (`serve/body_limit.py`). Access control (API
keys, origins, `serve/auth.py`, `serve/cors.py`) and rate limits (`serve/ratelimit.py`) are wired
here, as router dependencies.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI

from ragtune import __version__
from ragtune.embedding import Embedder
from ragtune.errors import RagtuneError
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Retriever
from ragtune.settings import Settings
from serve.auth import AccessControl, check_bind, require_admin, require_chat_access
from serve.body_limit import BodyLimitMiddleware
from serve.chat import ChatService
from serve.clients import ClientAddresses
from serve.conversations import ConversationStore
from serve.cors import KeyedCORSMiddleware
from serve.engines import Engine, create_engine
from serve.errors import error_content, install_error_handlers
from serve.ratelimit import RateLimiter, limit_requests
from serve.store import Database
from serve.store.limits import LimitStore

log = logging.getLogger("ragtune.serve")
_UNSET: Any = object()
# Router dependencies. Chat routes (/v1/chat, /v1/chat/completions, /v1/models, /v1/feedback): a widget
# or admin key, rate-limited. The admin API: app.include_router(admin.router, dependencies=ADMIN_ACCESS).
CHAT_ACCESS = [Depends(require_chat_access), Depends(limit_requests)]
ADMIN_ACCESS = [Depends(require_admin)]


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
    access = AccessControl(settings)  # a ConfigError here when keys are required and none is configured

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        (log.warning if access.open else log.info)("%s", access.describe())
        db = Database.open(settings.store.url, Path(settings.data_dir))
        app.state.db = db
        app.state.limiter = RateLimiter(LimitStore(db), settings.limits, ClientAddresses(settings.server.trusted_proxies))
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
    app.state.access = access
    # Inside CORS, so a 413 still carries the headers a browser needs to show it.
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(settings.server.max_body_mb * 1048576), error_content=error_content)
    app.add_middleware(KeyedCORSMiddleware, policy=access.origins, error_content=error_content)

    install_error_handlers(app)

    from serve.routes import chat, health, openai_compat, static

    app.include_router(health.router)
    app.include_router(chat.router, dependencies=CHAT_ACCESS)
    app.include_router(openai_compat.router, dependencies=CHAT_ACCESS)
    app.include_router(static.router)  # open: /widget.js, /demo, /admin (the console's API calls need the admin key)
    # Still to come: feedback.router with CHAT_ACCESS, admin.router with ADMIN_ACCESS.
    return app


def run_server(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    check_bind(settings, host)  # no keys: loopback only
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
