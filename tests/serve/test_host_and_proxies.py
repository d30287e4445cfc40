"""Host, proxy headers and the open loopback mode against a real `ragtune serve` (issue 18.2, 19.5).

- DNS rebinding: without keys, a page under attacker.example (re-pointed at 127.0.0.1) sends a
  matching Host and Origin; it must not reach the API. With keys, a widget key must not work from
  a foreign origin because Host agrees with it.
- Proxy headers are believed from server.trusted_proxies only: with none listed, faked
  X-Forwarded-For values neither escape the per-address limit nor reach the access log, and the
  "proxy not listed" warning fires. X-Real-IP does not make a relayed request local.
- Without keys the admin routes that write answer 403; the read-only ones and chat are served.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.serve.admin_kb import write_kb
from tests.serve.browser import RagtuneServer, ingest_folder

WIDGET_KEY = "wk_3f9a1c7e5b2d8046a9e1f3c5b7d90e2a"
ADMIN_KEY = "ak_8c1e5a9f3b7d2064e8a0c4f6b2d91e7c"
SHOP = "https://shop.example"
QUESTION = {"message": "Within how many days can an annual plan be refunded?"}


@pytest.fixture(scope="module")
def kb_data(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("hosts")
    kb = write_kb(root / "kb")
    ingest_folder(kb, root / "data", embedder)
    return root, kb


def call(url: str, method: str = "GET", body: dict | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"} | (headers or {}), method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def server(kb_data, workdir, **config) -> RagtuneServer:
    root, kb = kb_data
    base = {"ingest": {"source_dir": str(kb)}, "llm": {"engine": "none"}}
    started = RagtuneServer(root / "data", workdir, base | config)
    started.wait_ready()
    return started


def test_without_keys_a_rebinding_page_and_relayed_requests_get_nothing(kb_data, tmp_path):
    open_server = server(kb_data, tmp_path / "open", limits={"requests_per_address": 0})
    try:
        port = open_server.port
        rebound = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
        for method, path, body in (
            ("GET", "/v1/admin/documents", None),
            ("GET", "/v1/admin/stats", None),
            ("POST", "/v1/chat", QUESTION),
            ("DELETE", "/v1/admin/documents/billing/refunds.md", None),
        ):
            status, payload = call(open_server.url + path, method, body, rebound)
            assert status == 400 and payload["error"] == "DisallowedHost", (path, payload)
        # A name that merely starts like a loopback address is a name.
        assert call(open_server.url + "/v1/chat", "POST", QUESTION, {"Host": f"127.attacker.example:{port}"})[0] == 400
        # Loopback names are served, with or without their port, and the probes answer under any name.
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
            assert call(open_server.url + "/v1/chat", "POST", QUESTION, {"Host": host})[0] == 200
        assert call(open_server.url + "/healthz", headers={"Host": "pod-10-0-0-7"})[0] == 200
        # A request relayed by a proxy is not "a loopback client": X-Real-IP as much as X-Forwarded-For.
        for header in ("X-Real-IP", "X-Forwarded-For", "Forwarded"):
            value = "for=8.8.8.8" if header == "Forwarded" else "8.8.8.8"
            status, payload = call(open_server.url + "/v1/chat", "POST", QUESTION, {header: value})
            assert status == 401 and "proxy" in payload["detail"], (header, payload)
        # 19.5: writing admin routes need an admin key always; reading ones and chat are served.
        assert call(open_server.url + "/v1/admin/documents")[0] == 200
        for method, path in (("POST", "/v1/admin/ingest"), ("DELETE", "/v1/admin/documents/billing/refunds.md")):
            status, payload = call(open_server.url + path, method)
            assert status == 403 and "needs an admin key" in payload["detail"], payload
        assert (kb_data[1] / "billing/refunds.md").exists()
    finally:
        open_server.stop()


def test_with_keys_host_cannot_vouch_for_an_origin_and_faked_forwarding_is_ignored(kb_data, tmp_path):
    keyed = server(
        kb_data,
        tmp_path / "keyed",
        auth={
            "widget_keys": [{"name": "shop", "key": WIDGET_KEY, "origins": [SHOP]}],
            "admin_keys": [{"name": "ops", "key": ADMIN_KEY}],
        },
        limits={"requests_per_address": 30, "requests_per_key": 0, "window_s": 3600},
        observability={"log_format": "json"},
    )
    try:
        widget = {"Authorization": f"Bearer {WIDGET_KEY}"}
        # The widget key from a foreign origin, Host agreeing with it (a rebound DNS name).
        evil = widget | {"Origin": "https://evil.example", "Host": "evil.example"}
        status, payload = call(keyed.url + "/v1/chat", "POST", QUESTION, evil)
        assert status == 403 and "https://evil.example" in payload["detail"], payload
        assert call(keyed.url + "/v1/chat", "POST", QUESTION, widget | {"Origin": SHOP})[0] == 200
        # The admin console under a loopback name stays same-origin.
        admin_page = {"Authorization": f"Bearer {ADMIN_KEY}", "Origin": f"http://127.0.0.1:{keyed.port}"}
        assert call(keyed.url + "/v1/admin/ingest", "POST", None, admin_page)[0] == 202

        # trusted_proxies is empty: 40 requests with 40 faked X-Forwarded-For values are one client.
        statuses = [
            call(keyed.url + "/v1/chat", "POST", QUESTION, widget | {"X-Forwarded-For": f"203.0.113.{i}"})[0] for i in range(40)
        ]
        assert statuses.count(429) >= 9 and 200 in statuses, statuses
        log = keyed.log_path.read_text(encoding="utf-8", errors="replace")
        assert "203.0.113." not in log  # the access log has the real peer, not the header's
        assert "not in server.trusted_proxies" in log
    finally:
        keyed.stop()
