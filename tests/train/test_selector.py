"""`ragtune train selector`: the grounding model fitted on the company's examples against the live
index, its held-out report, and the CLI's refusals."""

import json
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from ragtune.grounding.features import SELECTOR_FEATURES
from ragtune.grounding.model import GroundingModel
from train.selector import SUPPORT, _choose_threshold, _quantile_threshold, train
from train.selector_data import load_data

EXAMPLES = Path(__file__).resolve().parents[2] / "train" / "examples"


@pytest.mark.slow  # fits against the live index: about 40 s on 2 cores
def test_a_small_fit_learns_weights_and_reports_on_held_out_questions(retriever, knowledge_index, tmp_path):
    settings, _ = knowledge_index
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join((EXAMPLES / "knowledge_pairs.jsonl").read_text().splitlines(keepends=True)[:60]))
    data = load_data([pairs], [EXAMPLES / "handoff.jsonl"], [EXAMPLES / "heldout.jsonl"], None, EXAMPLES / "product_names.txt")
    assert len(data.pairs) == 60 and data.words and any(label == 0 for _, label in data.words)
    result = train(retriever, data, settings.retrieval.min_relevance, settings.chat.evidence_chunks, holdout=0.3, seed=1)
    model, report = result.model, result.report
    assert np.abs(model.selector.weights).sum() > 0 and np.abs(model.answerable.weights).sum() > 0
    held = report["selection_heldout"]
    assert held["questions"] == 18 and 0 <= held["after_top1"] <= held["after_top3"] <= 1
    # A document no example is about (an admin's upload) gets its own selector, reported on held-out
    # questions with their document hidden.
    assert model.selector_new is not None and np.abs(model.selector_new.weights).sum() > 0
    fresh = report["selection_heldout_new_document"]
    assert fresh["questions"] == 18 and 0 <= fresh["with_new_after_top1"] <= fresh["with_new_after_top3"] <= 1
    assert 0 < model.threshold < 1 and model.support == SUPPORT
    assert set(report["handoff_heldout"]) >= {"handoff_precision", "handoff_recall", "false_handoff_rate"}
    assert model.intent is not None and set(model.intent_thresholds) == {"person", "angry", "action"}
    # The examples are kept as known questions, embedded for serving.
    assert model.known is not None and len(model.known) == len(data.known) >= 60
    assert model.known.vectors is not None and len(model.known.vectors) == len(model.known)
    # What is fitted is what serving loads.
    model.save(tmp_path / "g.json")
    again = GroundingModel.load(tmp_path / "g.json")
    x = np.random.default_rng(0).normal(size=(3, len(SELECTOR_FEATURES)))
    assert np.allclose(again.selector.prob(x), model.selector.prob(x), atol=1e-4)
    assert again.selector_new is not None
    new = np.asarray([False, True, False])
    assert np.allclose(again.unit_probs(x, new), np.where(new, model.selector_new.prob(x), model.selector.prob(x)), atol=1e-4)


def test_bad_example_files_are_refused_with_the_line(tmp_path):
    bad = tmp_path / "handoff.jsonl"
    bad.write_text('{"question": "x", "kind": "sometimes"}\n')
    with pytest.raises(ValueError, match="unknown kind 'sometimes'"):
        load_data([], [bad], [], None)
    broken = tmp_path / "pairs.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(ValueError, match="pairs.jsonl:1: not JSON"):
        load_data([broken], [], [], None)


def test_the_cli_refuses_what_it_cannot_fit(tmp_path, capsys):
    files = ["--pairs", str(EXAMPLES / "knowledge_pairs.jsonl"), "--handoff", str(EXAMPLES / "handoff.jsonl")]
    files += ["--questions", str(EXAMPLES / "heldout.jsonl"), "--words", str(EXAMPLES / "product_names.txt")]
    assert main(["--data-dir", str(tmp_path / "empty"), "train", "selector", *files]) == 2
    assert "no index" in capsys.readouterr().err
    assert main(["train", "selector", "--holdout", "1.5"]) == 2
    assert "--holdout 1.5" in capsys.readouterr().err
    assert main(["train", "selector", "--pairs", str(tmp_path / "missing.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_the_shipped_model_carries_its_held_out_report():
    report = GroundingModel.load().report
    assert report["selection_heldout"]["after_top3"] >= report["selection_heldout"]["after_top1"]
    assert json.dumps(report["handoff_heldout"])  # figures, as trained on the bundled examples


def test_the_hand_off_threshold_barely_moves_when_a_few_examples_change():
    rng = np.random.default_rng(3)
    # Answerable questions' out-of-fold scores: most high, a sparse low tail (where a 3% quantile sits).
    scores = np.concatenate([rng.beta(8, 2, 380), rng.uniform(0.05, 0.5, 20)])
    plain, bagged = [], []
    for _ in range(30):  # the same examples but for a few: 3 dropped, 3 more answerable ones
        kept = np.delete(scores, rng.choice(len(scores), 3, replace=False))
        changed = np.concatenate([kept, rng.beta(8, 2, 3)])
        plain.append(_quantile_threshold(changed, 0.03))
        bagged.append(_choose_threshold(changed, np.ones(len(changed)), 0.03, resamples=100))
    assert np.std(bagged) < 0.7 * np.std(plain)
    # Still the threshold asked for: about 3% of the answerable questions fall below it.
    below = (scores < _choose_threshold(scores, np.ones(len(scores)), 0.03)).mean()
    assert 0.01 <= below <= 0.05
