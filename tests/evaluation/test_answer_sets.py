"""The answer-set schema: old sets load unchanged, the v2 sets are what they claim, bad lines are named."""

import json
from collections import Counter
from pathlib import Path

import pytest

from evaluation.answer_sets import Question, load_questions, load_set
from ragtune.errors import UserInputError

BENCH = Path(__file__).resolve().parents[2] / "bench"
KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"
TUNING = BENCH / "answer_tuning_v2.jsonl"
REPORTING = BENCH / "answer_reporting.jsonl"
# What issue 16 asks the sets to hold.
CATEGORIES = {
    "casual",
    "typo",
    "synonym",
    "shouting",
    "two_document",
    "yes_no",
    "out_of_scope",
    "near_miss",
    "other_company",
    "person",
    "angry",
    "action",
    "german",
    "french",
}
TURN_CATEGORIES = {"pronoun", "ellipsis", "topic_switch", "still_stuck"}


def test_the_older_sets_load_unchanged():
    old = load_set(BENCH / "answer_questions.jsonl")
    assert len(old.questions) == 64 and not old.conversations
    assert Counter(q.kind for q in old.questions) == {"in_scope": 40, "out_of_scope": 12, "near_scope": 7, "injection": 5}
    q = old.questions[0]
    assert q.category == "in_scope" and q.fact_groups == [q.facts] and q.expects_handoff is False
    assert len(load_questions(BENCH / "answer_tuning.jsonl")) == 43


def test_the_v2_sets_hold_every_category_in_both_parts_and_share_no_question():
    tuning, reporting = load_set(TUNING), load_set(REPORTING)
    for part in (tuning, reporting):
        assert CATEGORIES <= {q.category for q in part.questions}
        assert TURN_CATEGORIES <= {t.category for c in part.conversations for t in c.turns}
        assert all(len(c.turns) >= 2 for c in part.conversations)
    singles = len(tuning.questions) + len(reporting.questions)
    conversations = len(tuning.conversations) + len(reporting.conversations)
    assert singles >= 250 and conversations >= 40
    assert 0.35 <= len(tuning.questions) / singles <= 0.45  # about 40% to tune on, the rest to report
    asked = [q.question.lower() for part in (tuning, reporting) for q in part.questions]
    asked += [
        t.question.lower() for part in (tuning, reporting) for c in part.conversations for t in c.turns if t.category == "first"
    ]
    assert len(asked) == len(set(asked))
    old = {q.question.lower() for f in ("answer_questions.jsonl", "answer_tuning.jsonl") for q in load_questions(BENCH / f)}
    assert not old & set(asked)


def test_every_expected_fact_is_in_an_expected_document(knowledge_index):
    """Each fact group has an alternative found verbatim in the ingested text of an expected document."""
    settings, index = knowledge_index
    text: dict[str, str] = {}
    for chunk in index.read_chunks(index.current_version()):
        text[chunk.doc_id] = text.get(chunk.doc_id, "") + " " + " ".join(chunk.text.lower().split())
    for part in (load_set(TUNING), load_set(REPORTING)):
        items = part.questions + [t for c in part.conversations for t in c.turns]
        for q in items:
            paths = set(q.expected_paths) | {p for g in q.paths_all for p in g}
            assert all((KNOWLEDGE / p).is_file() for p in paths), q.id
            for group in q.fact_groups:
                assert any(" ".join(f.lower().split()) in text[p] for f in group for p in paths), (q.id, group)
            if q.kind == "in_scope":
                assert q.fact_groups and paths, q.id


def test_hand_off_expectations_follow_the_kind():
    assert Question("a", "in_scope", "q").expects_handoff is False
    assert Question("b", "handoff", "q", handoff_reason="person").expects_handoff is True
    assert Question("c", "language", "Wie lange?", facts=["14 Tage"], language="de").expects_handoff is None
    assert Question("d", "language", "Wetter?", language="de").expects_handoff is True
    assert Question("e", "injection", "q").expects_handoff is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"id": "x", "kind": "in_scope", "question": "q", "fact": ["a"]}, "unknown field(s) fact"),
        ({"id": "x", "kind": "in_scope", "question": "q", "yes_no": "maybe"}, "yes_no 'maybe'"),
        ({"id": "x", "kind": "handoff", "question": "q", "handoff_reason": "bored"}, "handoff_reason 'bored'"),
        ({"id": "x", "kind": "language", "question": "q"}, "needs its language"),
        ({"id": "x", "kind": "in_scope", "question": "q", "facts_all": ["a"]}, "facts_all must be a list of lists"),
        ({"id": "x", "kind": "in_scope"}, "missing field 'question'"),
        ({"id": "c", "turns": []}, "non-empty list"),
        ({"id": "c", "turns": [{"kind": "maybe", "question": "q"}]}, "kind 'maybe'"),
    ],
)
def test_a_bad_line_is_a_user_error_naming_the_line_and_the_field(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "kind": "in_scope", "question": "fine"}\n\n' + json.dumps(line) + "\n")
    with pytest.raises(UserInputError, match="bad.jsonl:3") as caught:
        load_set(path)
    assert message in str(caught.value)


def test_conversations_number_their_turns_and_ids_must_be_unique(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps({"id": "c1", "turns": [{"kind": "in_scope", "question": "a"}, {"kind": "in_scope", "question": "b"}]}) + "\n"
    )
    conversation = load_set(path).conversations[0]
    assert [t.id for t in conversation.turns] == ["c1.1", "c1.2"] and conversation.category == "conversation"
    with pytest.raises(UserInputError, match="only conversations"):
        load_questions(path)
    twice = tmp_path / "twice.jsonl"
    twice.write_text(path.read_text() * 2)
    with pytest.raises(UserInputError, match="id 'c1' is used twice"):
        load_set(twice)
    assert len(load_set([path, BENCH / "answer_tuning.jsonl"]).questions) == 43
    assert load_set([path, BENCH / "answer_tuning.jsonl"]).limited(1).questions[0].id == "t-in-01"
