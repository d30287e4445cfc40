"""The model runs in a child process: native crashes cost one request, never the API.

The crashes come from tests/serve/crashing_worker.py, which kills the real llama.cpp model process
with the signal a faulting build dies of; everything else is real (the tiny GGUF, llama.cpp, the app).
"""

from __future__ import annotations

import asyncio
import functools
import signal
import time

import pytest

from ragtune.errors import ModelUnavailable
from serve.engines.llamacpp import GrammarRefused, LlamaCppEngine

from .crashing_worker import TRIGGER, crash_at_start, crash_on_trigger

pytestmark = pytest.mark.slow  # starts, crashes and restarts llama.cpp model processes

MESSAGES = [
    {"role": "system", "content": "Sources:\n[id: abc] Refunds are possible within 30 days."},
    {"role": "user", "content": "Can I get a refund?"},
]


def _engine(settings, worker=None, **llm):
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update=llm)}) if llm else settings
    kwargs = {"worker": worker} if worker else {}
    return LlamaCppEngine(settings, settings.llm.gguf_path, **kwargs)


def test_the_self_check_decodes_a_multi_token_prompt_in_a_child_process(serve_settings):
    engine = _engine(serve_settings)
    assert asyncio.run(engine.ready()) is True
    info = engine.process.info
    assert info["prompt_tokens"] >= 64 and info["safe"] is False
    assert engine.process.alive and engine.process._proc.pid != __import__("os").getpid()
    asyncio.run(engine.aclose())
    assert not engine.process.alive


def test_a_start_that_dies_of_sigill_is_retried_with_safe_parameters(serve_settings):
    engine = _engine(serve_settings, functools.partial(crash_at_start, "unless_safe"))
    assert asyncio.run(engine.ready()) is True
    assert engine.process.safe is True and engine.process.info["safe"] is True
    result = asyncio.run(engine.generate(MESSAGES, ["abc"], 48))
    assert result.completion_tokens and result.text.startswith("{")
    asyncio.run(engine.aclose())


def test_when_every_start_crashes_the_server_answers_without_the_model_and_says_why(serve_settings, make_client):
    engine = _engine(serve_settings, functools.partial(crash_at_start, "always"))
    client = make_client(serve_settings, engine=engine)
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["mode"] == "extractive"
    assert "SIGILL" in ready["detail"] and "self-check" in ready["detail"]
    answer = client.post("/v1/chat", json={"message": "How do I reset my password?"})
    assert answer.status_code == 200 and answer.json()["mode"] == "extractive"
    # A deterministic crash is not retried on every readiness probe.
    assert engine.process.failed and not engine.process.alive


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGILL])
def test_a_model_process_dying_mid_request_is_a_503_and_the_next_request_is_answered(serve_settings, make_client, sig):
    engine = _engine(serve_settings, functools.partial(crash_on_trigger, sig))
    client = make_client(serve_settings, engine=engine)
    assert client.get("/readyz").json()["mode"] == "generated"
    first_pid = engine.process._proc.pid
    crashed = client.post("/v1/chat", json={"message": f"How do I reset my password? {TRIGGER}"})
    assert crashed.status_code == 503
    assert crashed.json()["error"] == "ModelUnavailable" and sig.name in crashed.json()["detail"]
    assert client.get("/healthz").status_code == 200
    answered = client.post("/v1/chat", json={"message": "How do I reset my password?"})
    assert answered.status_code == 200 and answered.json()["mode"] == "generated"
    assert engine.process.restarts == 1 and engine.process._proc.pid != first_pid


def test_a_crash_while_streaming_is_a_503_and_the_next_stream_is_answered(serve_settings, make_client):
    engine = _engine(serve_settings, functools.partial(crash_on_trigger, signal.SIGSEGV))
    client = make_client(serve_settings, engine=engine)
    crashed = client.post("/v1/chat", json={"message": f"reset my password {TRIGGER}", "stream": True})
    if crashed.status_code == 200:  # the stream had started: it ends with an error event, not an answer
        assert "event: error" in crashed.text and "SIGSEGV" in crashed.text and "event: answer" not in crashed.text
    else:
        assert crashed.status_code == 503 and "SIGSEGV" in crashed.json()["detail"]
    with client.stream("POST", "/v1/chat", json={"message": "How do I reset my password?", "stream": True}) as r:
        body = "".join(r.iter_text())
    assert r.status_code == 200 and "event: answer" in body


def test_a_hanging_generation_is_stopped_after_the_timeout(serve_settings):
    engine = _engine(serve_settings, functools.partial(crash_on_trigger, None), timeout_s=2.0)
    assert asyncio.run(engine.ready())
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="no reply within 2 s"):
        asyncio.run(engine.generate([{"role": "user", "content": TRIGGER}], ["abc"], 32))
    assert time.monotonic() - started < 15
    engine.process.request_timeout_s = 300.0  # the next one is not meant to race a short limit on a busy machine
    assert asyncio.run(engine.generate(MESSAGES, ["abc"], 32)).text
    asyncio.run(engine.aclose())


def test_a_grammar_llama_cpp_cannot_parse_is_refused_without_crashing(serve_settings):
    engine = _engine(serve_settings)
    engine.check_grammar('root ::= "{" "}"\n')  # a valid one passes
    with pytest.raises(GrammarRefused):
        engine.check_grammar('root ::= "{" undefined_rule\n')
    with pytest.raises(GrammarRefused):
        engine.check_grammar("root ::= [\n")
    # The process that checked them is this one, and it is still here to answer.
    assert asyncio.run(engine.generate(MESSAGES, ["abc"], 32)).text
    asyncio.run(engine.aclose())
