"""The operator loop through the CLI: train a retriever (tiny run), register it, evaluate it, deploy
it into a new index version while a serving retriever keeps answering, ingest after the deploy,
refuse a worse version at the gate, roll back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from ragtune.embedders import EmbedderRegistry, Fusion, effective_embedding, read_fusion
from ragtune.embedding import Embedder, bundled_minilm_path
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Retriever
from ragtune.settings import load_settings

from ..conftest import ROOT
from .retriever_fixtures import write_beir, write_retriever_config

pytestmark = pytest.mark.slow  # a tiny training run, three ingests of knowledge/, two gate evaluations


def _random_model(folder: Path) -> Path:
    """MiniLM's architecture and tokenizer with freshly initialised weights: a retriever that is
    certainly worse than the base one."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(bundled_minilm_path()), device="cpu")
    transformer = model[0].auto_model
    transformer.apply(transformer._init_weights)
    model.save(str(folder))
    return folder


def test_train_deploy_ingest_gate_and_rollback(tmp_path, kb_copy, examples_file, capsys, monkeypatch):
    # The tuned models' ONNX exports go to this test's folder, not the user's cache.
    monkeypatch.setenv("RAGTUNE_EMBEDDING__ONNX_CACHE_DIR", str(tmp_path / "onnx"))
    questions = str(ROOT / "train" / "examples" / "heldout.jsonl")
    data_dir = tmp_path / "data"
    settings = load_settings(environ={"RAGTUNE_DATA_DIR": str(data_dir)})
    assert main(["ingest", str(kb_copy)]) == 0
    index = KnowledgeIndex(settings)
    base_version = index.current_version()
    serving = Retriever(index, Embedder(settings.embedding), settings.retrieval)  # a running server's retriever
    assert serving.search("How do I get a refund?").version == base_version

    config = write_retriever_config(tmp_path, write_beir(tmp_path / "beir"), examples_file)
    assert main(["train", "retriever", "--config", str(config)]) == 0
    registry = EmbedderRegistry(data_dir)
    v1 = registry.get("retriever-v1")
    assert v1.eval["onnx_parity"]["min_cosine"] > 0.9999 and v1.base_model == "all-MiniLM-L6-v2"
    assert (Path(v1.model_dir) / "modules.json").is_file() and "dev_selected" in v1.eval
    # Its fusion weights were chosen on the dev data (the BEIR dev split, the company dev pairs), and it carries them.
    assert set(v1.fusion["chosen_on"]["dev_sets"]) == {"split", "company"}
    assert read_fusion(v1.model_dir) == Fusion(v1.fusion["dense_weight"], v1.fusion["bm25_weight"], v1.fusion["rrf_k"])
    assert registry.current() is None and index.current_version() == base_version  # registering changes nothing served

    capsys.readouterr()
    assert main(["train", "retriever", "eval", "retriever-v1", "--json", "--questions", questions]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["retriever-v1"]["questions"] > 20 and 0 <= figures["retriever-v1"]["hit@3"] <= 1
    assert registry.get("retriever-v1").eval["company"]["hit@3"] == figures["retriever-v1"]["hit@3"]

    assert main(["eval", "retrieval", str(tmp_path / "split"), "--split", "test", "--embedder", "retriever-v1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["queries"] == 2

    # Deploy: a new index version embedded with v1; the old one stays on disk for the rollback.
    assert main(["train", "retriever", "deploy", "retriever-v1", "--force"]) == 0
    tuned_version = index.current_version()
    assert tuned_version != base_version and base_version in index.list_versions()
    assert index.manifest(tuned_version).embedding_model == v1.model_dir
    assert registry.current().version == "retriever-v1"
    result = serving.search("How do I get a refund?")  # the running retriever follows, with the tuned model
    assert result.version == tuned_version and result.hits
    assert serving.embedder_for(index.manifest(tuned_version)).settings.model == v1.model_dir
    assert serving.embedder.settings.model == settings.embedding.model  # evidence selection keeps the configured model
    assert serving.ingest_embedder().settings.model == v1.model_dir  # the admin API's re-ingest keeps the deployed one

    # An ingest after the deploy embeds with the deployed version: nothing changed, nothing rebuilt.
    assert effective_embedding(settings).model == v1.model_dir
    assert main(["ingest", str(kb_copy)]) == 0
    assert index.current_version() == tuned_version

    # The gate refuses a worse retriever and leaves everything as it was.
    worse = registry.register(_random_model(tmp_path / "random"), "all-MiniLM-L6-v2")
    assert main(["train", "retriever", "deploy", worse.version, "--questions", questions]) == 2
    assert "not deployed" in capsys.readouterr().err
    assert index.current_version() == tuned_version and registry.current().version == "retriever-v1"

    # Rollback: the kept version of the base model's space serves again at once.
    assert main(["train", "retriever", "deploy", "--rollback"]) == 0
    assert index.current_version() == base_version and registry.current() is None
    result = serving.search("How do I get a refund?")
    assert result.version == base_version
    assert serving.embedder_for(index.manifest(base_version)) is serving.embedder
    assert serving.ingest_embedder() is serving.embedder
    assert main(["train", "retriever", "deploy", "--rollback"]) == 2  # nothing left to roll back
