"""Request-body limit (enforced while reading) and one error shape for every 4xx/5xx."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from serve.app import create_app
from tests.conftest import ROOT

LIMIT_MB = 0.25
LIMIT = int(LIMIT_MB * 1048576)


@pytest.fixture
def limited_settings(knowledge_index, tmp_path):
    settings, _ = knowledge_index
    return settings.model_copy(
        update={
            "llm": settings.llm.model_copy(update={"engine": "none"}),
            "store": settings.store.model_copy(update={"url": f"sqlite:///{tmp_path / 'conversations.sqlite3'}"}),
            "server": settings.server.model_copy(update={"max_body_mb": LIMIT_MB}),
        }
    )


@pytest.fixture
def app(limited_settings, retriever):
    app = create_app(limited_settings, engine=None, retriever=retriever, warm_up=False)

    @app.get("/v1/boom")  # stands for any bug in a handler
    async def boom():
        raise RuntimeError("secret internals: /srv/ragtune/db password=hunter2")

    return app


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def server(app):
    """The app under a real uvicorn on 127.0.0.1 (chunked bodies need a real HTTP server)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield sock.getsockname()
    server.should_exit = True
    thread.join(timeout=10)


def assert_native_error(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "error"} and body["error"] == kind and body["detail"], body
    return body


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_a_declared_oversized_body_is_refused_before_a_byte_is_sent(server):
    host, port = server
    with socket.create_connection((host, port), timeout=10) as sock:
        # 300 MB announced, none sent: the answer must come without waiting for the body.
        sock.sendall(
            b"POST /v1/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 314572800\r\n\r\n"
        )
        status, _, body = read_response(sock)
    assert status == 413
    payload = json.loads(body)
    assert payload["error"] == "PayloadTooLarge" and "server.max_body_mb" in payload["detail"]


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(server):
    host, port = server
    sent = 0
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        piece = b'{"message": "' + b"a" * 65536
        sock.setblocking(False)
        answered = False
        while sent < 50 * 1048576 and not answered:  # offer 50 MB; the server must stop us far sooner
            frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            try:
                sock.sendall(frame)
                sent += len(piece)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                pass
            try:
                answered = bool(sock.recv(1, socket.MSG_PEEK))
            except BlockingIOError:
                time.sleep(0.001)
        sock.setblocking(True)
        status, _, body = read_response(sock)
    assert status == 413 and json.loads(body)["error"] == "PayloadTooLarge"
    # Answered once the count passed the limit, while the client was still sending.
    assert sent < 50 * 1048576 and sent < LIMIT + 8 * 1048576, sent


def test_a_body_within_the_limit_is_served(client):
    response = client.post("/v1/chat", json={"message": "How do I get a refund?"})
    assert response.status_code == 200 and response.json()["mode"] == "extractive"


def test_oversized_bodies_get_413_in_the_shape_of_their_api(client):
    big = {"message": "x" * (LIMIT + 10)}
    assert_native_error(client.post("/v1/chat", json=big), 413, "PayloadTooLarge")
    openai = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * (LIMIT + 10)}]})
    assert openai.status_code == 413
    assert openai.json()["error"]["type"] == "PayloadTooLarge" and openai.json()["error"]["code"] == 413
    # Any route, even one that reads no body.
    assert_native_error(client.post("/healthz", content=b"x" * (LIMIT + 10)), 413, "PayloadTooLarge")


def test_every_native_error_has_detail_and_error(client):
    body = assert_native_error(client.get("/v1/nowhere"), 404, "NotFound")
    assert "/v1/nowhere" in body["detail"]
    response = client.get("/v1/chat")
    assert_native_error(response, 405, "MethodNotAllowed")
    assert "POST" in response.headers["allow"]
    # Not UTF-8: FastAPI's "There was an error parsing the body", now in the shared shape.
    body = assert_native_error(
        client.post("/v1/chat", content=b'{"message": "caf\xe9"}', headers={"content-type": "application/json"}),
        400,
        "BadRequest",
    )
    assert "JSON" in body["detail"]
    body = assert_native_error(
        client.post("/v1/chat", content=b"{bad", headers={"content-type": "application/json"}), 422, "RequestValidationError"
    )
    assert body["detail"] == (
        "invalid request: the body is not valid JSON (Expecting property name enclosed in double quotes at character 1); "
        "send one JSON object with content-type application/json"
    )
    # The README describes this very answer (it once said BadRequest, issue 19).
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "a body that is not JSON (`{bad`): 422 `RequestValidationError`" in readme
    assert_native_error(client.post("/v1/chat", json={"message": ""}), 422, "RequestValidationError")
    body = assert_native_error(
        client.post("/v1/chat", json={"message": "hi", "session_id": "../../etc"}), 422, "RequestValidationError"
    )
    assert "session_id" in body["detail"]
    body = assert_native_error(client.post("/v1/chat", json={"message": "hi", "filters": {"price": "9"}}), 400, "UserInputError")
    assert "doc_id" in body["detail"]  # says which filters exist
    assert_native_error(client.post("/v1/chat", json={"message": "   "}), 400, "UserInputError")


def test_an_unhandled_exception_is_a_500_without_internals(client):
    response = client.get("/v1/boom")
    assert_native_error(response, 500, "InternalServerError")
    assert "hunter2" not in response.text and "Traceback" not in response.text and "RuntimeError" not in response.text


def test_openai_routes_keep_the_openai_error_shape(client):
    response = client.get("/v1/models/nothing-here")
    assert response.status_code == 404
    assert set(response.json()) == {"error"} and response.json()["error"]["type"] == "NotFound"
    bad = client.post("/v1/chat/completions", json={"messages": []})
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "RequestValidationError"
