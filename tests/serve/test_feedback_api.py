"""Turns, feedback and the admin conversation list over HTTP, on SQLite and on a real Postgres,
and two API replicas sharing one Postgres store."""

from __future__ import annotations

import json

import pytest

from .conftest import with_store


@pytest.fixture
def extractive(knowledge_index, store_url):
    """Answers without a model (fast, deterministic), conversations in the store under test."""
    settings, _ = knowledge_index
    return with_store(settings.model_copy(update={"llm": settings.llm.model_copy(update={"engine": "none"})}), store_url)


@pytest.fixture
def admin_client(retriever):
    """A client of an app that also serves GET /v1/admin/conversations (the lead mounts it under the admin key)."""
    from fastapi.testclient import TestClient

    from serve.app import create_app
    from serve.routes import admin_conversations

    clients = []

    def make(settings):
        app = create_app(settings, engine=None, retriever=retriever, warm_up=False)
        app.include_router(admin_conversations.router)
        client = TestClient(app).__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _stream_answer(client, message: str, session_id: str) -> dict:
    with client.stream("POST", "/v1/chat", json={"message": message, "session_id": session_id, "stream": True}) as response:
        assert response.status_code == 200
        blocks = [b for b in response.read().decode().split("\n\n") if b.startswith("event: answer")]
    return json.loads(blocks[0].split("\n")[1].removeprefix("data: "))


def test_answers_carry_their_turn_and_can_be_rated(extractive, admin_client):
    client = admin_client(extractive)
    first = client.post("/v1/chat", json={"message": "How long do I have to ask for a refund?"}).json()
    session = first["session_id"]
    assert first["turn"] == 0
    second = client.post("/v1/chat", json={"message": "What are the API rate limits?", "session_id": session}).json()
    assert second["turn"] == 1
    assert _stream_answer(client, "How do I reset my password?", session)["turn"] == 2

    rated = client.post("/v1/feedback", json={"session_id": session, "turn": 1, "rating": "down", "comment": "Too vague."})
    assert rated.status_code == 200, rated.text
    assert rated.json() | {"created_at": 0} == {
        "session_id": session,
        "turn": 1,
        "rating": "down",
        "comment": "Too vague.",
        "created_at": 0,
    }
    assert client.post("/v1/feedback", json={"session_id": session, "turn": 0, "rating": "up"}).status_code == 200

    listed = client.get("/v1/admin/conversations", params={"limit": 5}).json()
    assert listed["total"] == 1 and listed["limit"] == 5 and listed["offset"] == 0
    turns = listed["conversations"][0]["turns"]
    assert [t["question"] for t in turns] == [
        "How long do I have to ask for a refund?",
        "What are the API rate limits?",
        "How do I reset my password?",
    ]
    assert turns[1]["answer"] == second["answer"]
    assert [t["feedback"] and t["feedback"]["rating"] for t in turns] == ["up", "down", None]
    assert turns[1]["feedback"]["comment"] == "Too vague."


@pytest.mark.parametrize(
    ("payload", "status", "phrase"),
    [
        ({"session_id": "nope", "turn": 0, "rating": "up"}, 404, "no conversation with session_id 'nope'"),
        ({"turn": 1, "rating": "up"}, 404, "there is no turn 1"),  # the session exists (filled in below)
        ({"session_id": "bad id!", "turn": 0, "rating": "up"}, 422, "session_id"),
        ({"turn": 0, "rating": "meh"}, 422, "rating"),
        ({"turn": -1, "rating": "up"}, 422, "turn"),
        ({"turn": 0, "rating": "up", "comment": "x" * 2001}, 422, "comment"),
        ({"turn": 0, "rating": "up", "stars": 5}, 422, "stars"),
    ],
)
def test_bad_feedback_gets_a_4xx_that_says_why(extractive, make_client, payload, status, phrase):
    client = make_client(extractive, engine=None)
    session = client.post("/v1/chat", json={"message": "What are the API rate limits?"}).json()["session_id"]
    response = client.post("/v1/feedback", json={"session_id": session} | payload)
    assert response.status_code == status, response.text
    assert phrase in response.json()["detail"]


def test_admin_list_pages_and_filters(extractive, admin_client):
    client = admin_client(extractive)
    sessions = [client.post("/v1/chat", json={"message": "What are the API rate limits?"}).json()["session_id"] for _ in range(3)]
    client.post("/v1/feedback", json={"session_id": sessions[0], "turn": 0, "rating": "down"})
    page = client.get("/v1/admin/conversations", params={"limit": 2}).json()
    assert page["total"] == 3 and [c["session_id"] for c in page["conversations"]] == sessions[::-1][:2]
    rest = client.get("/v1/admin/conversations", params={"limit": 2, "offset": 2}).json()
    assert [c["session_id"] for c in rest["conversations"]] == [sessions[0]]
    down = client.get("/v1/admin/conversations", params={"rating": "down"}).json()
    assert down["total"] == 1 and down["conversations"][0]["session_id"] == sessions[0]
    assert client.get("/v1/admin/conversations", params={"limit": 0}).status_code == 422


def test_two_replicas_share_one_postgres_store(knowledge_index, pg_url, admin_client):
    """A conversation begun on one API replica continues on another: history, turns and feedback
    live in Postgres, not in either process."""
    settings, _ = knowledge_index
    shared = with_store(settings.model_copy(update={"llm": settings.llm.model_copy(update={"engine": "none"})}), pg_url)
    a, b = admin_client(shared), admin_client(shared)
    first = a.post("/v1/chat", json={"message": "How long is version history kept on the Pro plan?"}).json()
    follow = b.post("/v1/chat", json={"message": "And on Business?", "session_id": first["session_id"]}).json()
    assert follow["turn"] == 1
    # Replica b read the follow-up in the context of what replica a answered: it read a's history
    # ("And on Business?" alone names no subject: it is a's question, asked about Business).
    assert follow["query"] == "How long is version history kept on the business plan?"  # the earlier question, about Business
    assert follow["handoff"] is False and "180 days" in follow["answer"]
    assert b.post("/v1/feedback", json={"session_id": first["session_id"], "turn": 0, "rating": "up"}).status_code == 200
    listed = a.get("/v1/admin/conversations").json()["conversations"]
    assert [t["question"] for t in listed[0]["turns"]] == [
        "How long is version history kept on the Pro plan?",
        "And on Business?",
    ]
    assert listed[0]["turns"][0]["feedback"]["rating"] == "up"
