"""Shared fixtures: every test gets its own data dir; the real embedding model is loaded once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "knowledge"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Point all state at tmp_path and hide the developer's own ragtune settings."""
    for key in list(os.environ):
        if key.startswith("RAGTUNE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAGTUNE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(scope="session")
def embedder():
    from ragtune.embedding import Embedder
    from ragtune.settings import EmbeddingSettings

    return Embedder(EmbeddingSettings())


@pytest.fixture
def settings(tmp_path):
    from ragtune.settings import load_settings

    return load_settings(environ={"RAGTUNE_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def kb_copy(tmp_path) -> Path:
    """A private copy of the bundled knowledge base that a test may edit."""
    target = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE, target)
    return target


@pytest.fixture(scope="session")
def knowledge_index(tmp_path_factory, embedder):
    """The bundled knowledge/ ingested once for the session (read-only for tests)."""
    from ingest.pipeline import run_ingest
    from ingest.sources import scan_folder
    from ragtune.index import KnowledgeIndex
    from ragtune.settings import load_settings

    data = tmp_path_factory.mktemp("kb-index")
    # No per-address request limit: the serving tests share this store and make far more than 30
    # requests a minute from one address; tests/serve/test_rate_limits.py sets its own limits.
    settings = load_settings(environ={"RAGTUNE_DATA_DIR": str(data), "RAGTUNE_LIMITS__REQUESTS_PER_ADDRESS": "0"})
    items, failures = scan_folder(KNOWLEDGE, settings.ingest)
    report = run_ingest(settings, items, failures, embedder=embedder)
    assert not report.failed, report.failed
    return settings, KnowledgeIndex(settings)


@pytest.fixture(scope="session")
def retriever(knowledge_index, embedder):
    from ragtune.retriever import Retriever

    settings, index = knowledge_index
    return Retriever(index, embedder, settings.retrieval)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    from .tiny_model import build_tiny_gguf

    return build_tiny_gguf(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def serve_settings(knowledge_index, tiny_gguf, tmp_path):
    """Settings over the session's knowledge index and the tiny model, in generative answer mode: the
    tiny model writes noise, which auto mode would (rightly) replace by the extractive answer, and
    these tests are about the generation path itself."""
    settings, _ = knowledge_index
    return settings.model_copy(
        update={
            "llm": settings.llm.model_copy(
                update={"engine": "llamacpp", "gguf_path": tiny_gguf, "max_tokens": 1024, "n_ctx": 4096}
            ),
            "chat": settings.chat.model_copy(update={"answer_mode": "generative", "answer_max_tokens": 1024}),
        }
    )


@pytest.fixture(scope="session")
def pg_server():
    """A real Postgres (the `pgserver` wheel), started once per session, and only when a test asks
    for it: initdb and start take about 4 s here.

    Its data lives outside pytest's temporary folders: run as root, pgserver hands the folder to an
    unprivileged user, and a concurrent pytest run resets its own base folder to mode 0700, which
    would lock that user out of a running server.
    """
    import tempfile
    import warnings

    with warnings.catch_warnings():  # platformdirs warns on import when XDG_RUNTIME_DIR is unset (CI, root)
        warnings.simplefilter("ignore")
        import pgserver  # the dev extra

        server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="ragtune-pg-")), cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty Postgres database for this test: its postgresql:// URL (dropped afterwards)."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.get_uri(name)
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """The API store's URL, once per dialect: a SQLite file in tmp_path, then a Postgres database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conversations.sqlite3'}"
    return request.getfixturevalue("pg_url")
