"""`ragtune train followups`: the follow-up model fitted on example conversations as the chat service
reads them, reported on held-out conversations; the example file checked line by line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from ragtune.documents import Chunk, Hit
from ragtune.grounding.evidence import Evidence
from ragtune.grounding.followup_rank import FOLLOWUP_FEATURES, FollowupPool
from ragtune.grounding.model import GroundingModel
from train.followups import Example, fit_followups, label, load_conversations
from train.sources import DatasetError

EXAMPLES = Path(__file__).resolve().parents[2] / "train" / "examples"


def test_bad_conversation_files_are_refused_with_the_line_and_what_to_give(tmp_path):
    bad = tmp_path / "conversations.jsonl"
    bad.write_text(
        '{"id": "a", "turns": [{"question": "how much is pro", "kind": "in_scope", "doc": "p.md", "quotes": ["9.99"]}]}\n'
    )
    with pytest.raises(DatasetError, match=r"conversations.jsonl:1: give \"turns\", a list of at least two turns"):
        load_conversations(bad)
    bad.write_text(
        "\n"
        + json.dumps(
            {
                "turns": [
                    {"question": "hi", "kind": "in_scope", "doc": "a.md", "quotes": ["x"]},
                    {"question": "and pro?", "kind": "in_scope"},
                ]
            }
        )
        + "\n"
    )
    with pytest.raises(DatasetError, match=r":2 turn 2: an in_scope turn needs \"doc\" and \"quotes\""):
        load_conversations(bad)
    bad.write_text("{oops\n")
    with pytest.raises(DatasetError, match="malformed JSON"):
        load_conversations(bad)


def test_the_shipped_conversations_load():
    conversations = load_conversations(EXAMPLES / "conversations.jsonl")
    assert len(conversations) >= 100 and all(len(c["turns"]) >= 2 for c in conversations)


def test_a_unit_is_labelled_by_the_turn_s_quote_in_its_document_or_another_that_says_it_too():
    def unit(doc: str, text: str, position: int = 0) -> Evidence:
        return Evidence(Hit(Chunk(f"{doc}-0", doc, text, "T", "", 0), 1.0, 0.5), text, 0.5, position=position)

    units = [
        unit("faq/trial.md", "The trial lasts 14 days."),
        unit("pricing.md", "Trials last 14 days."),
        unit("faq/trial.md", "No card needed.", 1),
    ]
    pool = FollowupPool("how long is it", {"alone": [units]}, "", None)
    turn = {"doc": "faq/trial.md", "quotes": ["trial lasts  14 days"], "kind": "in_scope"}
    assert label(pool, turn).tolist() == [1.0, 0.0, 0.0]
    turn["also"] = [{"doc": "pricing.md", "quote": "Trials last 14 days"}]
    assert label(pool, turn).tolist() == [1.0, 1.0, 0.0]
    assert label(pool, {**turn, "doc": "other.md", "also": []}).tolist() == [0.0, 0.0, 0.0]


def _examples(n: int, seed: int = 0) -> list[Example]:
    """Pools where the answering unit is the one the "about" reading ranks first, while the rules'
    reading ("chosen") leads with another unit half of the time."""
    rng = np.random.default_rng(seed)
    about, chosen = FOLLOWUP_FEATURES.index("about_rank"), FOLLOWUP_FEATURES.index("chosen_rank")
    out = []
    for i in range(n):
        x = rng.uniform(0, 0.3, (6, len(FOLLOWUP_FEATURES)))
        answer = int(rng.integers(6))
        x[answer, about] = 1.0
        x[answer if i % 2 else (answer + 1) % 6, chosen] = 1.0
        y = np.zeros(6)
        y[answer] = 1.0
        out.append(Example(f"c{i // 2}", x, y, reranked=True))
    return out


@pytest.mark.parametrize("listwise", [True, False])
def test_the_fit_learns_which_reading_to_trust_and_reports_held_out_conversations(listwise):
    result = fit_followups(_examples(120), holdout=0.3, seed=1, listwise=listwise)
    held = result.report["heldout"]
    assert result.report["conversations"] == {"training": 42, "heldout": 18}
    assert held["turns"] == 36 and held["answer_in_pool"] == 1.0
    assert held["top1_learned"] >= 0.95 and 0.3 <= held["top1_rules"] <= 0.7
    assert result.model.weights[FOLLOWUP_FEATURES.index("about_rank")] > 0
    # Probabilities, not just an order: the answering unit is likely, the others are not.
    x = _examples(1, seed=7)[0]
    probs = result.model.prob(x.x)
    assert probs[int(np.argmax(x.y))] > 0.5 > np.delete(probs, int(np.argmax(x.y))).max()
    with pytest.raises(ValueError, match="give more conversations"):
        fit_followups(_examples(10), holdout=0.3)


@pytest.mark.slow  # reads 24 conversations through the chat service: about 30 s on 2 cores
def test_the_cli_fits_on_conversations_read_by_the_chat_service_and_writes_a_model_serving_loads(
    knowledge_index, tmp_path, capsys
):
    settings, _ = knowledge_index
    few = tmp_path / "conversations.jsonl"
    few.write_text("".join((EXAMPLES / "conversations.jsonl").read_text().splitlines(keepends=True)[:24]))
    out = tmp_path / "grounding.json"
    assert main(["--data-dir", str(settings.data_dir), "train", "followups", "--conversations", str(few), "--out", str(out)]) == 0
    model = GroundingModel.load(out)
    assert model.followup is not None and model.followup.features == FOLLOWUP_FEATURES
    held = model.followup_report["heldout"]
    assert held["turns"] > 5 and 0 <= held["top1_learned"] <= held["answer_in_pool"] <= 1
    assert model.selector.weights.tolist() == GroundingModel.load().selector.weights.tolist()  # the rest as it was
    assert str(few) in model.followup_report["files"]
    assert f"written to {out}" in capsys.readouterr().out


def test_the_cli_refuses_what_it_cannot_read(tmp_path, capsys):
    shipped = ["--conversations", str(EXAMPLES / "conversations.jsonl")]
    assert main(["--data-dir", str(tmp_path / "empty"), "train", "followups", *shipped]) == 2
    assert "no index" in capsys.readouterr().err
    assert main(["train", "followups", "--holdout", "0.95"]) == 2
    assert "--holdout 0.95" in capsys.readouterr().err
    assert main(["train", "followups", "--conversations", str(tmp_path / "missing.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err
