"""The OpenAI-compatible routes, driven by the official `openai` client over a real HTTP server."""

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from ragtune.answer import Answer, parse_answer
from serve.engines.base import GenerationResult
from serve.engines.counting import CountingEngine


@pytest.fixture
def start_server(retriever, tmp_path, monkeypatch):
    """Serve an app for `settings` (and optionally an engine) over real HTTP; returns its /v1 base URL."""
    from serve.app import create_app

    from .conftest import with_store

    servers = []

    def start(settings, **kwargs) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        settings = with_store(settings, f"sqlite:///{tmp_path / f'c{len(servers)}.sqlite3'}")
        app = create_app(settings, retriever=retriever, **kwargs)
        uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        servers.append((uv, thread))
        deadline = time.time() + 30
        while not uv.started and time.time() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for uv, thread in servers:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server(serve_settings, start_server):
    return start_server(serve_settings)


def openai_client(base_url: str):
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key="unused", max_retries=0)


@pytest.fixture
def client(server):
    return openai_client(server)


@pytest.mark.slow
def test_models_lists_the_serving_model(client):
    assert [m.id for m in client.models.list().data] == ["tiny-llama"]


@pytest.mark.slow
def test_completion_content_is_the_answer_json_with_sources(client):
    completion = client.chat.completions.create(
        model="tiny-llama",
        messages=[{"role": "user", "content": "How long do I have to ask for a refund on an annual plan?"}],
    )
    content = completion.choices[0].message.content
    answer = parse_answer(content)
    assert isinstance(answer, Answer)
    extra = completion.model_extra
    assert extra["ragtune"]["mode"] == "generated"
    used = set(extra["ragtune"]["context"]["used"])
    assert {c.id for c in answer.citations} <= used
    assert any(s["path"] == "policies/refund-policy.pdf" for s in extra["sources"])


@pytest.mark.slow
def test_history_from_messages_drives_the_follow_up(client):
    completion = client.chat.completions.create(
        model="tiny-llama",
        messages=[
            {"role": "system", "content": "ignored: ragtune builds its own system prompt"},
            {"role": "user", "content": "How long is version history kept on the Pro plan?"},
            {
                "role": "assistant",
                "content": json.dumps({"answer": "30 days.", "citations": [], "confidence": "high", "handoff": False}),
            },
            {"role": "user", "content": "And on Business?"},
        ],
    )
    # The history, not the bare "And on Business?", is what was searched: the previous question,
    # asked about Business (ragtune/grounding/polarity.py `swapped_in`).
    extra = completion.model_extra["ragtune"]
    assert extra["query"] == "How long is version history kept on the business plan?"  # the earlier question, about Business
    assert {s["path"] for s in completion.model_extra["sources"]} & {
        "policies/data-retention.docx",
        "products/plans-comparison.html",
    }


@pytest.mark.slow
def test_streamed_pieces_concatenate_to_the_answer_json(client):
    stream = client.chat.completions.create(
        model="tiny-llama",
        stream=True,
        messages=[{"role": "user", "content": "How do I reset my password?"}],
    )
    pieces, finish, extras = [], None, None
    for chunk in stream:
        pieces.append(chunk.choices[0].delta.content or "")
        if chunk.choices[0].finish_reason:
            finish, extras = chunk.choices[0].finish_reason, chunk.model_extra
    assert finish == "stop"
    assert len([p for p in pieces if p]) > 3
    answer = parse_answer("".join(pieces))
    assert answer.answer
    assert "sources" in extras and extras["ragtune"]["mode"] == "generated"


def test_bad_request_surfaces_as_an_openai_error(client):
    from openai import BadRequestError

    with pytest.raises(BadRequestError, match="last message must come from the user"):
        client.chat.completions.create(model="tiny-llama", messages=[{"role": "assistant", "content": "hi"}])


class RecordingEngine(CountingEngine):
    """The real engine; each generation's request and result are kept, for the test to compare with the usage."""

    def __init__(self, inner):
        super().__init__(inner)
        self.generations: list[dict] = []

    async def generate(self, messages, allowed_ids, max_tokens, tight=False, *, temperature=None):
        result = await super().generate(messages, allowed_ids, max_tokens, tight, temperature=temperature)
        self.generations.append({"messages": messages, "max_tokens": max_tokens, "temperature": temperature, "result": result})
        return result

    def stream(self, messages, allowed_ids, max_tokens, *, temperature=None, result=None):
        result = result if result is not None else GenerationResult()
        self.generations.append({"messages": messages, "max_tokens": max_tokens, "temperature": temperature, "result": result})
        return super().stream(messages, allowed_ids, max_tokens, temperature=temperature, result=result)


def recording_engine(settings) -> RecordingEngine:
    from serve.engines.llamacpp import LlamaCppEngine

    return RecordingEngine(LlamaCppEngine(settings, settings.llm.gguf_path))


@pytest.mark.slow
def test_usage_counts_the_prompt_as_the_engine_tokenizes_it_and_the_tokens_generated(serve_settings, start_server):
    engine = recording_engine(serve_settings)
    client = openai_client(start_server(serve_settings, engine=engine))
    completion = client.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "How do I reset my password?"}], temperature=0.9
    )
    assert completion.model_extra["ragtune"]["mode"] == "generated"
    made = engine.generations
    assert made and all(g["temperature"] == 0.9 for g in made)
    usage = completion.usage
    # Prompt tokens: the prompt rendered with the GGUF's template and tokenized here, for every generation.
    assert usage.prompt_tokens == sum(engine.inner.count_tokens(g["messages"]) for g in made) > 0
    assert usage.completion_tokens == sum(g["result"].completion_tokens for g in made) > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    # Streamed, with stream_options.include_usage: OpenAI's last chunk carries the usage and no choices.
    engine.generations.clear()
    chunks = list(
        client.chat.completions.create(
            model="tiny-llama",
            messages=[{"role": "user", "content": "How do I reset my password?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    made = engine.generations
    assert last.usage.prompt_tokens == sum(engine.inner.count_tokens(g["messages"]) for g in made) > 0
    assert last.usage.completion_tokens == sum(g["result"].completion_tokens for g in made) > 0


@pytest.mark.slow
def test_max_tokens_limits_generation_and_is_clamped_to_the_settings(serve_settings, start_server):
    # Auto mode: a reply cut off by a small max_tokens gives way to the extractive answer instead of a 502.
    auto = serve_settings.model_copy(
        update={"chat": serve_settings.chat.model_copy(update={"answer_mode": "auto", "min_model_pass_rate": 0.0})}
    )
    engine = recording_engine(auto)
    client = openai_client(start_server(auto, engine=engine))
    question = [{"role": "user", "content": "How long do I have to ask for a refund on an annual plan?"}]

    free = client.chat.completions.create(model="tiny-llama", messages=question)
    assert engine.generations[-1]["max_tokens"] == auto.chat.answer_max_tokens  # the default
    assert free.usage.completion_tokens > 24, "the tiny model writes more than 24 tokens when it may"

    engine.generations.clear()
    limited = client.chat.completions.create(model="tiny-llama", messages=question, max_tokens=24)
    assert [g["max_tokens"] for g in engine.generations] == [24]
    assert 0 < engine.generations[0]["result"].completion_tokens <= 24
    assert limited.usage.completion_tokens == engine.generations[0]["result"].completion_tokens

    engine.generations.clear()
    client.chat.completions.create(model="tiny-llama", messages=question, max_completion_tokens=10**6)
    client.chat.completions.create(model="tiny-llama", messages=question, max_tokens=1)
    assert [g["max_tokens"] for g in engine.generations] == [auto.llm.max_tokens, 16]


def test_temperature_and_max_tokens_reach_ollama_clamped(ollama_settings, ollama_stand_in, make_client):
    ollama_stand_in.replies = [
        json.dumps(
            {
                "answer": "Annual plans are not refunded after 30 days; the plan stays active until the end of the paid year.",
                "sources": [],
            }
        )
    ]
    client = make_client(ollama_settings)
    messages = [{"role": "user", "content": "How long do I have to ask for a refund on an annual plan?"}]
    cases = [
        ({}, ollama_settings.llm.temperature, ollama_settings.chat.answer_max_tokens),
        ({"temperature": 0.7, "max_tokens": 50}, 0.7, 50),
        ({"temperature": 5, "max_tokens": 10**6}, 2.0, ollama_settings.llm.max_tokens),
        ({"temperature": -1, "max_completion_tokens": 40, "max_tokens": 90}, 0.0, 40),
    ]
    for extra, temperature, num_predict in cases:
        response = client.post("/v1/chat/completions", json={"messages": messages} | extra)
        assert response.status_code == 200, response.text
        options = ollama_stand_in.requests_for_chat()[-1]["options"]
        assert (options["temperature"], options["num_predict"]) == (temperature, num_predict), extra
        # The stand-in reports Ollama's own counts (100 prompt, 20 generated tokens).
        assert response.json()["usage"] == {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    bad = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 0})
    assert bad.status_code == 422 and "max_tokens" in bad.json()["error"]["message"]


def test_answers_without_generation_report_zero_completion_tokens(serve_settings, start_server):
    base = start_server(serve_settings, engine=None)
    client = openai_client(base)
    extractive = client.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "What are the API rate limits?"}]
    )
    handoff = client.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "What is the boiling point of tungsten?"}]
    )
    assert extractive.model_extra["ragtune"]["mode"] == "extractive"
    assert handoff.model_extra["ragtune"]["mode"] == "no_evidence"
    for completion in (extractive, handoff):
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (0, 0, 0)
    native = httpx.post(base + "/chat", json={"message": "What are the API rate limits?"}).json()
    assert native["mode"] == "extractive" and native["usage"] == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cached_prompt_tokens": 0,
    }
