"""Structured request logs: one line per request, the request id round trip, no message text by default."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from fastapi import Request
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from ragtune.settings import ObservabilitySettings
from serve.request_log import JsonFormatter, configure_logging

QUESTION = "What are the API rate limits?"


@pytest.fixture
def log_output():
    """The process's log configured as `ragtune serve` does it, written to a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)

    def configure(**observability) -> io.StringIO:
        buffer = io.StringIO()
        configure_logging(ObservabilitySettings(**observability), stream=buffer)
        return buffer

    yield configure
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def request_lines(buffer: io.StringIO) -> list[dict]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line["logger"] == "ragtune.access"]


@pytest.fixture
def build_app(serve_settings, retriever, tmp_path, monkeypatch):
    """An app answering without a model (fast), with extra test routes added before it starts."""
    from serve.app import create_app

    from .conftest import with_store

    def build(**observability):
        settings = with_store(serve_settings, f"sqlite:///{tmp_path / 'c.sqlite3'}")
        settings = settings.model_copy(update={"observability": ObservabilitySettings(**observability)})
        app = create_app(settings, retriever=retriever, engine=None)

        @app.get("/test/boom")
        async def boom():
            raise RuntimeError("a bug")

        @app.get("/test/whoami")
        async def whoami(request: Request):
            request.state.principal = SimpleNamespace(name="shop-widget", kind="widget")  # as serve/auth.py sets it
            return {"ok": True}

        @app.get("/test/slow-stream")
        async def slow_stream():
            async def pieces():
                yield "first\n"
                await _sleep(1.0)
                yield "second\n"

            return StreamingResponse(pieces(), media_type="text/plain")

        return app

    return build


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_request_id_round_trips_and_is_in_the_json_line(build_app, log_output):
    buffer = log_output()
    with TestClient(build_app()) as client:
        response = client.post("/v1/chat", json={"message": QUESTION}, headers={"X-Request-ID": "shop-42.a_B"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "shop-42.a_B"
    body = response.json()
    (line,) = [x for x in request_lines(buffer) if x["route"] == "/v1/chat"]
    assert line["request_id"] == "shop-42.a_B"
    assert line["msg"] == "request" and line["level"] == "INFO"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/chat", 200)
    assert line["latency_ms"] > 0
    assert line["mode"] == "extractive" and line["index_version"] == body["index_version"]
    assert line["session_id"] == body["session_id"]
    assert (line["prompt_tokens"], line["completion_tokens"]) == (0, 0)


def test_a_streamed_answer_is_logged_with_its_mode_when_the_stream_ends(build_app, log_output):
    buffer = log_output()
    with TestClient(build_app()) as client:
        with client.stream("POST", "/v1/chat", json={"message": QUESTION, "stream": True}) as response:
            events = [line for line in response.iter_lines() if line.startswith("data: ")]
            request_id = response.headers["X-Request-ID"]
    final = json.loads(events[-1][len("data: ") :])
    (line,) = [x for x in request_lines(buffer) if x["request_id"] == request_id]
    assert line["mode"] == final["mode"] == "extractive" and line["session_id"] == final["session_id"]


def test_a_missing_or_insane_request_id_is_replaced_by_a_generated_one(build_app, log_output):
    buffer = log_output()
    with TestClient(build_app()) as client:
        sent = ["x" * 65, "has space", "<script>", "a/b", ""]
        ids = [client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"] for bad in sent]
        ids.append(client.get("/healthz").headers["X-Request-ID"])
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert [line["request_id"] for line in request_lines(buffer)] == ids


def test_every_response_carries_a_request_id_errors_included(build_app, log_output):
    buffer = log_output()
    app = build_app()
    with TestClient(app, raise_server_exceptions=False) as client:
        responses = {
            404: client.get("/no/such/path"),
            422: client.post("/v1/chat", json={}),
            413: client.post("/v1/chat", content=b"x" * (2 * 1048576), headers={"content-type": "application/json"}),
            500: client.get("/test/boom"),
        }
    for status, response in responses.items():
        assert response.status_code == status
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"]), status
    # The unhandled exception still answers the shared error shape, with no internals.
    assert responses[500].json() == {
        "detail": "internal server error; the server log has the details",
        "error": "InternalServerError",
    }
    lines = {line["request_id"]: line for line in request_lines(buffer)}
    for status, response in responses.items():
        assert lines[response.headers["X-Request-ID"]]["status"] == status
    boom = lines[responses[500].headers["X-Request-ID"]]
    assert boom["level"] == "WARNING" and boom["error"] == "RuntimeError" and boom["route"] == "/test/boom"


def test_other_lines_logged_during_a_request_carry_its_id(build_app, log_output, settings, embedder):
    from ragtune.index import KnowledgeIndex
    from ragtune.retriever import Retriever

    buffer = log_output()
    with TestClient(build_app()) as client:
        # A retriever over a data dir nothing was ingested into: the 503 the error handler logs a warning for.
        client.app.state.chat.retriever = Retriever(KnowledgeIndex(settings), embedder, settings.retrieval)
        response = client.post("/v1/chat", json={"message": QUESTION}, headers={"X-Request-ID": "find-me"})
    assert response.status_code == 503
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "find-me"]
    assert {line["logger"] for line in mine} == {"ragtune.serve", "ragtune.access"}
    assert any("run `ragtune ingest`" in line["msg"] for line in mine)


def test_message_and_answer_text_are_logged_only_when_asked(build_app, log_output):
    buffer = log_output()
    with TestClient(build_app()) as client:
        answer = client.post("/v1/chat", json={"message": QUESTION}).json()["answer"]
    quiet = buffer.getvalue()
    assert QUESTION not in quiet and answer not in quiet and "600 requests per minute" not in quiet
    assert request_lines(buffer)[-1]["mode"] == "extractive"  # the line itself is there

    buffer = log_output()
    with TestClient(build_app(log_messages=True)) as client:
        answer = client.post("/v1/chat", json={"message": QUESTION}).json()["answer"]
    (line,) = [x for x in request_lines(buffer) if x["route"] == "/v1/chat"]
    assert line["message"] == QUESTION and line["answer"] == answer


def test_the_callers_key_name_is_logged(build_app, log_output):
    buffer = log_output()
    with TestClient(build_app()) as client:
        client.get("/test/whoami")
        client.get("/healthz")
    whoami, health = request_lines(buffer)
    assert whoami["principal"] == "shop-widget"
    assert "principal" not in health


def test_text_format_carries_the_same_fields(build_app, log_output):
    buffer = log_output(log_format="text")
    with TestClient(build_app()) as client:
        request_id = client.get("/healthz").headers["X-Request-ID"]
    (line,) = [x for x in buffer.getvalue().splitlines() if "ragtune.access" in x]
    assert re.search(r"INFO ragtune\.access: request method=GET route=/healthz path=/healthz status=200 latency_ms=[\d.]+", line)
    assert f"request_id={request_id}" in line


def test_a_stream_is_not_buffered_and_its_line_comes_at_the_end(build_app, log_output):
    buffer = log_output()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_app(), host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        started = time.perf_counter()
        with httpx.stream("GET", f"http://127.0.0.1:{port}/test/slow-stream", headers={"X-Request-ID": "stream-1"}) as response:
            assert response.headers["X-Request-ID"] == "stream-1"
            lines = response.iter_lines()
            assert next(lines) == "first"
            first_at = time.perf_counter() - started
            assert next(lines) == "second"
            total = time.perf_counter() - started
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert first_at < 0.8 <= 1.0 <= total  # the first piece arrived long before the stream ended
    (line,) = [x for x in request_lines(buffer) if x["request_id"] == "stream-1"]
    assert line["latency_ms"] >= 1000 and line["status"] == 200


def test_run_server_logs_json_and_replaces_uvicorns_access_log(serve_settings, monkeypatch, log_output):
    log_output()  # restores the root logger afterwards
    calls: dict = {}

    def run(server, sockets=None):
        calls.update(config=server.config, sockets=sockets, bound=[s.getsockname() for s in sockets or []])

    monkeypatch.setattr("uvicorn.Server.run", run)
    app = SimpleNamespace(state=SimpleNamespace())
    monkeypatch.setattr("serve.app.create_app", lambda settings, **kwargs: app)
    from serve.app import run_server

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run_server(serve_settings, "127.0.0.1", port)
    config = calls["config"]
    assert (config.app, config.host, config.port, config.log_config, config.access_log) == (app, "127.0.0.1", port, None, False)
    # No trusted proxy: uvicorn reads no proxy header (it would trust 127.0.0.1's by default).
    assert config.proxy_headers is False and config.forwarded_allow_ips == ""
    assert app.state.url == f"http://127.0.0.1:{port}"  # for the "ready" line
    # uvicorn serves on the socket bound before the app was built, closed once serving ended.
    assert calls["bound"] == [("127.0.0.1", port)] and calls["sockets"][0].fileno() == -1
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, JsonFormatter)
    assert logging.getLogger("uvicorn.error").propagate and not logging.getLogger("uvicorn.error").handlers
