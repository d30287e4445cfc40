import json

import pytest

from ragtune.answer import Answer, answer_schema, parse_answer
from ragtune.errors import InvalidModelOutput
from ragtune.prompt import ContextChunk, Turn, build_messages, standalone_query, training_messages

CHUNKS = [
    ContextChunk("c1", "Refund policy", "Annual plans", "Refunds within 30 days."),
    ContextChunk("c2", "Pricing", "Pro", "9.99 EUR."),
]


def test_schema_limits_citations_to_the_given_ids():
    schema = answer_schema(["c1", "c2"])
    assert schema["$defs"]["Citation"]["properties"]["id"]["enum"] == ["c1", "c2"]
    assert set(schema["required"]) == {"answer", "citations", "confidence", "handoff"}
    assert answer_schema([])["properties"]["citations"]["maxItems"] == 0


def test_parse_accepts_wrapped_json_and_rejects_broken_replies():
    good = {"answer": "Yes.", "citations": [{"id": "c1", "quote": "q" * 500}], "confidence": "high", "handoff": False}
    parsed = parse_answer("```json\n" + json.dumps(good) + "\n```")
    assert parsed.answer == "Yes." and len(parsed.citations[0].quote) == 300
    with pytest.raises(InvalidModelOutput, match="not valid JSON"):
        parse_answer('{"answer": "line one\nline two", "citations": [], "confidence": "low", "handoff": true}')
    with pytest.raises(InvalidModelOutput, match="confidence"):
        parse_answer('{"answer": "x", "citations": [], "confidence": "sure", "handoff": true}')
    with pytest.raises(InvalidModelOutput, match="no JSON object"):
        parse_answer("I think the answer is yes")


def test_training_prompt_is_exactly_the_served_prompt_plus_the_answer():
    history = [Turn("user", "Hi"), Turn("assistant", "Hello!")]
    served = build_messages("How do refunds work?", CHUNKS, history, "Acme")
    answer = Answer(answer="Within 30 days.", citations=[], confidence="high", handoff=False)
    trained = training_messages("How do refunds work?", CHUNKS, history, "Acme", answer)
    assert trained[:-1] == served
    assert trained[-1] == {"role": "assistant", "content": json.dumps(answer.model_dump(), ensure_ascii=False)}
    assert "[id: c1] Refund policy > Annual plans" in served[0]["content"] and "Acme" in served[0]["content"]
    assert [m["role"] for m in served] == ["system", "user", "assistant", "user"]


def test_follow_ups_are_rewritten_and_standalone_questions_kept():
    history = [Turn("user", "How long is version history kept on Pro?"), Turn("assistant", "30 days.")]
    assert standalone_query("And on Business?", history) == "How long is version history kept on Pro? And on Business?"
    assert standalone_query("What does it cost?", history).startswith("How long")
    full = "Which payment methods do you accept for the Business plan in Germany?"
    assert standalone_query(full, history) == full
    assert standalone_query("And on Business?", []) == "And on Business?"
