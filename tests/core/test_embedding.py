"""The embedder's backends: ONNX (default) computes sentence-transformers' vectors without torch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from ragtune.embedding import Embedder
from ragtune.onnx_embedding import OnnxEncoder
from ragtune.settings import EmbeddingSettings

from ..conftest import KNOWLEDGE, ROOT

pytestmark = pytest.mark.slow  # exports the embedding model to ONNX and loads torch

TEXTS = [
    "How do I get a refund on my annual plan?",
    "Passwords must have at least twelve characters.",
    (KNOWLEDGE / "faq" / "security-faq.md").read_text(encoding="utf-8")[:3000],  # longer than 256 word pieces
    "",
]


@pytest.fixture(scope="module")
def torch_vectors():
    return Embedder(EmbeddingSettings(backend="torch")).embed_documents(TEXTS)


def test_the_onnx_backend_computes_the_same_vectors_as_sentence_transformers(embedder, torch_vectors, tmp_path):
    assert embedder.settings.backend == "onnx" and isinstance(embedder.model, OnnxEncoder)
    onnx = embedder.embed_documents(TEXTS)
    assert onnx.shape == torch_vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    assert (onnx * torch_vectors).sum(axis=1).min() > 0.9999
    # Order is kept although batches are sorted by length.
    assert np.allclose(embedder.embed_documents(TEXTS[::-1])[::-1], onnx, atol=1e-5)
    assert embedder.fingerprint() == Embedder(EmbeddingSettings(backend="torch")).fingerprint()


def test_int8_is_close_but_a_vector_space_of_its_own(torch_vectors, tmp_path):
    int8 = Embedder(EmbeddingSettings(backend="onnx-int8", onnx_cache_dir=tmp_path))
    vectors = int8.embed_documents(TEXTS)
    assert (vectors * torch_vectors).sum(axis=1).min() > 0.97
    assert int8.fingerprint() != Embedder(EmbeddingSettings()).fingerprint()
    exported = list(tmp_path.glob("*-int8/model.onnx"))
    assert len(exported) == 1
    # The export is made once: a second embedder loads the cached file.
    mtime = exported[0].stat().st_mtime_ns
    Embedder(EmbeddingSettings(backend="onnx-int8", onnx_cache_dir=tmp_path)).embed_query("again")
    assert exported[0].stat().st_mtime_ns == mtime and not list(tmp_path.glob(".export-*"))


def test_the_export_masks_attention_once_not_in_every_layer(tmp_path):
    # The SDPA export guarded every layer's scores with Where/IsNaN over batch x heads x tokens^2
    # (a quarter of the CPU time); the eager export adds one precomputed mask instead.
    import onnx

    Embedder(EmbeddingSettings(backend="onnx-int8", onnx_cache_dir=tmp_path)).embed_query("export")
    (path,) = tmp_path.glob("*/model.onnx")
    ops = [node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node]
    assert "IsNaN" not in ops and ops.count("Where") <= 2  # the mask, made once
    assert ops.count("Softmax") == 6  # one attention per layer of all-MiniLM-L6


def test_loading_the_embedder_leaves_the_environment_alone(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = dict(os.environ)
    Embedder(EmbeddingSettings(backend="torch")).embed_query("hello")
    Embedder(EmbeddingSettings()).embed_query("hello")
    assert dict(os.environ) == before


def test_the_serving_process_never_imports_torch(embedder, knowledge_index):
    """With the ONNX backend (export cached), retrieval and the whole app run without torch."""
    settings, _ = knowledge_index
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from ragtune.settings import load_settings\n"
        "from serve.app import create_app\n"
        "settings = load_settings(environ={'RAGTUNE_DATA_DIR': sys.argv[1], 'RAGTUNE_LLM__ENGINE': 'none'})\n"
        "with TestClient(create_app(settings)) as client:\n"
        "    r = client.post('/v1/chat', json={'message': 'How do I get a refund?'})\n"
        "    assert r.status_code == 200 and r.json()['sources'], r.text\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'sentence_transformers'))\n"
        "print('HEAVY', heavy)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
    out = subprocess.run(
        [sys.executable, "-c", code, str(settings.data_dir)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "HEAVY []" in out.stdout
