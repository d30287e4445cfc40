"""Fixtures for the serving tests: apps over the bundled knowledge index (the tiny real GGUF and
`serve_settings` live in tests/conftest.py, shared with evaluation), and a small stand-in for the Ollama server's HTTP API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.serve.admin_kb import admin_client, admin_kb, admin_settings  # noqa: F401  (fixtures of the admin API tests)


def with_store(settings, url: str):
    """The settings with the API's store at `url` (a SQLite file or a Postgres database)."""
    return settings.model_copy(update={"store": settings.store.model_copy(update={"url": url})})


@pytest.fixture
def make_client(knowledge_index, retriever, tmp_path, monkeypatch):
    """Build a TestClient for settings (and optionally an engine); the retriever is shared."""
    from fastapi.testclient import TestClient

    from serve.app import create_app

    clients = []

    def make(settings, **kwargs):
        # Conversations go to this test's folder (unless the test names a store); the index stays the session's.
        if settings.store.url is None:
            settings = with_store(settings, f"sqlite:///{tmp_path / 'conversations.sqlite3'}")
        client = TestClient(create_app(settings, retriever=retriever, **kwargs))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


class OllamaStandIn:
    """Stands in for an Ollama server (its documented /api/chat, /api/tags and /api/show wire format).

    `replies` are the assistant contents it returns, one per /api/chat call (the last repeats);
    every request body is recorded in `requests`. `modelfile`: what /api/show returns for the
    model (None: a server that answers 404 there).
    """

    def __init__(self, model: str = "ragtune"):
        self.model = model
        self.replies: list[str] = []
        self.fail_chat = False  # answer /api/chat with Ollama's 500 error, as when its runner dies
        self.modelfile: str | None = None
        self.requests: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/api/tags":
                    self._json(200, {"models": [{"name": f"{stand_in.model}:latest", "model": f"{stand_in.model}:latest"}]})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append(body)
                if self.path == "/api/show" and stand_in.modelfile is not None:
                    return self._json(200, {"modelfile": stand_in.modelfile, "parameters": "", "template": "", "model_info": {}})
                if self.path != "/api/chat":
                    return self._json(404, {"error": "not found"})
                if stand_in.fail_chat:
                    return self._json(500, {"error": "llama runner process has terminated"})
                if body["model"].split(":")[0] != stand_in.model:
                    return self._json(404, {"error": f"model '{body['model']}' not found"})
                index = min(len(stand_in.requests_for_chat()) - 1, len(stand_in.replies) - 1)
                content = stand_in.replies[index]
                base = {"model": body["model"], "created_at": "2026-01-01T00:00:00Z"}
                if not body.get("stream", True):
                    return self._json(
                        200,
                        base
                        | {
                            "message": {"role": "assistant", "content": content},
                            "done": True,
                            "prompt_eval_count": 100,
                            "eval_count": 20,
                        },
                    )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                for i in range(0, len(content), 7):
                    line = base | {"message": {"role": "assistant", "content": content[i : i + 7]}, "done": False}
                    self.wfile.write((json.dumps(line) + "\n").encode())
                last = {"message": {"role": "assistant", "content": ""}, "done": True, "prompt_eval_count": 100, "eval_count": 20}
                self.wfile.write((json.dumps(base | last) + "\n").encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def requests_for_chat(self) -> list[dict]:
        return [r for r in self.requests if "messages" in r]

    def __enter__(self) -> OllamaStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ollama_stand_in():
    with OllamaStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def ollama_settings(knowledge_index, ollama_stand_in):
    settings, _ = knowledge_index
    return settings.model_copy(
        update={
            "llm": settings.llm.model_copy(update={"engine": "ollama", "n_ctx": 4096}),
            "ollama": settings.ollama.model_copy(update={"host": ollama_stand_in.url, "model": "ragtune", "timeout_s": 10}),
            # These tests are about asking the model: auto mode asks it whatever its measured pass rate.
            "chat": settings.chat.model_copy(update={"min_model_pass_rate": 0.0}),
        }
    )
