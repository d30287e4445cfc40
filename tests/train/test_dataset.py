"""`prepare` builds grounded and no-answer records with the serving prompt builder, against a real index."""

import json
import re

import pytest

from ragtune.answer import parse_answer
from ragtune.prompt import ContextChunk, build_messages
from train.config import load_config
from train.dataset import prepare, validate_file, validate_record
from train.model import load_tokenizer
from train.sources import DatasetError, fill_placeholders, read_conversations

from .conftest import write_config


def _records(config):
    return [
        json.loads(line)
        for split in ("train", "eval")
        for line in (config.data.output / f"{split}.jsonl").read_text().splitlines()
    ]


@pytest.mark.slow
def test_records_are_the_served_prompt_plus_a_grounded_answer(prepared, knowledge_index):
    config, summary = prepared
    settings, _ = knowledge_index
    records = _records(config)
    assert summary["records"]["train"] + summary["records"]["eval"] == len(records) >= 8
    kinds = {r["meta"]["kind"] for r in records}
    origins = {r["meta"]["origin"] for r in records}
    assert kinds == {"grounded", "no_answer"} and origins == {"qa", "example"}
    positions = set()
    for record in records:
        meta = record["meta"]
        chunks = [ContextChunk(**c) for c in meta["chunks"]]
        # Exactly what the chat service would send for this question and these chunks.
        assert record["messages"][:-1] == build_messages(meta["question"], chunks, [], settings.chat.company_name)
        answer = parse_answer(record["messages"][-1]["content"])
        ids = [c.id for c in chunks]
        # As serving shows them: at most chat.evidence_sentences evidence sentences, numbered S1, S2, ...
        assert ids == [f"S{i}" for i in range(1, len(ids) + 1)] and len(ids) <= settings.chat.evidence_sentences
        if meta["kind"] == "grounded":
            assert answer.handoff is False and [c.id for c in answer.citations] == [meta["oracle"]]
            oracle = chunks[ids.index(meta["oracle"])]
            assert " ".join(answer.citations[0].quote.lower().split()) in " ".join(oracle.text.lower().split())
            positions.add(ids.index(meta["oracle"]))
        else:
            assert answer.handoff is True and answer.citations == [] and meta["oracle"] is None
            assert len(chunks) >= 1
    assert len(positions) > 1  # the oracle is not always in the same place
    text = json.dumps(records)
    assert "{{" not in text  # Bitext placeholders filled or removed


@pytest.mark.slow
def test_split_is_deterministic_and_heldout_never_trained(prepared, retriever, knowledge_index, tmp_path):
    config, summary = prepared
    settings, _ = knowledge_index
    again = config.model_copy(update={"data": config.data.model_copy(update={"output": tmp_path / "again"})})
    second = prepare(again, retriever, load_tokenizer(config.base_model), settings.chat.company_name)
    assert second["dataset_hash"] == summary["dataset_hash"]
    assert (tmp_path / "again" / "eval.jsonl").read_text() == (config.data.output / "eval.jsonl").read_text()
    heldout = {json.loads(line)["question"] for line in config.data.heldout.read_text().splitlines() if line.strip()}
    assert not heldout & {r["meta"]["question"] for r in _records(config)}


@pytest.mark.slow
def test_duplicates_and_overlong_records_are_dropped(tmp_path, tiny_hf, qa_file, examples_file, retriever, knowledge_index):
    settings, _ = knowledge_index
    dup = tmp_path / "dup.jsonl"
    dup.write_text(examples_file.read_text() * 2)
    config = load_config(write_config(tmp_path, tiny_hf, qa_file, dup, max_length=700))
    summary = prepare(config, retriever, load_tokenizer(config.base_model), settings.chat.company_name)
    assert summary["dropped"]["duplicate"] == 6
    assert summary["dropped"].get("longer than max_length 700", 0) >= 1
    assert summary["tokens_max"] <= 700


@pytest.mark.slow
def test_a_quote_missing_from_its_document_is_a_located_error(tmp_path, tiny_hf, qa_file, retriever, knowledge_index):
    settings, _ = knowledge_index
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps(
            {
                "question": "How long is the trial?",
                "answer": "14 days.",
                "doc": "faq/free-trial.txt",
                "quote": "Every new account gets a 14-day free trial",
            }
        )
        + "\n"
        + json.dumps(
            {
                "question": "Refunds?",
                "answer": "Always!",
                "doc": "policies/refund-policy.pdf",
                "quote": "We refund everything, forever.",
            }
        )
        + "\n"
    )
    config = load_config(write_config(tmp_path, tiny_hf, qa_file, pairs))
    with pytest.raises(DatasetError, match=r"pairs.jsonl:2: quote is not in any chunk of 'policies/refund-policy.pdf'"):
        prepare(config, retriever, load_tokenizer(config.base_model), settings.chat.company_name)


@pytest.mark.slow
def test_validation_catches_drift_and_invented_quotes(prepared, knowledge_index, tmp_path):
    config, _ = prepared
    company = knowledge_index[0].chat.company_name
    assert validate_file(config.data.output / "train.jsonl", company) >= 1
    record = next(r for r in _records(config) if r["meta"]["kind"] == "grounded")
    validate_record(record, "ok", company)
    forged = json.loads(json.dumps(record))
    answer = json.loads(forged["messages"][-1]["content"])
    answer["citations"][0]["quote"] = "a sentence that is in no chunk"
    forged["messages"][-1]["content"] = json.dumps(answer)
    with pytest.raises(DatasetError, match="is not in its chunk"):
        validate_record(forged, "f:1", company)
    stale = json.loads(json.dumps(record))
    stale["messages"][0]["content"] += "\nBe terse."  # a system prompt from an older builder
    with pytest.raises(DatasetError, match="differs from what the serving prompt builder renders"):
        validate_record(stale, "f:2", company)


def test_placeholders_and_stored_conversations(tmp_path):
    filled = fill_placeholders(
        "Call {{Customer Support Phone Number}} about {{Order Number Anonymized}} in {{Order History}}.",
        {"Customer Support Phone Number": "+49 30 1234 5678"},
    )
    assert filled == "Call +49 30 1234 5678 about your order number in Order History."
    # The store the chat API writes (test side only; train/ reads the file without importing serve).
    from serve.store import Database
    from serve.store.conversations import ConversationStore

    store = ConversationStore(Database.open(None, tmp_path))
    store.append("s1", "How do I cancel?", "Under Settings > Billing.")
    store.append("s1", "And my files?", "Nothing is deleted.")
    store.db.close()
    pairs = read_conversations(tmp_path / "conversations.sqlite3")
    assert [p.question for p in pairs] == ["How do I cancel?", "And my files?"]
    assert pairs[1].history == [("user", "How do I cancel?"), ("assistant", "Under Settings > Billing.")]
    assert re.match(r".*conversations.sqlite3:s1#\d+$", pairs[1].source)
