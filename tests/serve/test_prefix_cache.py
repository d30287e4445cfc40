"""The prompts' static head stays decoded in llama.cpp's KV cache across requests (tiny real GGUF).

The head is learned from successive prompts, restored when a request in between started
differently, and a restored head gives exactly the completion a cold decode gives."""

import asyncio

import pytest

from ragtune.prompt import ContextChunk, build_messages, number_sources
from serve.engines.grammar import answer_grammar
from serve.engines.llama_worker import chat, load_model
from serve.engines.llamacpp import LlamaCppEngine
from serve.engines.prefix_cache import PrefixCache, common_prefix

pytestmark = pytest.mark.slow  # runs llama.cpp

COMPANY = "Northwind Cloud"


def messages(question: str, source: str) -> list[dict[str, str]]:
    chunks = number_sources([ContextChunk("c1", "Help", "Plans", source)]).chunks
    return build_messages(question, chunks, [], COMPANY)


REFUND = messages("Can I get a refund?", "Annual plans can be refunded within 30 days of purchase.")
PASSWORD = messages("How do I reset my password?", "Open Settings, then Security, and choose Reset password.")
STORAGE = messages("How much storage do I get?", "The Pro plan includes 2 TB of storage for each user.")
OTHER = [{"role": "system", "content": "Translate the customer's words into French."}, {"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def engine(tiny_gguf, knowledge_index):
    settings, _ = knowledge_index
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"gguf_path": tiny_gguf, "n_ctx": 2048})})
    return LlamaCppEngine(settings, tiny_gguf)


@pytest.fixture(scope="module")
def llm(tiny_gguf):
    return load_model({"path": str(tiny_gguf), "n_ctx": 2048, "seed": 0})


def ask(llm, engine, msgs, cache):
    payload = dict(
        messages=msgs,
        prompt_ids=engine.prompt_ids(msgs),
        max_tokens=24,
        grammar=answer_grammar(["S1"], 24),
        temperature=0.0,
        seed=0,
        repeat_penalty=1.0,
    )
    return chat(llm, None, payload, cache)


def test_the_static_head_is_learned_and_restored_after_a_prompt_that_starts_differently(llm, engine):
    cache = PrefixCache()
    llm.reset()
    first = ask(llm, engine, REFUND, cache)
    assert first["cached_tokens"] == 0 and cache.tokens is None  # nothing to share with yet
    ask(llm, engine, PASSWORD, cache)
    shared = common_prefix(engine.prompt_ids(REFUND), engine.prompt_ids(PASSWORD))
    assert cache.tokens == engine.prompt_ids(PASSWORD)[:shared] and shared > 50  # the system prompt's rules
    # A prompt that starts differently takes over the context...
    ask(llm, engine, OTHER, cache)
    assert common_prefix(PrefixCache.live(llm), cache.tokens) < 10  # the template opening only
    # ...and the next answer still finds the head decoded: its state is loaded back.
    result = ask(llm, engine, STORAGE, cache)
    assert cache.restores == 1 and result["cached_tokens"] == shared
    assert result["prompt_eval_ms"] is not None and result["prompt_eval_ms"] <= result["generate_ms"]


def test_a_restored_head_gives_the_same_completion_as_a_cold_decode(llm, engine):
    llm.reset()
    cold = ask(llm, engine, STORAGE, None)
    cache = PrefixCache()
    for msgs in (REFUND, PASSWORD, OTHER):
        ask(llm, engine, msgs, cache)
    warm = ask(llm, engine, STORAGE, cache)
    assert warm["cached_tokens"] > 50 and cache.restores == 1
    assert warm["text"] == cold["text"] and warm["completion_tokens"] == cold["completion_tokens"]


def test_the_head_shrinks_to_what_later_prompts_still_share(llm, engine):
    cache = PrefixCache()
    llm.reset()
    same_start = "Annual plans can be refunded within 30 days of purchase."
    ask(llm, engine, messages("Can I get a refund?", same_start + " Ask billing."), cache)
    ask(llm, engine, messages("Is a refund possible?", same_start + " Write to us."), cache)
    long_head = len(cache.tokens or [])
    ask(llm, engine, STORAGE, cache)  # another source: only the rules are shared
    rules = common_prefix(engine.prompt_ids(REFUND), engine.prompt_ids(STORAGE))
    assert len(cache.tokens or []) == rules < long_head


def test_without_the_cache_every_prompt_is_decoded_from_its_first_token(llm, engine):
    # llm.prefix_cache off: the baseline; even back-to-back answers reuse nothing.
    ask(llm, engine, REFUND, None)
    assert ask(llm, engine, PASSWORD, None)["cached_tokens"] == 0


def test_the_engine_reports_cached_tokens_and_prompt_eval_time(engine):
    # Through the model process: the server's token ids are the ones llama.cpp decodes, so the
    # second answer reuses the head (llama-cpp-python's own prefix match, kept by the cache).
    async def two():
        first = await engine.generate(REFUND, ["S1"], 24)
        second = await engine.generate(PASSWORD, ["S1"], 24)
        return first, second

    try:
        first, second = asyncio.run(two())
    finally:
        asyncio.run(engine.aclose())
    shared = common_prefix(engine.prompt_ids(REFUND), engine.prompt_ids(PASSWORD))
    assert first.cached_tokens == 0 and second.cached_tokens == shared
    assert 0 < second.timings_ms["prompt_eval_ms"] <= second.timings_ms["generate_ms"]
