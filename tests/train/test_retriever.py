"""Retriever training: the query split, pairs mined from the live index and from BM25, rated-up
answers, and a tiny real run (weights move, the ONNX export serving uses agrees with torch, the dev
score selects the model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ragtune.errors import ConfigError
from ragtune.settings import load_settings
from train.retriever_config import load_retriever_config
from train.retriever_data import assemble, conversation_examples, split_queries

from .retriever_fixtures import QUERIES, TOPICS, write_beir, write_retriever_config


def test_the_query_split_is_fixed_by_the_seed_disjoint_and_complete():
    ids = [f"q{i}" for i in range(100)]
    parts = split_queries(ids, 0.1, 0.25, seed=13)
    assert parts == split_queries(list(reversed(ids)), 0.1, 0.25, seed=13)  # input order does not matter
    assert (len(parts["test"]), len(parts["dev"]), len(parts["fit"])) == (25, 10, 65)
    assert set(parts["test"]) | set(parts["dev"]) | set(parts["fit"]) == set(ids)
    assert not set(parts["test"]) & (set(parts["dev"]) | set(parts["fit"]))
    assert parts["test"] != split_queries(ids, 0.1, 0.25, seed=14)["test"]


def test_the_split_is_written_as_a_beir_folder_the_retrieval_eval_reads(tmp_path):
    from evaluation.retrieval import load_beir

    beir = write_beir(tmp_path / "beir")
    config = load_retriever_config(write_retriever_config(tmp_path, beir, None))
    data = assemble(config, None, log=lambda *_: None)
    split = tmp_path / "split"
    parts = {name: set(load_beir(split, name)[2]) for name in ("fit", "dev", "test")}
    assert sum(len(p) for p in parts.values()) == len(QUERIES)
    assert len(parts["test"]) == 2 and len(parts["dev"]) == 2
    assert json.loads((split / "split.json").read_text())["seed"] == 3
    # Only fit queries are trained on: no test or dev query is an anchor.
    texts = {q: t for q, t, _ in QUERIES}
    anchors = {e.query for e in data.examples}
    assert anchors == {texts[q] for q in parts["fit"]}
    # Each positive is the judged document; a mined negative is another document BM25 ranked for the
    # query (none when BM25 finds no other: training then pads with a random passage).
    docs = {d: f"{title}\n{text}" for d, title, text in TOPICS}
    judged = {t: docs[ds[0]] for _, t, ds in QUERIES}
    for example in data.examples:
        assert example.positive == judged[example.query]
        assert all(n != example.positive and n in docs.values() for n in example.negatives)
    assert sum(bool(e.negatives) for e in data.examples) >= len(data.examples) // 2
    assert [d.name for d in data.dev] == ["beir"] and set(data.dev[0].queries) == parts["dev"]


def test_config_mistakes_name_the_file_line_and_field(tmp_path):
    beir = write_beir(tmp_path / "beir")
    path = write_retriever_config(tmp_path, beir, None)
    raw = json.loads(path.read_text())
    raw["data"]["beir"][0]["test_share"] = 0.95
    path.write_text(json.dumps(raw, indent=1))
    with pytest.raises(ConfigError, match=r"retriever.yaml:\d+: data.beir.0: .*dev_share \+ test_share"):
        load_retriever_config(path)
    path.write_text("name: x\nbatchsize: 4\n")
    with pytest.raises(ConfigError, match=r"retriever.yaml:2: batchsize: Extra inputs"):
        load_retriever_config(path)


def test_company_pairs_take_positives_and_hard_negatives_from_the_live_index(tmp_path, retriever):
    lines = (Path(__file__).parents[2] / "train" / "examples" / "knowledge_pairs.jsonl").read_text().splitlines()[:9]
    heldout_q = json.loads((Path(__file__).parents[2] / "train" / "examples" / "heldout.jsonl").read_text().splitlines()[0])
    leaked = json.loads(lines[0]) | {"question": heldout_q["question"]}
    examples = tmp_path / "pairs.jsonl"
    examples.write_text("\n".join([*lines, json.dumps(leaked)]) + "\n")
    config = load_retriever_config(write_retriever_config(tmp_path, write_beir(tmp_path / "beir"), examples))
    config = config.model_copy(update={"data": config.data.model_copy(update={"beir": []})})
    data = assemble(config, retriever, log=lambda *_: None)
    pairs = [json.loads(line) for line in lines]
    assert heldout_q["question"] not in {e.query for e in data.examples}  # a held-out question is never trained on
    assert len(data.examples) + len(data.dev[0].queries) == len(pairs)
    snapshot = retriever.snapshot()
    chunks = {c.embedding_text(): c for c in snapshot.chunks}
    by_question = {p["question"]: p for p in pairs}
    for example in data.examples:
        pair = by_question[example.query]
        positive = chunks[example.positive]
        assert positive.doc_id == pair["doc"] and " ".join(pair["quote"].split()) in " ".join(positive.text.split())
        assert example.negatives and all(chunks[n].doc_id != pair["doc"] for n in example.negatives)
    dev = data.dev[0]
    assert dev.name == "company" and all(dev.qrels[q] == {by_question[t]["doc"]: 1} for q, t in dev.queries.items())


def test_rated_up_answers_become_pairs_and_hand_offs_do_not(tmp_path, retriever):
    from ragtune.grounding.messages import message
    from serve.store.conversations import ConversationStore
    from serve.store.db import Database

    settings = load_settings(environ={"RAGTUNE_DATA_DIR": str(tmp_path / "data")})
    db = Database.open(None, tmp_path)
    store = ConversationStore(db)
    answer = "You can cancel within 30 days of purchase for a full refund."
    store.append("s1", "what's the refund window?", "Let me check.")  # turn 0, rated down
    store.append("s1", "can I get my money back on the annual plan?", answer)  # turn 1, rated up
    handoff = message("no_answer", "en", settings.chat.support_contact)
    store.append("s2", "do you sell toasters?", handoff)  # rated up, but a hand-off
    store.add_feedback("s1", 0, "down")
    store.add_feedback("s1", 1, "up")
    store.add_feedback("s2", 0, "up")
    db.close()
    config = load_retriever_config(write_retriever_config(tmp_path, write_beir(tmp_path / "beir"), None))
    found = conversation_examples([tmp_path / "conversations.sqlite3"], retriever, config, set(), {handoff})
    assert [e.query for e in found] == ["can I get my money back on the annual plan?"]
    positive = next(c for c in retriever.snapshot().chunks if c.embedding_text() == found[0].positive)
    assert "refund" in positive.doc_id


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, retriever, examples_file):
    """Two tiny real runs on the bundled MiniLM: one without dev sets (its last weights are the
    result) and one selecting on dev; each a few steps on a few pairs."""
    from train.retriever import train

    settings = load_settings(environ={})
    runs = {}
    for name, dev in (("nodev", 0.0), ("dev", 0.2)):
        folder = tmp_path_factory.mktemp(name)
        path = write_retriever_config(folder, write_beir(folder / "beir"), examples_file, name=name)
        config = load_retriever_config(path)
        beir = config.data.beir[0].model_copy(update={"dev_share": dev})
        config = config.model_copy(
            update={"data": config.data.model_copy(update={"beir": [beir], "examples_dev_share": 0.34 if dev else 0.0})}
        )
        data = assemble(config, retriever, log=lambda *_: None)
        info = train(config, data, settings.retrieval, settings.embedding, log=lambda *_: None)
        runs[name] = (config, data, info)
    return runs


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_a_tiny_run_moves_the_weights_and_saves_a_loadable_model(tiny_runs):
    from ragtune.embedding import bundled_minilm_path

    config, data, info = tiny_runs["nodev"]
    base, tuned = _weights(bundled_minilm_path()), _weights(config.run_dir / "model")
    assert set(tuned) <= set(base)  # the same architecture (the base file also keeps a position-id buffer)
    moved = [k for k in tuned if not np.array_equal(base[k], tuned[k])]
    assert len(moved) > len(tuned) // 2, "training changed almost no weight"
    assert info["steps"] == 3 and info["selected_step"] == 3 and info["pairs"] == len(data.examples)
    assert info["peak_rss_mb"] > 0 and info["wall_s"] > 0
    calibration = (config.run_dir / "model" / "calibration.jsonl").read_text().splitlines()
    assert len(calibration) == min(16, 2 * len(data.examples))


def test_the_dev_score_selects_the_kept_model(tiny_runs):
    config, _, info = tiny_runs["dev"]
    rows = [json.loads(line) for line in (config.run_dir / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in rows if "dev_score" in r]
    assert [r["step"] for r in scored] == [1, 2, 3]  # eval_steps 1
    best = max([info["dev_base"]["dev_score"], *[r["dev_score"] for r in scored]])
    assert info["dev_selected"]["dev_score"] == best
    assert {"beir", "company"} <= set(info["dev_base"]["sets"])
    expected_step = 0 if best == info["dev_base"]["dev_score"] else next(r["step"] for r in scored if r["dev_score"] == best)
    assert info["selected_step"] == expected_step


def test_the_export_serving_uses_agrees_with_torch_and_static_int8_is_close(tiny_runs, tmp_path):
    from ragtune.embedding import Embedder
    from ragtune.settings import EmbeddingSettings
    from train.retriever import onnx_parity

    config, data, _ = tiny_runs["nodev"]
    model = config.run_dir / "model"
    texts = [e.positive for e in data.examples[:6]] + [e.query for e in data.examples[:4]]
    parity = onnx_parity(model, tmp_path / "onnx", texts)
    assert parity["min_cosine"] > 0.9999
    fp32 = Embedder(EmbeddingSettings(model=str(model), onnx_cache_dir=tmp_path / "onnx"))
    static = Embedder(EmbeddingSettings(model=str(model), backend="onnx-int8-static", onnx_cache_dir=tmp_path / "onnx"))
    assert static.fingerprint() != fp32.fingerprint()  # another vector space: its own index
    a, b = fp32.embed_documents(texts), static.embed_documents(texts)
    assert "int8-static" in str(next((tmp_path / "onnx").glob("*-int8-static")))
    assert float(np.min(np.sum(a * b, axis=1))) > 0.9


def test_the_fusion_step_names_what_is_missing(capsys):
    from cli.main import main

    assert main(["train", "retriever", "fusion", "base"]) == 2
    assert "carries no fusion weights" in capsys.readouterr().err
    assert main(["train", "retriever", "fusion", "base", "--dry-run"]) == 2
    assert "no registered version" in capsys.readouterr().err
    assert main(["train", "retriever", "fusion", "retriever-v7"]) == 2
    assert "no retriever version 'retriever-v7'" in capsys.readouterr().err
