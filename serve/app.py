"""The FastAPI app factory and its lifespan.

`create_app(settings, engine=..., retriever=..., ingester=...)` builds an app with no module-level
state; tests pass other collaborators. The ingester (ingest/, wired in by the CLI: serve never
imports it) is what the admin API's uploads and re-ingests run; without one those routes answer
503. The lifespan opens the conversation store, the retriever, the engine and the admin service
and closes them again. Errors become HTTP errors at the edge, in one shape (`serve/errors.py`);
request bodies are size-limited while they are read (`serve/body_limit.py`). Access control (API
keys, origins, `serve/auth.py`, `serve/cors.py`) and rate limits (`serve/ratelimit.py`) are wired
here, as router dependencies. Every request gets an id, one log line and its metrics
(`serve/request_log.py`, `serve/metrics.py`: `app.state.metrics`, served at `/metrics`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
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
from serve.admin.models import ModelAdmin
from serve.admin.ports import Ingester
from serve.admin.service import AdminService
from serve.auth import AccessControl, check_bind, require_admin, require_chat_access
from serve.body_limit import BodyLimitMiddleware
from serve.chat import ChatService
from serve.clients import ClientAddresses
from serve.cors import KeyedCORSMiddleware
from serve.engines import Engine, create_engine
from serve.errors import error_content, install_error_handlers
from serve.events import Events
from serve.hosts import HostCheckMiddleware
from serve.listen import bind_socket
from serve.metrics import Metrics
from serve.ratelimit import RateLimiter, answer_reservation, limit_requests
from serve.request_log import RequestAnnotator, RequestLogMiddleware, configure_logging
from serve.schemas import ErrorResponse, OpenAIErrorResponse
from serve.send_timeout import SendTimeoutMiddleware
from serve.store import Database
from serve.store.conversations import ConversationStore
from serve.store.db import StoreUnavailable
from serve.store.limits import LimitStore

log = logging.getLogger("ragtune.serve")
_UNSET: Any = object()
# Router dependencies. Chat routes (/v1/chat, /v1/chat/completions, /v1/models, /v1/feedback): a widget
# or admin key, rate-limited. The admin API (/v1/admin/...): an admin key.
CHAT_ACCESS = [Depends(require_chat_access), Depends(limit_requests)]
ADMIN_ACCESS = [Depends(require_admin)]
# A request the schema refuses is a 422 in the API's own error shape (serve/errors.py), not FastAPI's
# default list of problems; the schema says so, so clients and the schema fuzzer expect it.
INVALID = "The request does not match the schema (the message names the field and what is wrong)."
NATIVE_422: dict[int | str, dict[str, Any]] = {422: {"model": ErrorResponse, "description": INVALID}}
OPENAI_422: dict[int | str, dict[str, Any]] = {422: {"model": OpenAIErrorResponse, "description": INVALID}}


def _log_index(retriever: Retriever) -> None:
    try:
        manifest = retriever.index.current_manifest()
    except RagtuneError as exc:
        log.warning("index not readable at start: %s", exc)
        return
    if manifest is None:
        log.warning(
            "no index published in %s: run `ragtune ingest`; /readyz answers 503 and chat 503 until one is",
            retriever.index.settings.data_dir,
        )
    else:
        log.info("index version %s: %d documents, %d chunks", manifest.version, len(manifest.documents), manifest.chunk_count)


async def _warm_up(retriever: Retriever, engine: Engine | None) -> None:
    """Load the embedding and answer models before the first request, not during it, saying so."""
    started = time.monotonic()
    log.info("loading embedding model %s", retriever.embedder.settings.model)
    try:
        await asyncio.to_thread(retriever.embedder.embed_query, "warm up")
        log.info("embedding model loaded in %.1f s", time.monotonic() - started)
    except RagtuneError as exc:
        log.warning("embedding model not loaded at start: %s", exc)
    if engine is None:
        log.info("no answer model (llm.engine none, or none found): answers are extractive")
        return
    started = time.monotonic()
    log.info("loading answer engine: %s model %s, then its self-check", engine.kind, engine.name)
    if not await engine.ready():
        log.warning(
            "%s model %s is not available (%s); answering extractively (the evidence sentences) until it is",
            engine.kind,
            engine.name,
            getattr(engine, "unavailable_reason", None),
        )
    else:
        log.info(
            "answer engine ready in %.1f s: %s model %s passed its self-check",
            time.monotonic() - started,
            engine.kind,
            engine.name,
        )


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = _UNSET,
    retriever: Retriever | None = None,
    warm_up: bool = True,
    ingester: Ingester | None = None,
) -> FastAPI:
    access = AccessControl(settings)  # a ConfigError here when keys are required and none is configured

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.monotonic()
        (log.warning if access.open else log.info)("%s", access.describe())
        db = Database.open(settings.store.url, Path(settings.data_dir), pool_size=settings.store.pool_size)
        app.state.db = db
        app.state.limiter = RateLimiter(
            LimitStore(db),
            settings.limits,
            ClientAddresses(settings.server.trusted_proxies),
            reservation=answer_reservation(settings),
        )
        store = ConversationStore(db)
        app.state.conversations = store
        the_retriever = retriever or Retriever(KnowledgeIndex(settings), Embedder(settings.embedding), settings.retrieval)
        the_engine = create_engine(settings) if engine is _UNSET else engine
        events = Events(metrics, RequestAnnotator(settings.observability.log_messages))
        app.state.chat = ChatService(settings, the_retriever, the_engine, store, events=events)
        metrics.serving(
            index_version=the_retriever.index.current_version,
            model=lambda: (the_engine.kind, the_engine.name) if the_engine is not None else None,
        )
        app.state.settings = settings
        try:
            await asyncio.to_thread(db.migrate)  # the store's schema to the newest migration (serve/store/migrations)
        except StoreUnavailable as exc:  # a store down at start costs requests a 503 until it is back, not the start
            log.warning("conversation store not usable at start: %s", exc)
        admin_service = AdminService(settings, db, the_retriever, ingester, on_job_finished=metrics.ingest_job_finished)
        try:
            await asyncio.to_thread(admin_service.start)  # jobs table; jobs and uploads a killed process left unfinished
        except RagtuneError as exc:  # the chat still serves; the admin routes answer the store's error
            log.warning("admin jobs not set up: %s", exc)
        app.state.admin = admin_service
        metrics.serving(the_retriever.index.current_version, flagged=admin_service.flag_counts)
        app.state.model_admin = ModelAdmin(settings, the_engine)
        _log_index(the_retriever)
        if warm_up:
            await _warm_up(the_retriever, the_engine)
        where = getattr(app.state, "url", None)  # set by run_server; a test client has none
        version = the_retriever.index.current_version() or "none"
        log.info("ready in %.1f s%s (index %s)", time.monotonic() - started, f": {where}" if where else "", version)
        try:
            yield
        finally:
            await asyncio.to_thread(admin_service.close)
            if the_engine is not None:
                await the_engine.aclose()
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
    metrics = Metrics()
    app.state.metrics = metrics
    # Innermost: a client that stops reading loses its response (and frees its answer slot).
    app.add_middleware(SendTimeoutMiddleware, timeout_s=settings.limits.stream_send_timeout_s)
    # Inside CORS, so a 413 still carries the headers a browser needs to show it.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=int(settings.server.max_body_mb * 1048576),
        error_content=error_content,
        overrides=[("/v1/admin/documents", int(settings.server.max_upload_mb * 1048576), "server.max_upload_mb")],
    )
    app.add_middleware(KeyedCORSMiddleware, policy=access.origins, error_content=error_content)
    # Before CORS and keys: a Host this server does not answer under (DNS rebinding) gets 400 (serve/hosts.py).
    app.add_middleware(HostCheckMiddleware, policy=access.hosts, error_content=error_content)
    # Outermost: every response, a 413 or a CORS refusal included, carries the request id and is logged.
    app.add_middleware(RequestLogMiddleware, metrics=metrics, error_content=error_content)

    install_error_handlers(app)

    from serve.routes import admin, admin_conversations, chat, feedback, health, openai_compat, static
    from serve.routes import metrics as metrics_route

    app.include_router(health.router)
    app.include_router(chat.router, dependencies=CHAT_ACCESS, responses=NATIVE_422)
    app.include_router(feedback.router, dependencies=CHAT_ACCESS, responses=NATIVE_422)
    app.include_router(openai_compat.router, dependencies=CHAT_ACCESS, responses=OPENAI_422)
    app.include_router(metrics_route.router, dependencies=ADMIN_ACCESS)  # Prometheus scrapes with an admin key
    app.include_router(admin.router, dependencies=ADMIN_ACCESS, responses=NATIVE_422)
    app.include_router(admin_conversations.router, dependencies=ADMIN_ACCESS, responses=NATIVE_422)
    app.include_router(static.router)  # open: /widget.js, /demo, /admin (the console's API calls need the admin key)
    return app


def run_server(
    settings: Settings, host: str, port: int, ingester: Ingester | None = None, sock: socket.socket | None = None
) -> None:
    """Serve on host:port, or on `sock` already bound there (`ragtune serve` binds before its slow imports)."""
    import uvicorn

    check_bind(settings, host)  # no keys: loopback only
    sock = sock or bind_socket(host, port)  # before anything slow is loaded
    configure_logging(settings.observability)
    log.info("ragtune %s: bound %s:%d; starting (store, index, embedding model, answer engine)", __version__, host, port)
    trusted = settings.server.trusted_proxies
    # uvicorn's own access log is replaced by ragtune.access (one structured line per request). Proxy
    # headers are read from server.trusted_proxies only (uvicorn would trust 127.0.0.1 by default).
    app = create_app(settings, ingester=ingester)
    app.state.url = f"http://{f'[{host}]' if ':' in host and not host.startswith('[') else host}:{port}"
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=",".join(trusted) if trusted else "",
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
