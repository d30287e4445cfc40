"""A client that stops reading a stream against a real `ragtune serve` (issue 18.9): its answer slot
is freed after `limits.stream_send_timeout_s`, not held until the slot expires (10 minutes)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

from tests.serve.admin_kb import write_kb
from tests.serve.browser import RagtuneServer, ingest_folder

QUESTION = {"message": "Within how many days can an annual plan be refunded?"}


def ask(url: str) -> int:
    request = urllib.request.Request(url + "/v1/chat", json.dumps(QUESTION).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_client_that_stops_reading_frees_its_slot(tmp_path, embedder):
    kb = write_kb(tmp_path / "kb")
    ingest_folder(kb, tmp_path / "data", embedder)
    config = {
        "ingest": {"source_dir": str(kb)},
        "llm": {"engine": "none"},
        # One answer in flight per address (no keys), and a question big enough that its answer, which
        # echoes it as `query`, fills the socket buffers of a client that reads nothing (6 MB: loopback
        # buffers take a few; one long word costs retrieval little).
        "limits": {"requests_per_address": 0, "streams_per_key": 1, "stream_send_timeout_s": 2},
        "chat": {"max_message_chars": 8_000_000},
        "server": {"max_body_mb": 16},
    }
    server = RagtuneServer(tmp_path / "data", tmp_path / "run", config)
    server.wait_ready()
    stalled = socket.socket()
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that reads nothing, with a small window
        stalled.connect(("127.0.0.1", server.port))
        body = json.dumps({"message": "refund" + "x" * 6_000_000, "stream": True}).encode()
        head = f"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        stalled.sendall(head.encode() + body)
        time.sleep(3)  # read and admitted by now: an earlier question of ours would race it for the slot
        # The stalled stream holds the address's one slot while it is being answered ...
        assert ask(server.url) == 429
        # ... and gives it up once the client has taken nothing for 2 s (the slot would expire after 600 s).
        deadline = time.monotonic() + 60
        while (status := ask(server.url)) == 429:
            assert time.monotonic() < deadline, f"the slot is still held by a client that reads nothing:\n{server.log()}"
            time.sleep(0.5)
        assert status == 200
        assert "stopped reading the response" in server.log()
    finally:
        stalled.close()
        server.stop()
