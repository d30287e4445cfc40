"""Rate limits against the real app and the real store: requests per window per key and per client
address, answers in flight per key, the daily token budget, X-Forwarded-For from trusted proxies
only, and counters shared by two app instances (SQLite here, Postgres for the slot race)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from ragtune.settings import AuthSettings
from serve.app import create_app
from serve.engines.counting import CountingEngine
from serve.engines.ollama import OllamaEngine
from serve.ratelimit import answer_reservation
from serve.store import Database
from serve.store.limits import DAY_S, LimitStore

WIDGET_KEY = "wk_3f9a1c7e5b2d8046a9e1f3c5b7d90e2a"
OTHER_KEY = "wk_71c0d9e4a2b6f8135e7c9a0b4d2f6e81"
QUESTION = {"message": "How long do I have to ask for a refund on an annual plan?"}
REPLY = json.dumps(
    {
        "answer": "Annual plans are not refunded after 30 days; the plan stays active until the end of the paid year.",
        "sources": [],
    }
)


def keys() -> AuthSettings:
    return AuthSettings.model_validate({"widget_keys": [{"name": "shop", "key": WIDGET_KEY}, {"name": "blog", "key": OTHER_KEY}]})


def bearer(key: str = WIDGET_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def with_limits(settings, tmp_path, auth: AuthSettings | None = None, trusted: list[str] | None = None, **limits):
    off = {"requests_per_key": 0, "requests_per_address": 0, "streams_per_key": 0}
    return settings.model_copy(
        update={
            "store": settings.store.model_copy(update={"url": f"sqlite:///{tmp_path / 'store.sqlite3'}"}),
            "limits": settings.limits.model_copy(update=off | limits),
            "auth": auth or settings.auth,
            "server": settings.server.model_copy(update={"trusted_proxies": trusted or []}),
        }
    )


@pytest.fixture
def extractive(knowledge_index):
    settings, _ = knowledge_index
    return settings.model_copy(update={"llm": settings.llm.model_copy(update={"engine": "none"})})


@pytest.fixture
def build(retriever):
    clients: list[TestClient] = []

    def make(settings, client=("testclient", 50000), **kwargs) -> TestClient:
        kwargs.setdefault("engine", None)
        test_client = TestClient(create_app(settings, retriever=retriever, warm_up=False, **kwargs), client=client)
        test_client.__enter__()
        clients.append(test_client)
        return test_client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def assert_429(response, mentions: str) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    if isinstance(body["error"], dict):  # the OpenAI routes' shape
        body = {"error": body["error"]["type"], "detail": body["error"]["message"]}
    assert body["error"] == "TooManyRequests" and mentions in body["detail"], body
    retry = int(response.headers["retry-after"])
    assert retry >= 1
    return retry


def test_requests_per_key_get_429_with_retry_after_until_the_window_ends(extractive, tmp_path, build):
    client = build(with_limits(extractive, tmp_path, keys(), requests_per_key=3, window_s=60))
    clock = Clock(1_699_999_990.0)  # 10 s into a minute window
    client.app.state.limiter.clock = clock
    for _ in range(3):
        assert client.post("/v1/chat", json=QUESTION, headers=bearer()).status_code == 200
    refused = client.post("/v1/chat", json=QUESTION, headers=bearer())
    assert assert_429(refused, "'shop'") == 50 and "limits.requests_per_key" in refused.json()["detail"]
    assert client.get("/v1/models", headers=bearer(OTHER_KEY)).status_code == 200  # another key has its own count
    clock.now += 49
    assert client.get("/v1/models", headers=bearer()).status_code == 429
    clock.now += 1.5  # the next window
    assert client.get("/v1/models", headers=bearer()).status_code == 200
    # OpenAI clients read the same 429 in their shape, with the same header.
    for _ in range(3):
        client.get("/v1/models", headers=bearer())
    openai = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, headers=bearer())
    assert openai.status_code == 429 and openai.json()["error"]["type"] == "TooManyRequests"
    assert int(openai.headers["retry-after"]) >= 1


def test_a_window_is_fixed_and_ends_at_its_boundary(extractive, tmp_path, build):
    """Windows are fixed slices of the clock (not a window from the first request): the limit
    resets exactly at the boundary, and Retry-After counts to it."""
    client = build(with_limits(extractive, tmp_path, keys(), requests_per_key=2, window_s=10))
    clock = Clock(1_700_000_005.5)  # 5.5 s into a 10 s window
    client.app.state.limiter.clock = clock
    statuses = [client.get("/v1/models", headers=bearer()).status_code for _ in range(2)]
    assert statuses == [200, 200]
    assert assert_429(client.get("/v1/models", headers=bearer()), "'shop'") == 5  # 4.5 s left, rounded up
    clock.now = 1_700_000_009.999
    assert assert_429(client.get("/v1/models", headers=bearer()), "'shop'") == 1
    clock.now = 1_700_000_010.0  # the next window
    assert [client.get("/v1/models", headers=bearer()).status_code for _ in range(3)] == [200, 200, 429]


def test_requests_per_address_count_across_keys_and_without_keys(extractive, tmp_path, build):
    keyed = build(with_limits(extractive, tmp_path, keys(), requests_per_address=2))
    assert keyed.get("/v1/models", headers=bearer()).status_code == 200
    assert keyed.get("/v1/models", headers=bearer(OTHER_KEY)).status_code == 200
    assert_429(keyed.get("/v1/models", headers=bearer(OTHER_KEY)), "address testclient")
    # Open loopback mode: the local caller is still limited per address.
    local = build(with_limits(extractive, tmp_path / "open", requests_per_address=2))
    assert [local.get("/v1/models").status_code for _ in range(3)] == [200, 200, 429]
    # Admin and open routes are not counted.
    assert local.get("/healthz").status_code == 200


def test_limits_at_zero_are_off(extractive, tmp_path, build):
    client = build(with_limits(extractive, tmp_path, keys()))
    assert {client.get("/v1/models", headers=bearer()).status_code for _ in range(80)} == {200}


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(extractive, tmp_path, build):
    settings = with_limits(extractive, tmp_path, keys(), trusted=["10.0.0.0/8"], requests_per_address=2)
    proxy = build(settings, client=("10.1.2.3", 40000))
    for client_ip in ("198.51.100.7", "198.51.100.8"):
        for _ in range(2):
            assert proxy.get("/v1/models", headers=bearer() | {"X-Forwarded-For": client_ip}).status_code == 200
    # A client that sends its own header through an appending proxy is still counted as itself.
    spoofed = proxy.get("/v1/models", headers=bearer() | {"X-Forwarded-For": "203.0.113.1, 198.51.100.7"})
    assert_429(spoofed, "address 198.51.100.7")
    # Chains of trusted proxies are walked back to the first untrusted hop.
    chained = proxy.get("/v1/models", headers=bearer() | {"X-Forwarded-For": "198.51.100.9, 10.9.9.9"})
    assert chained.status_code == 200
    # From a peer that is no trusted proxy the header is ignored: every request counts for the peer.
    direct = build(settings, client=("192.0.2.50", 40000))
    codes = [direct.get("/v1/models", headers=bearer() | {"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(3)]
    assert codes == [200, 200, 429]
    assert_429(direct.get("/v1/models", headers=bearer()), "address 192.0.2.50")


def test_two_app_instances_share_the_counts(extractive, tmp_path, build):
    settings = with_limits(extractive, tmp_path, keys(), requests_per_key=3)
    replica_a, replica_b = build(settings), build(settings)
    assert replica_a.get("/v1/models", headers=bearer()).status_code == 200
    assert replica_b.get("/v1/models", headers=bearer()).status_code == 200
    assert replica_a.get("/v1/models", headers=bearer()).status_code == 200
    assert_429(replica_b.get("/v1/models", headers=bearer()), "'shop'")
    assert_429(replica_a.get("/v1/models", headers=bearer()), "'shop'")


class GatedEngine(CountingEngine):
    """The real Ollama engine (against the stand-in) held mid-answer until the test opens `gate`:
    a plain answer before it starts, a stream after its first pieces."""

    def __init__(self, inner):
        super().__init__(inner)
        self.gate = threading.Event()

    async def generate(self, messages, allowed_ids, max_tokens, tight=False, *, temperature=None):
        await asyncio.to_thread(self.gate.wait, 30)
        return await super().generate(messages, allowed_ids, max_tokens, tight, temperature=temperature)

    def stream(self, messages, allowed_ids, max_tokens, *, temperature=None, result=None):
        pieces = super().stream(messages, allowed_ids, max_tokens, temperature=temperature, result=result)

        async def held():
            sent = ""
            async for piece in pieces:
                yield piece
                sent += piece
                if len(sent) > len('{"answer": "You can'):
                    await asyncio.to_thread(self.gate.wait, 30)

        return held()


@contextlib.contextmanager
def serving(settings, engine, retriever, tmp_path):
    """The app under a real uvicorn on loopback; yields its URL and a store reading the counters."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine=engine, retriever=retriever), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    host, port = sock.getsockname()
    store = LimitStore(Database.open(settings.store.url, tmp_path))
    try:
        yield f"http://{host}:{port}", store
    finally:
        engine.gate.set()
        server.should_exit = True
        thread.join(timeout=10)
        store.db.close()


def generative_limits(ollama_settings, ollama_stand_in, tmp_path, **limits):
    ollama_stand_in.replies = [REPLY]
    generative = ollama_settings.model_copy(
        update={"chat": ollama_settings.chat.model_copy(update={"answer_mode": "generative"})}
    )
    return with_limits(generative, tmp_path, keys(), stream_ttl_s=300, **limits)


@pytest.fixture
def live(ollama_settings, ollama_stand_in, retriever, tmp_path):
    """The app under a real uvicorn on loopback, answering through the gated engine."""
    settings = generative_limits(ollama_settings, ollama_stand_in, tmp_path, streams_per_key=2)
    engine = GatedEngine(OllamaEngine(settings))
    with serving(settings, engine, retriever, tmp_path) as (url, store):
        yield url, engine, lambda: store.slots_held("key:shop", time.time())


def wait_for(condition, timeout=20.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_answers_in_flight_per_key_are_limited_and_freed(live):
    url, engine, held = live
    results: dict[str, httpx.Response] = {}

    def stream() -> None:
        with (
            httpx.Client(timeout=30) as http,
            http.stream("POST", f"{url}/v1/chat", json=QUESTION | {"stream": True}, headers=bearer()) as r,
        ):
            r.read()
            results["stream"] = r

    def plain() -> None:
        body = {"messages": [{"role": "user", "content": QUESTION["message"]}]}
        results["plain"] = httpx.post(f"{url}/v1/chat/completions", json=body, headers=bearer(), timeout=30)

    threads = [threading.Thread(target=stream), threading.Thread(target=plain)]
    for t in threads:
        t.start()
    wait_for(lambda: held() == 2)
    refused = httpx.post(f"{url}/v1/chat", json=QUESTION, headers=bearer(), timeout=30)
    assert_429(refused, "2 answers in progress")
    assert "limits.streams_per_key" in refused.json()["detail"]
    other = httpx.get(f"{url}/v1/models", headers=bearer(), timeout=30)
    assert other.status_code == 200  # only answering routes take a slot
    assert not results  # both are still in flight
    engine.gate.set()
    for t in threads:
        t.join(timeout=30)
    assert results["stream"].status_code == 200 and "event: answer" in results["stream"].text
    assert results["plain"].status_code == 200
    wait_for(lambda: held() == 0)  # freed once the answers were sent
    assert httpx.post(f"{url}/v1/chat", json=QUESTION, headers=bearer(), timeout=30).status_code == 200


@pytest.mark.slow
def test_a_client_hanging_up_mid_stream_frees_its_slot(live):
    url, engine, held = live
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", f"{url}/v1/chat", json=QUESTION | {"stream": True}, headers=bearer()) as r:
            assert r.status_code == 200
            # The reader is kept: a `next(r.iter_text())` leaves the iterator to the garbage collector,
            # whose closing it hangs the connection up at once, racing the check below.
            chunks = r.iter_text()
            assert "event: delta" in next(chunks)
            wait_for(lambda: held() == 1)  # held while the answer streams (read from another connection)
            del chunks
        # Hung up while the answer is still being generated.
    engine.gate.set()
    wait_for(lambda: held() == 0)


def test_a_dead_replicas_slots_expire(tmp_path):
    store = LimitStore(Database.open(None, tmp_path))
    t = 1_700_000_000.0
    assert store.acquire_slot("key:shop", 2, 60, t) and store.acquire_slot("key:shop", 2, 60, t)
    assert store.acquire_slot("key:shop", 2, 60, t + 59) is None  # both still held (their replica died)
    assert store.acquire_slot("key:shop", 2, 60, t + 61) is not None  # expired: not leaked forever
    assert store.slots_held("key:shop", t + 61) == 1


def test_the_daily_token_budget(ollama_settings, ollama_stand_in, tmp_path, build):
    ollama_stand_in.replies = [REPLY]
    generative = ollama_settings.model_copy(
        update={"chat": ollama_settings.chat.model_copy(update={"answer_mode": "generative"})}
    )
    client = build(with_limits(generative, tmp_path, keys(), daily_tokens_per_key=50), engine=OllamaEngine(generative))
    first = client.post("/v1/chat", json=QUESTION, headers=bearer())
    assert first.status_code == 200 and first.json()["mode"] == "generated"
    body = first.json()
    spent = body["usage"]["total_tokens"] if "usage" in body else body["context"]["prompt_tokens"]
    assert spent > 50  # one answer's prompt alone is over this small budget
    store = LimitStore(Database.open(client.app.state.db.url, tmp_path))
    assert store.tokens_today("key:shop", time.time()) == spent
    refused = client.post("/v1/chat", json=QUESTION, headers=bearer())
    retry = assert_429(refused, "limits.daily_tokens_per_key")
    assert abs(retry - ((int(time.time() // DAY_S) + 1) * DAY_S - time.time())) < 5  # midnight UTC
    assert client.get("/v1/models", headers=bearer()).status_code == 200  # only answers spend tokens
    # The budget is per key; an answer that asks no model (a hand-off) spends nothing.
    handoff = client.post(
        "/v1/chat", json={"message": "What is the boiling point of tungsten on Jupiter?"}, headers=bearer(OTHER_KEY)
    )
    assert handoff.status_code == 200 and handoff.json()["mode"] == "no_evidence"
    assert store.tokens_today("key:blog", time.time()) == 0
    assert client.post("/v1/chat", json=QUESTION, headers=bearer(OTHER_KEY)).status_code == 200
    assert store.tokens_today("key:blog", time.time()) == spent
    store.db.close()


def test_replicas_on_postgres_never_hand_out_more_slots_than_the_limit(pg_url, tmp_path):
    replicas = [LimitStore(Database.open(pg_url, tmp_path)) for _ in range(4)]
    now = time.time()
    won: list[str | None] = []
    start = threading.Barrier(12)

    def grab(store: LimitStore) -> None:
        start.wait()
        won.append(store.acquire_slot("key:pg-shop", 3, 60, now))

    threads = [threading.Thread(target=grab, args=(replicas[i % 4],)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([w for w in won if w]) == 3
    assert replicas[0].slots_held("key:pg-shop", now) == 3
    # Request counts are shared the same way.
    results = [replicas[i % 4].count([("key:pg-count", 5)], 60, now)[1] for i in range(7)]
    assert [bool(over) for over in results] == [False] * 5 + [True] * 2
    for store in replicas:
        store.db.close()


def test_streams_closed_by_the_client_spend_the_budget(ollama_settings, ollama_stand_in, retriever, tmp_path):
    """Issue 18.3: three streamed answers closed after their text arrived counted 0 tokens."""
    settings = generative_limits(ollama_settings, ollama_stand_in, tmp_path, streams_per_key=2, daily_tokens_per_key=10**6)
    engine = GatedEngine(OllamaEngine(settings))
    with serving(settings, engine, retriever, tmp_path) as (url, store):
        for n in range(1, 4):
            engine.gate.clear()
            with httpx.Client(timeout=30) as http:
                with http.stream("POST", f"{url}/v1/chat", json=QUESTION | {"stream": True}, headers=bearer()) as r:
                    assert r.status_code == 200 and "event: delta" in next(r.iter_text())
            engine.gate.set()
            wait_for(lambda: store.slots_held("key:shop", time.time()) == 0)
            # What the cut-short answer spent cannot be known: it is charged its whole reservation.
            assert store.tokens_today("key:shop", time.time()) == n * answer_reservation(settings)
        assert store.tokens_reserved("key:shop", time.time()) == 0


def test_concurrent_answers_overshoot_the_budget_by_one_answer_at_most(ollama_settings, ollama_stand_in, retriever, tmp_path):
    """Issue 18.3: four concurrent answers from a fresh budget all ran and spent far past it."""
    budget = 150  # the stand-in's answers cost 120 tokens each: one fits, four are 480
    settings = generative_limits(ollama_settings, ollama_stand_in, tmp_path, streams_per_key=4, daily_tokens_per_key=budget)
    engine = GatedEngine(OllamaEngine(settings))
    with serving(settings, engine, retriever, tmp_path) as (url, store):
        results: list[httpx.Response] = []

        def ask() -> None:
            results.append(httpx.post(f"{url}/v1/chat", json=QUESTION, headers=bearer(), timeout=60))

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        # Each answer is either refused at once or held at the gate; then the gate opens.
        wait_for(lambda: len(results) + store.slots_held("key:shop", time.time()) == 4)
        engine.gate.set()
        for t in threads:
            t.join(timeout=60)
        answered = [r for r in results if r.status_code == 200]
        for refused in (r for r in results if r.status_code != 200):
            assert_429(refused, "limits.daily_tokens_per_key")
        assert len(answered) == 1, [r.status_code for r in results]
        one_answer = answered[0].json()["usage"]["total_tokens"]
        # Settled once the response has gone out, in the same transaction that frees the slot.
        wait_for(lambda: store.slots_held("key:shop", time.time()) == 0)
        spent = store.tokens_today("key:shop", time.time())
        assert spent == one_answer and spent <= budget + one_answer
        # 30 tokens are left, so one more answer starts (and crosses the budget by less than itself); then none.
        assert httpx.post(f"{url}/v1/chat", json=QUESTION, headers=bearer(), timeout=60).status_code == 200
        wait_for(lambda: store.slots_held("key:shop", time.time()) == 0)
        assert_429(httpx.post(f"{url}/v1/chat", json=QUESTION, headers=bearer(), timeout=60), "limits.daily_tokens_per_key")
