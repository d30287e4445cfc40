"""The embedded llama.cpp engine on the tiny GGUF: the GGUF's own chat template, exact token counts."""

import asyncio

import pytest

from ragtune.errors import ModelUnavailable
from serve.engines.llamacpp import LlamaCppEngine

from ..tiny_model import build_hf_model, convert_to_gguf

pytestmark = pytest.mark.slow  # runs llama.cpp

MESSAGES = [
    {"role": "system", "content": "Sources:\n[id: abc] Refunds are possible within 30 days."},
    {"role": "user", "content": "Can I get a refund?"},
]


def test_prompt_is_rendered_with_the_template_inside_the_gguf(serve_settings):
    engine = LlamaCppEngine(serve_settings, serve_settings.llm.gguf_path)
    prompt = engine.render(MESSAGES)
    # tests/tiny_model.py writes a ChatML template into the model; serving must use exactly it.
    assert prompt == (
        "<|im_start|>system\nSources:\n[id: abc] Refunds are possible within 30 days.<|im_end|>\n"
        "<|im_start|>user\nCan I get a refund?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_counted_prompt_tokens_equal_what_llama_cpp_evaluates(serve_settings):
    engine = LlamaCppEngine(serve_settings, serve_settings.llm.gguf_path)
    counted = engine.count_tokens(MESSAGES)
    result = asyncio.run(engine.generate(MESSAGES, ["abc"], 64))
    assert result.prompt_tokens == counted
    # The chat markers are single special tokens, not text spelled out piece by piece.
    start = engine.tokenize("<|im_start|>")
    assert len(start) == 1


def test_a_gguf_without_a_chat_template_is_refused_with_the_reason(serve_settings, make_client, tmp_path):
    import json

    hf = build_hf_model(tmp_path)
    config = json.loads((hf / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (hf / "tokenizer_config.json").write_text(json.dumps(config))
    gguf = convert_to_gguf(hf, tmp_path / "no-template.gguf")
    engine = LlamaCppEngine(serve_settings, gguf)
    with pytest.raises(ModelUnavailable, match="no chat template"):
        engine.load()
    assert asyncio.run(engine.ready()) is False
    # Served, it means flagged retrieval-only answers, and /readyz says why.
    settings = serve_settings.model_copy(update={"llm": serve_settings.llm.model_copy(update={"gguf_path": gguf})})
    client = make_client(settings)
    ready = client.get("/readyz").json()
    assert ready["mode"] == "extractive" and "carries no chat template" in ready["detail"]
    assert client.post("/v1/chat", json={"message": "How do I reset my password?"}).json()["mode"] == "extractive"
