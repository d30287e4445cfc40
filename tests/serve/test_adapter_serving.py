"""The shipped LoRA adapter: a fresh install serves the bundled base with it, on real llama.cpp."""

import asyncio
import json

import pytest

from ragtune.adapters import BUNDLED_DIR, bundled_adapter, read_adapter, resolve_adapter
from ragtune.answer import parse_reply
from ragtune.errors import ModelUnavailable
from ragtune.prompt import ContextChunk, build_messages
from serve.engines import create_engine
from serve.engines.llamacpp import LlamaCppEngine, bundled_gguf

pytestmark = pytest.mark.slow  # runs llama.cpp

CHUNKS = [
    ContextChunk("S1", "Pricing", "Pro", "The Pro plan costs 9.99 EUR per month or 99 EUR per year."),
    ContextChunk("S2", "Pricing", "Free", "The Free plan includes 10 GB of storage."),
]
QUESTION = "How much is Pro per year?"


def _default(knowledge_index, **llm):
    """The settings a fresh install serves with: the embedded engine, no model configured."""
    settings, _ = knowledge_index
    update = {"engine": "auto", "gguf_path": None, "hf_repo": None, "adapter": "bundled"} | llm
    return settings.model_copy(update={"llm": settings.llm.model_copy(update=update)})


def test_the_card_says_what_serving_needs():
    adapter = bundled_adapter()
    assert adapter is not None and adapter.path == BUNDLED_DIR / "adapter.gguf"
    card = json.loads((BUNDLED_DIR / "card.json").read_text())
    assert adapter.prompt == card["prompt"] == "short" and adapter.base == bundled_gguf().name
    assert adapter.pass_rate == card["eval"]["pipeline"]["phrased_share"]
    assert adapter.phrased_accuracy == card["eval"]["pipeline"]["phrased_fact_accuracy"]
    assert card["dataset_hash"] and card["config"]["name"] and 1e5 < adapter.path.stat().st_size < 2e7
    # Applied only over the base it was trained on; a path must exist; "none" means none.
    assert resolve_adapter("bundled", bundled_gguf()) == adapter
    assert resolve_adapter("bundled", BUNDLED_DIR / "other-base.gguf") is None
    assert resolve_adapter("none", bundled_gguf()) is None
    with pytest.raises(ModelUnavailable, match="does not exist"):
        resolve_adapter("/nowhere/adapter.gguf", bundled_gguf())
    assert read_adapter(BUNDLED_DIR).name == "smollm2-135m-support"


def test_a_fresh_install_loads_base_and_adapter_and_asks_it_only_as_far_as_it_measured(knowledge_index, make_client):
    settings = _default(knowledge_index)
    client = make_client(settings)
    ready = client.get("/readyz").json()
    name = f"{bundled_gguf().stem}+smollm2-135m-support"
    assert ready["model"] == name and ready["adapter"] == "smollm2-135m-support"
    adapter = bundled_adapter()
    assert adapter is not None
    assert ready["model_pass_rate"] == adapter.pass_rate and ready["model_phrased_accuracy"] == adapter.phrased_accuracy
    # Its gated eval (the card) phrases too few answers (chat.min_model_pass_rate): the default
    # auto mode answers extractively, and says why.
    assert adapter.pass_rate < settings.chat.min_model_pass_rate and adapter.phrased_accuracy is not None
    assert ready["mode"] == "extractive" and "min_model_pass_rate" in ready["detail"]
    fast = client.post("/v1/chat", json={"message": "How long is the password reset link valid?"}).json()
    assert fast["mode"] == "extractive" and fast["model"] is None
    # An operator who accepts it as measured gets it asked (a pass rate minimum of 0 asks any model);
    # an answer it phrased names it, one it failed to phrase is the verified extractive answer.
    chat = settings.chat.model_copy(update={"min_model_pass_rate": 0.0})
    client = make_client(settings.model_copy(update={"chat": chat}))
    ready = client.get("/readyz").json()
    assert ready["mode"] == "generated"
    answered = []
    for question in ("How long is the password reset link valid?", "How much does the Pro plan cost per year?"):
        body = client.post("/v1/chat", json={"message": question}).json()
        assert body["verification"]["checked"] is True  # the model was asked
        assert body["model"] == (name if body["mode"] == "generated" else None)
        answered.append(body["mode"])
    assert "generated" in answered
    # Without the adapter the base alone serves, and says so.
    plain = make_client(_default(knowledge_index, adapter="none")).get("/readyz").json()
    assert plain["model"] == bundled_gguf().stem and plain["adapter"] is None


def test_the_adapter_changes_what_llama_cpp_writes_and_gets_the_short_prompt(knowledge_index):
    settings = _default(knowledge_index, temperature=0.0)
    tuned = create_engine(settings)
    base = LlamaCppEngine(settings, bundled_gguf())
    try:
        assert tuned.prompt_style == "short" and base.prompt_style == "full"
        assert tuned.pass_rate() == bundled_adapter().pass_rate and base.pass_rate() is None
        messages = build_messages(QUESTION, CHUNKS, [], "Northwind Cloud", "short")
        with_adapter = asyncio.run(tuned.generate(messages, ["S1", "S2"], 96)).text
        without = asyncio.run(base.generate(messages, ["S1", "S2"], 96)).text
        reply = parse_reply(with_adapter)  # the grammar holds it to the reply contract
        assert set(reply.sources) <= {"S1", "S2"}
        assert with_adapter != without  # same prompt, greedy: only the adapter differs
        # The short prompt is the point of a tuned model: far fewer tokens per answer.
        full = build_messages(QUESTION, CHUNKS, [], "Northwind Cloud", "full")
        assert tuned.count_tokens(messages) < tuned.count_tokens(full) - 80
    finally:
        asyncio.run(tuned.aclose())
        asyncio.run(base.aclose())
