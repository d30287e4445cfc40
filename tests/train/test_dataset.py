"""`prepare` builds records serving would accept, with the serving prompt builder, against a real index."""

import json
import re

import pytest

from ragtune.answer import parse_reply
from ragtune.grounding.verify import verify_answer
from ragtune.prompt import ContextChunk, build_messages, prompt_rules
from train.config import load_config
from train.dataset import prepare, validate_file, validate_record
from train.model import load_tokenizer
from train.sources import DatasetError, Pair, fill_placeholders, read_conversations, read_qa, rephrase

from .conftest import write_config


def _records(config):
    return [
        json.loads(line)
        for split in ("train", "eval")
        for line in (config.data.output / f"{split}.jsonl").read_text().splitlines()
    ]


@pytest.mark.slow
def test_records_are_the_served_prompt_plus_a_reply_serving_accepts(prepared, knowledge_index):
    config, summary = prepared
    settings, _ = knowledge_index
    company = settings.chat.company_name
    records = _records(config)
    # 6 example pairs, each as written and reworded, plus the Bitext rows: how many survive depends
    # on which evidence the bundled selector shows with the examples' document hidden (6 of 12 or more).
    assert summary["records"]["train"] + summary["records"]["eval"] == len(records) >= 6
    assert {r["meta"]["kind"] for r in records} == {"grounded"}  # no hand-off records: the server decides those
    assert {r["meta"]["prompt"] for r in records} == {config.prompt} == {"short"}
    shown = []
    for record in records:
        meta = record["meta"]
        chunks = [ContextChunk(**c) for c in meta["chunks"]]
        # Exactly what the chat service would send a model tuned with the short prompt.
        assert record["messages"][:-1] == build_messages(meta["question"], chunks, [], company, "short")
        reply = parse_reply(record["messages"][-1]["content"])
        ids = [c.id for c in chunks]
        # As serving shows them: at most chat.evidence_sentences evidence sentences, numbered S1, S2, ...
        assert ids == [f"S{i}" for i in range(1, len(ids) + 1)] and len(ids) <= settings.chat.evidence_sentences
        assert reply.sources[0] == meta["oracle"] and set(reply.sources) <= set(ids)
        # The verification serving applies, against the evidence the record shows, passes.
        evidence = [c.text for c in chunks]
        headings = [f"{c.title} {c.section}" for c in chunks]
        assert verify_answer(reply.answer, meta["question"], evidence, company.split(), prompt_rules(), headings=headings) == []
        assert "{{" not in reply.answer and not reply.answer.rstrip().endswith(":")
        shown.append(len(ids))
    # The model always has to read which source answers: distractors' sentences fill the evidence
    # up to what serving shows at most, even where the selector was sure of one sentence.
    assert min(shown) > 1 and max(shown) == settings.chat.evidence_sentences
    # Rewordings: more than one question per company fact, and every drop is accounted for with its reason.
    per_reference = {r["meta"]["reference"] for r in records if r["meta"]["origin"] == "example"}
    assert sum(r["meta"]["origin"] == "example" for r in records) > len(per_reference)
    assert summary["pairs_read"] == sum(summary["records"].values()) + sum(summary["dropped"].values())


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
def test_duplicates_and_overlong_records_are_dropped(
    prepared, tmp_path, tiny_hf, qa_file, examples_file, retriever, knowledge_index
):
    settings, _ = knowledge_index
    dup = tmp_path / "dup.jsonl"
    dup.write_text(examples_file.read_text() * 2)
    limit = int(prepared[1]["tokens_mean"])  # about half the records are longer
    config = load_config(write_config(tmp_path, tiny_hf, qa_file, dup, max_length=limit))
    summary = prepare(config, retriever, load_tokenizer(config.base_model), settings.chat.company_name)
    assert summary["dropped"]["duplicate"] == 12  # the 6 pairs again, and their 6 rewordings
    assert summary["dropped"].get(f"longer than max_length {limit}", 0) >= 1
    assert summary["tokens_max"] <= limit


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
    reply = json.loads(forged["messages"][-1]["content"])
    reply["sources"] = ["S9"]
    forged["messages"][-1]["content"] = json.dumps(reply)
    with pytest.raises(DatasetError, match="source S9 names no source of the prompt"):
        validate_record(forged, "f:1", company)
    invented = json.loads(json.dumps(record))
    reply = json.loads(invented["messages"][-1]["content"])
    reply["answer"] = "The Family plan costs 4.99 EUR a month."  # nothing of it is in the evidence
    invented["messages"][-1]["content"] = json.dumps(reply)
    with pytest.raises(DatasetError, match="fails serving's verification"):
        validate_record(invented, "f:3", company)
    old_contract = json.loads(json.dumps(record))
    old_contract["messages"][-1]["content"] = json.dumps(
        {"answer": reply["answer"], "citations": [], "confidence": "high", "handoff": False}
    )
    with pytest.raises(DatasetError, match="reply schema"):
        validate_record(old_contract, "f:4", company)
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
    store.append("s1", "And my invoices?", "They are kept.")
    store.add_feedback("s1", 1, "up", None, None)
    store.add_feedback("s1", 2, "down", "wrong", None)
    store.db.close()
    # Only the answer rated up becomes a pair; the unrated and the rated-down one stay history.
    pairs = read_conversations(tmp_path / "conversations.sqlite3")
    assert [(p.question, p.answer) for p in pairs] == [("And my files?", "Nothing is deleted.")]
    assert pairs[0].history == [("user", "How do I cancel?"), ("assistant", "Under Settings > Billing.")]
    assert re.match(r".*conversations.sqlite3:s1#\d+$", pairs[0].source)
    export = tmp_path / "export.jsonl"
    rows = [
        {"session_id": "a", "question": "Trial?", "answer": "14 days.", "rating": "up"},
        {"session_id": "a", "question": "Price?", "answer": "Cheap.", "rating": "down", "correction": "9.99 EUR a month."},
        {"session_id": "b", "question": "SSO?", "answer": "Yes."},
        {"session_id": "b", "question": "Refund?", "answer": "No.", "rating": "down"},
    ]
    export.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [(p.question, p.answer) for p in read_conversations(export)] == [
        ("Trial?", "14 days."),
        ("Price?", "9.99 EUR a month."),  # an admin's correction is the target
    ]


def test_bitext_intents_and_rewordings(tmp_path):
    qa = tmp_path / "qa.csv"
    qa.write_text(
        "instruction,intent,response\n"
        "cancel my order,cancel_order,Open {{Order History}}.\n"
        "forgot my password,recover_password,Use the reset link.\n"
        "i need my invoice,get_invoice,Invoices are under Billing.\n"
    )
    picked = read_qa(qa, None, 0, intents=["recover_password", "get_invoice"])
    assert [p.topic for p in picked] == ["Recover password", "Get invoice"]
    with pytest.raises(DatasetError, match="no rows of intent track_parcel"):
        read_qa(qa, None, 0, intents=["track_parcel"])
    variants = rephrase("How much does Pro cost per year?", 3, seed=0)
    assert len(variants) == 3 and len(set(variants)) == 3 and "How much does Pro cost per year?" not in variants
    assert all("pro cost per year" in v.lower() for v in variants) and variants == rephrase(
        "How much does Pro cost per year?", 3, 0
    )


@pytest.mark.slow
def test_targets_serving_would_refuse_are_dropped_with_their_reason(tmp_path, tiny_hf, retriever, knowledge_index):
    from train.dataset import Assembler

    settings, _ = knowledge_index
    company = settings.chat.company_name
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"question": "Where is my order?", "answer": "Order {{Order Number Anonymized}} ships soon."})
        + "\n"
        + json.dumps({"question": "How do I reset?", "answer": "Do this:\n\n1. Log in. " + "Then wait a while. " * 30})
        + "\n"
    )
    config = load_config(write_config(tmp_path, tiny_hf, qa, tmp_path / "none.jsonl", data={"qa": [{"path": str(qa)}]}))
    assembler = Assembler(config, retriever, company)
    from random import Random

    rng = Random(0)
    pairs = read_qa(qa, None, 0)
    assert assembler.record(pairs[0], rng) == "unfilled placeholder"
    assert assembler.record(pairs[1], rng) == "list cut by max_answer_words"
    # A stored extractive answer (the documents' own sentences) is never a style example.
    chunk = assembler.snapshot.chunks[0]
    sentence = next(s for s in chunk.text.split(". ") if len(s.split()) >= 6)
    stored = Pair("question?", sentence + ".", "c:1", "conversation")
    assert assembler.record(stored, rng) == "extractive answer"
    # A written answer that adds a fact the evidence lacks is cut back to what passes, or dropped.
    invented = Pair(
        "How long is the free trial?",
        "Every new account gets a 14-day free trial. It also includes a free phone and 50 GB of extra storage.",
        "x:1",
        "example",
        doc="faq/free-trial.txt",
        quote="Every new account gets a 14-day free trial",
    )
    record = assembler.record(invented, rng)
    assert isinstance(record, dict) and record["meta"]["target"] in ("trimmed", "source")
    assert "phone" not in parse_reply(record["messages"][-1]["content"]).answer
