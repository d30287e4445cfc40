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
