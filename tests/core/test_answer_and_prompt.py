import json

import pytest

from ragtune.answer import ModelReply, answer_schema, contract_shape, model_reply_schema, parse_answer, parse_reply
from ragtune.errors import InvalidModelOutput
from ragtune.prompt import (
    ContextChunk,
    Turn,
    build_messages,
    number_sources,
    prompt_rules,
    standalone_query,
    training_messages,
)

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


def test_the_model_reply_is_text_and_source_ids_only():
    # The schema the model is held to, the shape the prompt describes and the validator are one definition.
    schema = model_reply_schema(["S1", "S2"])
    assert set(schema["properties"]) == {"answer", "sources"} == set(schema["required"])
    assert schema["properties"]["sources"]["items"]["enum"] == ["S1", "S2"]
    assert model_reply_schema([])["properties"]["sources"]["maxItems"] == 0
    assert contract_shape(["S1", "S2"]) == '{"answer": string, "sources": ["S1" | "S2"]}'
    assert parse_reply('```json\n{"answer": "Within 30 days.", "sources": ["S1"]}\n```').sources == ["S1"]
    # Citations, confidence and hand-off are the server's: a reply that brings them does not validate.
    with pytest.raises(InvalidModelOutput, match="reply schema"):
        parse_reply('{"answer": "Yes.", "sources": [], "handoff": true}')
    with pytest.raises(InvalidModelOutput, match="empty answer"):
        parse_reply('{"answer": "  ", "sources": []}')


@pytest.mark.parametrize("style", ["full", "short"])
def test_training_prompt_is_exactly_the_served_prompt_plus_the_reply(style):
    history = [Turn("user", "Hi"), Turn("assistant", "Hello!")]
    chunks = number_sources(CHUNKS).chunks
    served = build_messages("How do refunds work?", chunks, history, "Acme", style)
    reply = ModelReply(answer="Within 30 days.", sources=["S1"])
    trained = training_messages("How do refunds work?", chunks, history, "Acme", reply, style)
    assert trained[:-1] == served
    assert json.loads(trained[-1]["content"]) == {"answer": "Within 30 days.", "sources": ["S1"]}
    assert parse_reply(trained[-1]["content"]) == reply
    assert "[id: S1] Refund policy > Annual plans" in served[0]["content"] and "Acme" in served[0]["content"]
    assert [m["role"] for m in served] == ["system", "user", "assistant", "user"]


def test_a_tuned_model_gets_a_short_prompt_without_the_rules():
    chunks = number_sources(CHUNKS).chunks
    full = build_messages("How do refunds work?", chunks, [], "Acme", "full")[0]["content"]
    short = build_messages("How do refunds work?", chunks, [], "Acme", "short")[0]["content"]
    assert '{"answer": string, "sources": ["S1" | "S2"]}' in full and "Restate the facts exactly" in full
    assert "Restate" not in short and "sources" not in short.split("Sources:")[0].lower().replace("these sources", "")
    assert short.split("Sources:")[1] == full.split("Sources:")[1]  # the same evidence, rendered alike
    assert len(short) < len(full) - 400
    assert len(prompt_rules()) == 2 and all(rule.strip() for rule in prompt_rules())
    with pytest.raises(ValueError, match="prompt style"):
        build_messages("q", chunks, [], "Acme", "terse")  # type: ignore[arg-type]


def test_follow_ups_are_rewritten_and_standalone_questions_kept():
    history = [Turn("user", "How long is version history kept on Pro?"), Turn("assistant", "30 days.")]
    assert standalone_query("And on Business?", history) == "How long is version history kept on Pro? And on Business?"
    assert standalone_query("What does it cost?", history).startswith("How long")
    full = "Which payment methods do you accept for the Business plan in Germany?"
    assert standalone_query(full, history) == full
    assert standalone_query("And on Business?", []) == "And on Business?"
