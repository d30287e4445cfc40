"""The distilled student (`ragtune train retriever distill`): what it reads, what it keeps, how close it stays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ..conftest import ROOT

HELDOUT = ROOT / "train/examples/heldout.jsonl"


def _beir(folder: Path) -> Path:
    """A tiny BEIR split as `train retriever` writes it: fit, dev and test queries over six passages."""
    (folder / "qrels").mkdir(parents=True)
    docs = {f"d{i}": f"Passage {i} about topic {i}: " + "words " * (5 + i) for i in range(6)}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in docs.items()))
    queries = {"q1": "fit question one", "q2": "dev question two", "q3": "test question three"}
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    for split, (qid, doc) in {"fit": ("q1", "d1"), "dev": ("q2", "d2"), "test": ("q3", "d3")}.items():
        (folder / "qrels" / f"{split}.tsv").write_text(f"query-id\tcorpus-id\tscore\n{qid}\t{doc}\t1\n")
    return folder


def test_the_texts_are_passages_fit_queries_and_questions_never_dev_test_or_held_out(tmp_path):
    from train.distill import DistillData, distill_texts

    questions = tmp_path / "q.jsonl"
    heldout_question = json.loads(HELDOUT.read_text().splitlines()[0])["question"]
    questions.write_text(
        json.dumps({"question": "How do I reset my password?"}) + "\n" + json.dumps({"question": heldout_question}) + "\n"
    )
    data = DistillData(beir=[_beir(tmp_path / "beir")], questions=[questions], knowledge=ROOT / "knowledge", heldout=HELDOUT)
    texts, counts = distill_texts(data)
    assert "fit question one" in texts and "How do I reset my password?" in texts
    assert "dev question two" not in texts and "test question three" not in texts
    assert heldout_question not in texts
    assert counts["beir:passages"] == 6 and counts["beir:fit queries"] == 1 and counts["knowledge"] > 5
    assert any("Northwind" in t for t in texts)  # the knowledge files' paragraphs


def test_bad_layer_lists_are_refused_with_what_to_fix(tmp_path):
    from ragtune.embedding import resolve_model
    from ragtune.errors import ConfigError
    from train.distill import build_student, load_distill_config

    path = tmp_path / "c.yaml"
    path.write_text("name: x\nlayers: [1, 1]\n")
    with pytest.raises(ConfigError, match="layers"):
        load_distill_config(path)
    with pytest.raises(ValueError, match="the teacher has 6 layers"):
        build_student(resolve_model("all-MiniLM-L6-v2"), [0, 6], 128)


@pytest.mark.slow
def test_a_short_distillation_gives_a_shallower_model_close_to_the_teacher_on_held_out_text(tmp_path):
    """Three of six layers kept; a few steps on company questions and knowledge paragraphs bring the
    student's vectors of other questions (the held-out ones) and of SciFact abstracts much closer to the
    teacher's, and it loads through the same embedder path serving uses (ONNX)."""
    from ragtune.embedding import Embedder, resolve_model
    from ragtune.settings import EmbeddingSettings, load_settings
    from train.distill import DistillConfig, build_student, train_student

    config = DistillConfig(
        name="tiny",
        layers=[1, 3, 5],
        epochs=3,
        batch_size=16,
        learning_rate=2e-4,
        max_seq_length=128,
        threads=1,
        runs_dir=tmp_path / "runs",
        calibration_texts=8,
        data={
            "beir": [],
            "questions": [ROOT / "train/examples/knowledge_pairs.jsonl"],
            "knowledge": ROOT / "knowledge",
            "heldout": HELDOUT,
        },
    )
    info = train_student(config, load_settings(environ={}).retrieval, log=lambda _: None)
    model = config.run_dir / "model"
    assert json.loads((model / "config.json").read_text())["num_hidden_layers"] == 3
    assert info["steps"] == 3 * len(range(0, sum(info["texts"].values()), 16))
    assert len((model / "calibration.jsonl").read_text().splitlines()) == 8

    heldout = [json.loads(line)["question"] for line in HELDOUT.read_text().splitlines()]
    held = heldout[:30] + [
        "Vitamin D deficiency is associated with an increased risk of fractures in older adults.",
        "Our sync engine resolves conflicting edits by keeping both copies and renaming the older one.",
    ]
    cache = tmp_path / "onnx"
    teacher = Embedder(EmbeddingSettings(onnx_cache_dir=cache)).embed_texts(held)
    student = Embedder(EmbeddingSettings(model=str(model), onnx_cache_dir=cache))
    after = np.sum(student.embed_texts(held) * teacher, axis=1)
    assert student.dimension == 384
    untrained = build_student(resolve_model("all-MiniLM-L6-v2"), [1, 3, 5], 128)
    before = np.sum(untrained.encode(held, normalize_embeddings=True) * teacher, axis=1)
    assert after.mean() > before.mean() + 0.2, (before.mean(), after.mean())
    assert after.mean() > 0.8, after.mean()
