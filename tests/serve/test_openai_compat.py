"""The OpenAI-compatible routes, driven by the official `openai` client over a real HTTP server."""

import json
import socket
import threading
import time

import pytest
import uvicorn

from ragtune.answer import Answer, parse_answer


@pytest.fixture
def server(serve_settings, retriever, tmp_path):
    from serve.app import create_app

    from .conftest import with_store

    serve_settings = with_store(serve_settings, f"sqlite:///{tmp_path / 'c.sqlite3'}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(serve_settings, retriever=retriever), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not uv.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server, api_key="unused", max_retries=0)


def test_models_lists_the_serving_model(client):
    assert [m.id for m in client.models.list().data] == ["tiny-llama"]


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
    assert completion.model_extra["ragtune"]["query"].startswith("How long is version history")


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
