"""The openai engine against a real OpenAI-compatible server: llama-cpp-python's own
(`python -m llama_cpp.server`) running the suite's tiny GGUF on a loopback port, through the chat API.
Faults are real too: the server process is frozen (SIGSTOP: it accepts connections and never answers)
and killed."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ragtune.answer import Answer
from ragtune.errors import ModelUnavailable, PayloadTooLarge
from ragtune.settings import OpenAIEngineSettings
from serve.engines.openai import OpenAIEngine

pytestmark = pytest.mark.slow  # starts llama-cpp-python's OpenAI-compatible server

KEY = "test-key-7f3a9c"
MESSAGES = [
    {"role": "system", "content": "Answer as JSON from the sources. Sources: [S1] Refunds are possible within 30 days."},
    {"role": "user", "content": "How long do I have to ask for a refund?"},
]


class LlamaServer:
    """`python -m llama_cpp.server` on a free loopback port, as a child process."""

    def __init__(self, gguf: Path, folder: Path, n_ctx: int = 4096):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = folder / f"llama-server-{self.port}.log"
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "tiny"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", "1"]
        command += ["--api_key", KEY, "--verbose", "False"]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not start in 120 s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def llama_server(tiny_gguf, tmp_path_factory):
    server = LlamaServer(tiny_gguf, tmp_path_factory.mktemp("llama-server"))
    yield server
    server.stop()


def openai_settings(base, url: str, **engine):
    """`base` (serve_settings: generative, the session's index) answering through the server at `url`,
    with short answers: the server samples under a grammar in Python, a few tokens a second here."""
    config = {"base_url": url, "model": "tiny", "api_key": KEY, "guided_decoding": "grammar", "timeout_s": 120} | engine
    return base.model_copy(
        update={
            "llm": base.llm.model_copy(update={"engine": "openai", "name": None, "max_tokens": 160}),
            "chat": base.chat.model_copy(update={"answer_max_tokens": 160}),
            "openai_engine": OpenAIEngineSettings(**config),
        }
    )


def run(coro):
    return asyncio.run(coro)


async def _generate(settings, messages=MESSAGES, allowed=("S1",), max_tokens=120):
    engine = OpenAIEngine(settings)
    try:
        return engine, await engine.generate(messages, list(allowed), max_tokens)
    finally:
        await engine.aclose()


def test_a_json_answer_through_the_chat_api(serve_settings, llama_server, make_client):
    client = make_client(openai_settings(serve_settings, llama_server.url))
    ready = client.get("/readyz").json()
    assert (ready["mode"], ready["engine"], ready["model"]) == ("generated", "openai", "tiny")
    response = client.post("/v1/chat", json={"message": "How long do I have to ask for a refund on an annual plan?"})
    assert response.status_code == 200, response.text
    body = response.json()
    Answer.model_validate({k: body[k] for k in ("answer", "citations", "confidence", "handoff")})
    assert body["mode"] == "generated" and body["model"] == "tiny" and body["turn"] == 0
    assert {c["id"] for c in body["citations"]} <= set(body["context"]["used"])
    assert body["timings_ms"]["generate_ms"] > 0
    assert body["usage"]["prompt_tokens"] > 100 and body["usage"]["completion_tokens"] > 0  # the server's own counts


def test_streaming_through_the_chat_api(serve_settings, llama_server, make_client):
    client = make_client(openai_settings(serve_settings, llama_server.url))
    with client.stream("POST", "/v1/chat", json={"message": "How do I reset my password?", "stream": True}) as response:
        assert response.status_code == 200
        blocks = [b for b in response.read().decode().split("\n\n") if b.strip()]
    events = [(b.split("\n")[0].removeprefix("event: "), json.loads(b.split("\n")[1].removeprefix("data: "))) for b in blocks]
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) == {"delta"}
    assert len(kinds) > 3, "the server streams the answer text in pieces"
    final = events[-1][1]
    Answer.model_validate({k: final[k] for k in ("answer", "citations", "confidence", "handoff")})
    assert final["model"] == "tiny" and final["timings_ms"]["first_token_ms"] > 0
    assert final["usage"]["prompt_tokens"] > 100 and final["usage"]["completion_tokens"] > 0  # from the stream's last event


@pytest.mark.parametrize("mode", ["grammar", "json_object"])
def test_guided_decoding_holds_the_reply_to_the_schema(serve_settings, llama_server, mode):
    _, constrained = run(_generate(openai_settings(serve_settings, llama_server.url, guided_decoding=mode)))
    assert constrained.text.startswith('{"answer"'), constrained.text[:80]
    # The tiny model's weights are random: unconstrained, it writes noise, not the answer object.
    _, free = run(_generate(openai_settings(serve_settings, llama_server.url, guided_decoding="none")))
    assert free.text and not free.text.lstrip().startswith('{"answer"')


def test_an_unsupported_response_format_is_named_with_the_fix(serve_settings, llama_server):
    # llama-cpp-python's server knows response_format json_object only (vLLM and llama-server take json_schema).
    with pytest.raises(ModelUnavailable, match="guided_decoding=json_schema: try json_object or grammar"):
        run(_generate(openai_settings(serve_settings, llama_server.url, guided_decoding="json_schema")))


def test_the_prompt_budget_learns_the_servers_token_count(serve_settings, llama_server):
    engine, result = run(_generate(openai_settings(serve_settings, llama_server.url)))
    assert result.prompt_tokens and result.completion_tokens
    # The tiny model's 512-token vocabulary is denser than the estimate assumes; after one reply the
    # count covers what the server really evaluated.
    assert engine.count_tokens(MESSAGES) >= result.prompt_tokens


def test_too_long_prompts_are_413_before_or_from_the_server(serve_settings, llama_server):
    settings = openai_settings(serve_settings, llama_server.url)
    long = [{"role": "user", "content": "refund policy " * 3000}]
    with pytest.raises(PayloadTooLarge, match="llm.n_ctx"):
        run(_generate(settings, long))  # the estimate alone exceeds the window: never sent
    # ragtune configured with a larger window than the server's 4096: the server refuses, as a 413.
    wider = settings.model_copy(update={"llm": settings.llm.model_copy(update={"n_ctx": 16384})})
    with pytest.raises(PayloadTooLarge, match="does not fit"):
        run(_generate(wider, [{"role": "user", "content": "refund policy " * 1500}]))


def test_wrong_key_and_unknown_model_are_reported_not_logged(serve_settings, llama_server, caplog):
    caplog.set_level(logging.DEBUG)

    async def ready(settings):
        engine = OpenAIEngine(settings)
        try:
            return await engine.ready(), engine.unavailable_reason
        finally:
            await engine.aclose()

    ok, reason = run(ready(openai_settings(serve_settings, llama_server.url, api_key="wrong-key-123456")))
    assert not ok and "refused the request (401): check openai_engine.api_key" in reason
    ok, reason = run(ready(openai_settings(serve_settings, llama_server.url, model="ragtune-v2")))
    assert not ok and "has no model 'ragtune-v2'; it serves: tiny" in reason
    ok, reason = run(ready(openai_settings(serve_settings, llama_server.url, model=None)))
    assert not ok and "openai_engine.model is not set" in reason
    assert KEY not in caplog.text and "wrong-key-123456" not in caplog.text
    settings = openai_settings(serve_settings, llama_server.url)
    assert KEY not in settings.model_dump_json() and KEY not in repr(settings)


def test_a_hung_or_dead_server_is_a_503_within_the_timeout_then_answers_are_extractive(
    serve_settings, tiny_gguf, tmp_path, make_client, monkeypatch
):
    server = LlamaServer(tiny_gguf, tmp_path)
    try:
        client = make_client(openai_settings(serve_settings, server.url, timeout_s=3))
        question = {"message": "How do I reset my password?"}
        assert client.get("/readyz").json()["mode"] == "generated"
        # The faults strike between two readiness checks (set after the first: the service's monotonic
        # clock starts near 0, so a long interval set before it would skip it on a machine up for less).
        monkeypatch.setattr("serve.chat.READY_CHECK_SECONDS", 3600.0)

        os.kill(server.process.pid, signal.SIGSTOP)  # hung: the socket accepts, nothing answers
        for payload in (question, question | {"stream": True}):
            t0 = time.monotonic()
            response = client.post("/v1/chat", json=payload)
            took = time.monotonic() - t0
            assert response.status_code == 503, response.text
            assert "did not answer within 3 s (openai_engine.timeout_s)" in response.json()["detail"]
            assert 3 <= took < 8, took
        os.kill(server.process.pid, signal.SIGCONT)

        server.process.kill()  # dead: connections are refused
        server.process.wait()
        t0 = time.monotonic()
        response = client.post("/v1/chat", json=question)
        assert response.status_code == 503 and "is not answering" in response.json()["detail"]
        assert time.monotonic() - t0 < 3

        # Once the readiness check has seen it down, answers are extractive instead of errors.
        monkeypatch.setattr("serve.chat.READY_CHECK_SECONDS", 0.0)
        ready = client.get("/readyz").json()
        assert ready["mode"] == "extractive" and "is not answering" in ready["detail"]
        body = client.post("/v1/chat", json=question).json()
        assert body["mode"] == "extractive" and body["citations"] and body["model"] is None
    finally:
        server.stop()
