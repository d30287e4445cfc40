"""The tuned-retriever registry: versions, the pointer and its history, which embedder ingestion
uses, and the retriever embedding each query in the space of the version it searches."""

from __future__ import annotations

import shutil

import pytest

from ragtune.embedders import EmbedderRegistry, effective_embedding, resolve_embedding
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
