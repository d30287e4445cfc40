"""Access control against the real app: widget and admin keys, origins and CORS, the open loopback
mode, and keys that must never show up in logs or in `ragtune config`."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient

from ragtune.errors import ConfigError
from ragtune.settings import AuthSettings, load_settings
from serve.app import ADMIN_ACCESS, create_app, run_server
from serve.auth import check_bind

# Fixed, random-looking keys (deterministic, so no run can draw one the placeholder check refuses).
WIDGET_KEY = "wk_3f9a1c7e5b2d8046a9e1f3c5b7d90e2a"
BLOG_KEY = "wk_71c0d9e4a2b6f8135e7c9a0b4d2f6e81"
ADMIN_KEY = "ak_8c1e5a9f3b7d2064e8a0c4f6b2d91e7c"
SHOP = "https://shop.example"
BLOG = "https://blog.example"
PARTNER = "https://partner.example"
QUESTION = {"message": "How do I get a refund?"}


def keyed_auth(**extra) -> AuthSettings:
    return AuthSettings.model_validate(
        {
            "widget_keys": [
                {"name": "shop", "key": WIDGET_KEY, "origins": [SHOP]},
                {"name": "blog", "key": BLOG_KEY, "origins": [BLOG]},
            ],
            "admin_keys": [{"name": "ops", "key": ADMIN_KEY}],
        }
        | extra
    )


@pytest.fixture
def base_settings(knowledge_index, tmp_path):
    settings, _ = knowledge_index
    return settings.model_copy(
        update={
            "llm": settings.llm.model_copy(update={"engine": "none"}),
            "store": settings.store.model_copy(update={"url": f"sqlite:///{tmp_path / 'store.sqlite3'}"}),
            "limits": settings.limits.model_copy(update={"requests_per_key": 0, "requests_per_address": 0}),
        }
    )


@pytest.fixture
def build(retriever):
    """A client over the real app plus a small admin route (the admin API stands in for it here),
    wired the way the real admin router is: `include_router(router, dependencies=ADMIN_ACCESS)`."""
    clients: list[TestClient] = []

    def make(settings, client=("testclient", 50000)) -> TestClient:
        app = create_app(settings, engine=None, retriever=retriever, warm_up=False)
        admin = APIRouter(prefix="/v1/admin")

        @admin.get("/whoami")
        async def whoami(request: Request) -> dict:
            principal = request.state.principal
            return {"name": principal.name, "kind": principal.kind}

        app.include_router(admin, dependencies=ADMIN_ACCESS)
        # Under a loopback name: the server answers loopback Hosts only without keys (serve/hosts.py).
        test_client = TestClient(app, client=client, base_url="http://localhost")
        test_client.__enter__()
        clients.append(test_client)
        return test_client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def keyed(base_settings, build):
    return build(base_settings.model_copy(update={"auth": keyed_auth()}))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_missing_or_wrong_key_is_401_with_www_authenticate(keyed):
    for headers in ({}, bearer("wk_not-a-key-this-server-knows-at-all"), {"Authorization": f"Basic {WIDGET_KEY}"}):
        response = keyed.post("/v1/chat", json=QUESTION, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "Unauthorized" and "key" in response.json()["detail"]
    models = keyed.get("/v1/models")
    assert models.status_code == 401 and models.json()["error"]["type"] == "Unauthorized"  # OpenAI's shape there
    completions = keyed.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "refund?"}]})
    assert completions.status_code == 401 and completions.headers["www-authenticate"] == "Bearer"
    assert keyed.get("/v1/admin/whoami").status_code == 401
    # Open routes stay open.
    assert keyed.get("/healthz").status_code == 200 and keyed.get("/readyz").status_code == 200


def test_a_widget_key_opens_the_chat_routes_only(keyed):
    ok = keyed.post("/v1/chat", json=QUESTION, headers=bearer(WIDGET_KEY))
    assert ok.status_code == 200 and ok.json()["mode"] == "extractive"
    assert keyed.get("/v1/models", headers={"X-API-Key": WIDGET_KEY}).status_code == 200
    openai = keyed.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "refund?"}]}, headers=bearer(WIDGET_KEY)
    )
    assert openai.status_code == 200
    denied = keyed.get("/v1/admin/whoami", headers=bearer(WIDGET_KEY))
    assert denied.status_code == 403 and denied.json()["error"] == "Forbidden" and "admin key" in denied.json()["detail"]


def test_an_admin_key_opens_everything(keyed):
    assert keyed.get("/v1/admin/whoami", headers=bearer(ADMIN_KEY)).json() == {"name": "ops", "kind": "admin"}
    assert keyed.post("/v1/chat", json=QUESTION, headers=bearer(ADMIN_KEY)).status_code == 200
    assert keyed.get("/v1/models", headers={"X-API-Key": ADMIN_KEY}).status_code == 200


def test_a_key_given_as_its_sha256_works_the_same(base_settings, build):
    digest = hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
    auth = AuthSettings.model_validate({"admin_keys": [{"name": "ops", "key_sha256": digest.upper()}]})
    client = build(base_settings.model_copy(update={"auth": auth}))
    assert client.get("/v1/admin/whoami", headers=bearer(ADMIN_KEY)).json()["kind"] == "admin"
    assert client.get("/v1/admin/whoami", headers=bearer(digest)).status_code == 401  # the hash is not the key


def test_a_widget_key_is_refused_from_an_origin_it_does_not_list(keyed):
    ok = keyed.post("/v1/chat", json=QUESTION, headers=bearer(WIDGET_KEY) | {"Origin": SHOP})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == SHOP
    assert "Origin" in ok.headers["vary"]
    evil = keyed.post("/v1/chat", json=QUESTION, headers=bearer(WIDGET_KEY) | {"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "https://evil.example" in evil.json()["detail"]
    assert "access-control-allow-origin" not in evil.headers  # an unknown origin learns nothing
    # The blog's origin is known (its own key may be used there), but not with the shop's key; the
    # browser may read the 403 so the site owner sees why.
    crossed = keyed.post("/v1/chat", json=QUESTION, headers=bearer(WIDGET_KEY) | {"Origin": BLOG})
    assert crossed.status_code == 403 and "'shop'" in crossed.json()["detail"]
    assert crossed.headers["access-control-allow-origin"] == BLOG
    # Without Origin (a server, not a browser) the key works; the same origin as the API always does.
    assert keyed.post("/v1/chat", json=QUESTION, headers=bearer(WIDGET_KEY)).status_code == 200
    assert keyed.get("/v1/admin/whoami", headers=bearer(ADMIN_KEY) | {"Origin": "http://localhost"}).status_code == 200
    # ... but Host agreeing with Origin vouches for nothing under a name the server does not trust.
    rebound = bearer(WIDGET_KEY) | {"Origin": "https://evil.example", "Host": "evil.example"}
    assert keyed.post("/v1/chat", json=QUESTION, headers=rebound).status_code == 403
    assert keyed.get("/v1/admin/whoami", headers=bearer(ADMIN_KEY) | {"Origin": SHOP}).status_code == 403


def test_server_cors_origins_add_origins_for_every_key(base_settings, build):
    server = base_settings.server.model_copy(update={"cors_origins": [PARTNER]})
    client = build(base_settings.model_copy(update={"auth": keyed_auth(), "server": server}))
    for key in (WIDGET_KEY, ADMIN_KEY):
        response = client.get("/v1/models", headers=bearer(key) | {"Origin": PARTNER})
        assert response.status_code == 200 and response.headers["access-control-allow-origin"] == PARTNER


def test_a_preflight_from_a_configured_origin_allows_the_key_headers(keyed):
    preflight = {
        "Origin": SHOP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    response = keyed.options("/v1/chat", headers=preflight)
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == SHOP
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]
    # Any widget key's origin passes the preflight (the preflight carries no key).
    assert keyed.options("/v1/chat", headers=preflight | {"Origin": BLOG}).status_code == 204
    refused = keyed.options("/v1/chat", headers=preflight | {"Origin": "https://evil.example"})
    assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
    assert "access-control-allow-origin" not in refused.headers


def test_errors_reach_the_browser_with_cors_headers(base_settings, build):
    server = base_settings.server.model_copy(update={"max_body_mb": 0.01})
    client = build(base_settings.model_copy(update={"auth": keyed_auth(), "server": server}))
    too_big = client.post("/v1/chat", json={"message": "x" * 20000}, headers=bearer(WIDGET_KEY) | {"Origin": SHOP})
    assert too_big.status_code == 413 and too_big.headers["access-control-allow-origin"] == SHOP
    no_key = client.post("/v1/chat", json=QUESTION, headers={"Origin": SHOP})
    assert no_key.status_code == 401 and no_key.headers["access-control-allow-origin"] == SHOP
    assert "WWW-Authenticate" in no_key.headers["access-control-expose-headers"]


def test_keys_never_reach_the_log(base_settings, build, caplog):
    caplog.set_level(logging.DEBUG)
    client = build(base_settings.model_copy(update={"auth": keyed_auth()}))
    wrong = "wk_9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"
    client.post("/v1/chat", json=QUESTION, headers=bearer(WIDGET_KEY))
    client.post("/v1/chat", json=QUESTION, headers=bearer(wrong))
    client.get("/v1/admin/whoami", headers={"X-API-Key": ADMIN_KEY})
    client.__exit__(None, None, None)
    text = caplog.text
    assert "API keys required" in text and "'shop'" in text  # the start-up line names the keys' holders
    for secret in (WIDGET_KEY, ADMIN_KEY, wrong):
        assert secret not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text


def test_config_output_masks_keys(tmp_path, monkeypatch, capsys):
    from cli.main import main

    monkeypatch.setenv("RAGTUNE_AUTH__ADMIN_KEYS", json.dumps([{"name": "ops", "key": ADMIN_KEY}]))
    monkeypatch.setenv("RAGTUNE_AUTH__WIDGET_KEYS", json.dumps([{"name": "shop", "key": WIDGET_KEY, "origins": [SHOP]}]))
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)["auth"]
    assert [k["name"] for k in shown["admin_keys"]] == ["ops"] and shown["widget_keys"][0]["origins"] == [SHOP]
    for secret in (ADMIN_KEY, WIDGET_KEY):
        assert secret not in out and hashlib.sha256(secret.encode()).hexdigest() not in out
    # Loaded, the settings hold the hash only.
    settings = load_settings()
    assert settings.auth.admin_keys[0].key is None
    assert settings.auth.admin_keys[0].key_sha256 == hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
    assert ADMIN_KEY not in repr(settings)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("Xy7-short-key", "too short"),
        ("changeme-changeme-changeme-42", "placeholder"),
        ("your-api-key-goes-right-here-ok", "placeholder"),
        ("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "placeholder"),
        ("widget-key-for-testing-9f8e7d6c", "placeholder"),
        ("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", "too few characters"),
        ("ab12ab12ab12ab12ab12ab12ab12", "too few characters"),
    ],
)
def test_weak_keys_are_refused_with_advice(key, why, tmp_path):
    for variable in ("RAGTUNE_AUTH__ADMIN_KEYS", "RAGTUNE_AUTH__WIDGET_KEYS"):
        with pytest.raises(ConfigError) as raised:
            load_settings(environ={variable: json.dumps([{"name": "ops", "key": key}])}, cwd=tmp_path)
        message = str(raised.value)
        assert why in message and "secrets.token_urlsafe" in message and "'ops'" in message
        assert key not in message
        assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no chained input values


def test_key_settings_mistakes_are_config_errors(tmp_path):
    def load(auth: dict) -> None:
        load_settings(environ={}, overrides={"auth": auth}, cwd=tmp_path)

    with pytest.raises(ConfigError, match="not both"):
        load({"admin_keys": [{"name": "ops", "key": ADMIN_KEY, "key_sha256": "a" * 64}]})
    with pytest.raises(ConfigError, match="needs key"):
        load({"admin_keys": [{"name": "ops"}]})
    with pytest.raises(ConfigError, match="distinct"):
        load({"admin_keys": [{"name": "ops", "key": ADMIN_KEY}, {"name": "ops", "key": WIDGET_KEY}]})
    with pytest.raises(ConfigError, match="configured twice"):
        load({"admin_keys": [{"name": "ops", "key": ADMIN_KEY}], "widget_keys": [{"name": "shop", "key": ADMIN_KEY}]})
    with pytest.raises(ConfigError, match="scheme://host"):
        load({"widget_keys": [{"name": "shop", "key": WIDGET_KEY, "origins": ["https://shop.example/help"]}]})
    origins = load_settings(
        environ={}, overrides={"auth": {"widget_keys": [{"name": "s", "key": WIDGET_KEY, "origins": ["https://Shop.Example/"]}]}}
    )
    assert origins.auth.widget_keys[0].origins == [SHOP]


def test_without_keys_the_api_is_open_to_loopback_only(base_settings, build, caplog):
    caplog.set_level(logging.INFO)
    local = build(base_settings)
    assert "open to loopback clients only" in caplog.text
    assert local.post("/v1/chat", json=QUESTION).status_code == 200
    assert local.get("/v1/admin/whoami").json() == {"name": "local", "kind": "local"}
    relayed = local.post("/v1/chat", json=QUESTION, headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 401 and "proxy" in relayed.json()["detail"]
    # Even a server started some other way serves no one beyond loopback without keys.
    remote = build(base_settings, client=("203.0.113.9", 40000))
    refused = remote.post("/v1/chat", json=QUESTION)
    assert refused.status_code == 401 and "loopback" in refused.json()["detail"]
    assert build(base_settings, client=("127.0.0.1", 40000)).get("/v1/models").status_code == 200
    assert build(base_settings, client=("::1", 40000)).get("/v1/models").status_code == 200


def test_no_keys_means_no_listening_beyond_loopback(base_settings, capsys):
    from cli.main import main

    for host in ("0.0.0.0", "::", "192.0.2.10", "example.org"):
        with pytest.raises(ConfigError, match=f"refusing to listen on {host} without API keys"):
            run_server(base_settings, host, 8000)  # refused before anything is bound
    assert main(["serve", "--host", "0.0.0.0", "--port", "8000"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0" in err and "secrets.token_urlsafe" in err
    assert "open to loopback" in check_bind(base_settings, "127.0.0.1")
    assert "open to loopback" in check_bind(base_settings, "localhost")
    keyed = base_settings.model_copy(update={"auth": keyed_auth()})
    assert "API keys required" in check_bind(keyed, "0.0.0.0")


def test_keys_can_be_made_mandatory(base_settings):
    closed = base_settings.model_copy(update={"auth": AuthSettings(allow_unauthenticated_loopback=False)})
    with pytest.raises(ConfigError, match="allow_unauthenticated_loopback"):
        create_app(closed, engine=None)
    with pytest.raises(ConfigError, match="allow_unauthenticated_loopback"):
        check_bind(closed, "127.0.0.1")


def test_metrics_conversations_and_feedback_need_their_keys(keyed):
    """The routes beside chat: /metrics and the conversation list are the admin's, feedback is the widget's."""
    for path in ("/metrics", "/v1/admin/conversations"):
        assert keyed.get(path).status_code == 401
        assert keyed.get(path, headers=bearer("ak_not-a-key-this-server-knows-at-all")).status_code == 401
        denied = keyed.get(path, headers=bearer(WIDGET_KEY))
        assert denied.status_code == 403 and "admin key" in denied.json()["detail"]
        assert keyed.get(path, headers=bearer(ADMIN_KEY)).status_code == 200
    session = keyed.post("/v1/chat", json=QUESTION, headers=bearer(WIDGET_KEY) | {"Origin": SHOP}).json()["session_id"]
    rating = {"session_id": session, "turn": 0, "rating": "up"}
    assert keyed.post("/v1/feedback", json=rating).status_code == 401
    assert (
        keyed.post("/v1/feedback", json=rating, headers=bearer(WIDGET_KEY) | {"Origin": "https://evil.example"}).status_code
        == 403
    )
    assert keyed.post("/v1/feedback", json=rating, headers=bearer(WIDGET_KEY) | {"Origin": SHOP}).status_code == 200
    listed = keyed.get("/v1/admin/conversations", headers=bearer(ADMIN_KEY)).json()["conversations"]
    assert [c["session_id"] for c in listed] == [session] and listed[0]["turns"][0]["feedback"]["principal"] == "shop"


def test_a_session_belongs_to_the_key_and_origin_that_opened_it(keyed):
    """Issue 18.4: with a known session id, another key (or the same key from elsewhere) neither
    continues the conversation (its earlier question never reaches their answer's `query`) nor
    rates its answers; it gets a 404, as for a conversation that does not exist."""
    shop = bearer(WIDGET_KEY) | {"Origin": SHOP}
    first = keyed.post("/v1/chat", json={"message": "How do I get a refund on my annual plan?"}, headers=shop).json()
    session = first["session_id"]
    assert keyed.post("/v1/feedback", json={"session_id": session, "turn": 0, "rating": "up"}, headers=shop).status_code == 200

    follow_up = {"message": "and how long does it take?", "session_id": session}
    others = {
        "another widget key": bearer(BLOG_KEY) | {"Origin": BLOG},
        "the same key server-side": bearer(WIDGET_KEY),
        "an admin key": bearer(ADMIN_KEY),
    }
    for who, headers in others.items():
        for body in (follow_up, follow_up | {"stream": True}):
            taken = keyed.post("/v1/chat", json=body, headers=headers)
            assert taken.status_code == 404, (who, taken.text)
            assert "refund" not in taken.text and "for this key and origin" in taken.json()["detail"]
        rating = keyed.post("/v1/feedback", json={"session_id": session, "turn": 0, "rating": "down"}, headers=headers)
        assert rating.status_code == 404, (who, rating.text)

    # The owner's conversation is untouched: one answer, their rating, and it goes on with its history.
    listed = keyed.get("/v1/admin/conversations", headers=bearer(ADMIN_KEY)).json()["conversations"]
    assert [(c["session_id"], len(c["turns"])) for c in listed] == [(session, 1)]
    assert listed[0]["turns"][0]["feedback"]["rating"] == "up" and listed[0]["turns"][0]["feedback"]["principal"] == "shop"
    second = keyed.post("/v1/chat", json=follow_up, headers=shop)
    assert second.status_code == 200 and second.json()["turn"] == 1 and "refund" in second.json()["query"].lower()

    # Without a session id each caller starts their own, which only they can use.
    blog = bearer(BLOG_KEY) | {"Origin": BLOG}
    theirs = keyed.post("/v1/chat", json=QUESTION, headers=blog).json()["session_id"]
    assert theirs != session
    assert keyed.post("/v1/chat", json=QUESTION | {"session_id": theirs}, headers=shop).status_code == 404
