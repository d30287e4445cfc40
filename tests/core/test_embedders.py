"""The tuned-retriever registry: versions, the pointer and its history, which embedder ingestion
uses, and the retriever embedding each query in the space of the version it searches."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from ragtune.embedders import (
    FUSION_FILE,
    EmbedderRegistry,
    Fusion,
    effective_embedding,
    read_fusion,
    resolve_embedding,
    write_fusion,
)
from ragtune.embedding import Embedder, bundled_minilm_path
from ragtune.errors import NotFoundError, UserInputError
from ragtune.index import Manifest
from ragtune.retriever import Retriever


@pytest.fixture
def model_copy(tmp_path):
    target = tmp_path / "tuned"
    shutil.copytree(bundled_minilm_path(), target)
    return target


def test_versions_are_numbered_copied_and_pointed_to_with_a_history(settings, model_copy, tmp_path):
    registry = EmbedderRegistry(settings.data_dir)
    v1 = registry.register(model_copy, "all-MiniLM-L6-v2", "abc", {"lr": 1}, {"dev": 0.5}, tmp_path)
    v2 = registry.register(model_copy, "all-MiniLM-L6-v2")
    assert (v1.version, v2.version) == ("retriever-v1", "retriever-v2")
    assert (settings.data_dir / "embedders" / "retriever-v1" / "model" / "modules.json").is_file()
    shutil.rmtree(model_copy)  # the registry holds its own copy
    assert registry.get("retriever-v1").eval == {"dev": 0.5}
    registry.update_eval("retriever-v1", {"company": {"hit@3": 1.0}})
    assert registry.get("retriever-v1").eval == {"dev": 0.5, "company": {"hit@3": 1.0}}

    assert registry.current() is None and effective_embedding(settings) == settings.embedding
    registry.point_to("retriever-v1")
    registry.point_to("retriever-v2")
    assert registry.current().version == "retriever-v2" and registry.previous() == "retriever-v1"
    assert effective_embedding(settings).model == registry.get("retriever-v2").model_dir
    before = registry.pointer()
    registry.point_to("retriever-v1", rollback=True)
    assert registry.current().version == "retriever-v1" and registry.previous() is None
    registry.restore(before)
    assert registry.current().version == "retriever-v2"
    with pytest.raises(NotFoundError, match="retriever-v9.*known: retriever-v1, retriever-v2"):
        registry.point_to("retriever-v9")
    with pytest.raises(UserInputError, match="not a sentence-transformers model folder"):
        registry.register(tmp_path, "x")


def test_a_deployed_version_of_another_base_than_the_configured_model_is_not_used(settings, model_copy):
    registry = EmbedderRegistry(settings.data_dir)
    registry.register(model_copy, "BAAI/bge-small-en-v1.5")
    registry.point_to("retriever-v1")
    assert effective_embedding(settings) == settings.embedding  # embedding.model was changed since: it wins


def test_the_cli_names_of_an_embedder(settings, model_copy):
    registry = EmbedderRegistry(settings.data_dir)
    registry.register(model_copy, "all-MiniLM-L6-v2")
    assert resolve_embedding(settings, "base") == settings.embedding
    assert resolve_embedding(settings, "retriever-v1").model == registry.get("retriever-v1").model_dir
    assert resolve_embedding(settings, str(model_copy)).model == str(model_copy.resolve())
    with pytest.raises(UserInputError, match="--embedder takes"):
        resolve_embedding(settings, "no-such-thing")


def _manifest(model: str, fingerprint: str) -> Manifest:
    return Manifest("v1", "", "c", model, fingerprint, {})


def test_the_retriever_embeds_in_the_space_its_index_version_names(knowledge_index, embedder, model_copy):
    settings, index = knowledge_index
    retriever = Retriever(index, embedder, settings.retrieval)
    assert retriever.embedder_for(index.current_manifest()) is embedder
    tuned = Embedder(settings.embedding.model_copy(update={"model": str(model_copy)}))
    found = retriever.embedder_for(_manifest(str(model_copy), tuned.fingerprint()))
    assert found is not None and found.settings.model == str(model_copy)
    assert retriever.embedder_for(_manifest(str(model_copy), tuned.fingerprint())) is found  # loaded once
    # A version built with other settings (here a query prefix) has no embedder here: None, not a wrong one.
    prefixed = Embedder(settings.embedding.model_copy(update={"model": str(model_copy), "document_prefix": "passage: "}))
    assert retriever.embedder_for(_manifest(str(model_copy), prefixed.fingerprint())) is None


def test_fusion_weights_are_carried_by_the_model_folder_and_recorded_in_the_registry(settings, model_copy):
    registry = EmbedderRegistry(settings.data_dir)
    entry = registry.register(model_copy, "all-MiniLM-L6-v2")
    assert read_fusion(entry.model_dir) is None and registry.get(entry.version).fusion == {}
    registry.set_fusion(entry.version, Fusion(1.0, 0.5, 30), {"dev_score": 0.8})
    assert read_fusion(entry.model_dir) == Fusion(1.0, 0.5, 30)
    recorded = registry.get(entry.version).fusion
    assert (recorded["bm25_weight"], recorded["rrf_k"], recorded["chosen_on"]) == (0.5, 30, {"dev_score": 0.8})
    assert read_fusion("all-MiniLM-L6-v2") is None  # a model id carries nothing
    (model_copy / FUSION_FILE).write_text('{"dense_weight": 1, "bm25_weight": "lots", "rrf_k": 10}')
    with pytest.raises(UserInputError, match="needs numbers dense_weight, bm25_weight and rrf_k"):
        read_fusion(str(model_copy))
    (model_copy / FUSION_FILE).write_text('{"dense_weight": 1, "bm25_weight": -1, "rrf_k": 10}')
    with pytest.raises(UserInputError, match="must be >= 0"):
        read_fusion(str(model_copy))


def _hybrid_ids(retriever: Retriever, question: str, mode: str = "hybrid") -> list[str]:
    return [h.chunk.id for h in retriever.search(question, top_k=8, mode=mode).hits]  # type: ignore[arg-type]


def test_a_search_fuses_with_the_weights_its_index_versions_model_carries(tmp_path, embedder, model_copy):
    """An index version embedded with a model folder that carries fusion weights is fused with them
    (the settings' weights otherwise, or with retrieval.tuned_fusion off); a changed file is read again."""
    from ingest.pipeline import run_ingest
    from ingest.sources import scan_folder
    from ragtune.index import KnowledgeIndex
    from ragtune.settings import load_settings
    from tests.conftest import KNOWLEDGE

    settings = load_settings(environ={"RAGTUNE_DATA_DIR": str(tmp_path / "fused")})
    tuned = settings.embedding.model_copy(update={"model": str(model_copy)})
    settings = settings.model_copy(update={"embedding": tuned})
    items, failures = scan_folder(KNOWLEDGE / "faq", settings.ingest)
    run_ingest(settings, items, failures, embedder=Embedder(tuned))
    index = KnowledgeIndex(settings)
    assert index.current_manifest().embedding_model == str(model_copy)
    retriever = Retriever(index, embedder, settings.retrieval)
    question = "What encryption do you use for stored files?"
    configured = _hybrid_ids(retriever, question)
    dense, bm25 = _hybrid_ids(retriever, question, "dense"), _hybrid_ids(retriever, question, "bm25")
    assert dense != bm25  # otherwise the weights could not matter
    assert retriever.fusion_for(index.current_manifest()) == Fusion(1.0, 1.5, 10)

    write_fusion(model_copy, Fusion(1.0, 0.0, 10))  # BM25 weighs nothing: the hybrid ranking is the dense one
    assert _hybrid_ids(retriever, question) == dense
    write_fusion(model_copy, Fusion(0.0, 1.0, 10))  # read again on change: now the BM25 ranking
    os.utime(model_copy / FUSION_FILE, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert _hybrid_ids(retriever, question)[: len(bm25)] == bm25

    off = Retriever(index, embedder, settings.retrieval.model_copy(update={"tuned_fusion": False}))
    assert _hybrid_ids(off, question) == configured
