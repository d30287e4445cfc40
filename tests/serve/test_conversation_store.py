"""Conversations and feedback in the store, on SQLite and on a real Postgres."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from ragtune.errors import NotFoundError, UserInputError
from serve.store import Database
from serve.store.conversations import ConversationStore

OLD_LAYOUT = (
    "CREATE TABLE IF NOT EXISTS messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL,"
    " content TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (session_id, seq))"
)  # what serve/conversations.py created before the store held feedback


@pytest.fixture
def store(store_url, tmp_path):
    db = Database.open(store_url, tmp_path)
    yield ConversationStore(db)
    db.close()


def test_turns_are_numbered_per_session_and_history_is_kept(store):
    assert store.append("s1", "How do I cancel?", "Under Settings > Billing.") == 0
    assert store.append("s2", "Hi", "Hello.") == 0
    assert store.append("s1", "And my files?", "Nothing is deleted.") == 1
    assert [(t.role, t.content) for t in store.history("s1", 6)] == [
        ("user", "How do I cancel?"),
        ("assistant", "Under Settings > Billing."),
        ("user", "And my files?"),
        ("assistant", "Nothing is deleted."),
    ]
    assert [t.content for t in store.history("s1", 1)] == ["And my files?", "Nothing is deleted."]
    assert store.history("unknown", 6) == [] and store.history("s1", 0) == []


def test_feedback_is_recorded_replaced_and_listed(store):
    store.append("s1", "How do I cancel?", "Under Settings > Billing.")
    store.append("s1", "And my files?", "Nothing is deleted.")
    store.append("s2", "Refund?", "Within 30 days.")
    store.add_feedback("s1", 1, "up", principal="website")
    store.add_feedback("s1", 1, "down", "  It did not say where the files go.  ")  # the later rating replaces it
    page = store.recent(limit=10)
    assert page.total == 2 and [c.session_id for c in page.conversations] == ["s2", "s1"]  # most recent first
    s1 = page.conversations[1]
    assert [(t.turn, t.question, t.answer) for t in s1.turns] == [
        (0, "How do I cancel?", "Under Settings > Billing."),
        (1, "And my files?", "Nothing is deleted."),
    ]
    assert s1.turns[0].feedback is None
    rated = s1.turns[1].feedback
    assert rated is not None and (rated.rating, rated.comment, rated.principal) == (
        "down",
        "It did not say where the files go.",
        None,
    )
    assert [c.session_id for c in store.recent(rating="down").conversations] == ["s1"]
    assert store.recent(rating="up").total == 0
    second = store.recent(limit=1, offset=1)
    assert second.total == 2 and [c.session_id for c in second.conversations] == ["s1"]


def test_feedback_on_an_unknown_session_or_turn_is_not_found(store):
    store.append("s1", "How do I cancel?", "Under Settings > Billing.")
    with pytest.raises(NotFoundError, match="no conversation with session_id 'nope'"):
        store.add_feedback("nope", 0, "up")
    with pytest.raises(NotFoundError, match="has 1 answer"):
        store.add_feedback("s1", 1, "up")
    for bad in (("bad id!", 0, "up"), ("s1", -1, "up"), ("s1", 0, "meh")):
        with pytest.raises(UserInputError):
            store.add_feedback(*bad)
    assert store.recent().conversations[0].turns[0].feedback is None


def test_two_replicas_appending_to_one_session_never_collide(store_url, tmp_path):
    """Two processes' stores (two Database objects) append to the same session at once."""
    replicas = [ConversationStore(Database.open(store_url, tmp_path)) for _ in range(2)]
    turns: list[int] = []
    errors: list[BaseException] = []

    def talk(store: ConversationStore, n: int) -> None:
        try:
            for i in range(15):
                turns.append(store.append("shared", f"q{n}-{i}", f"a{n}-{i}"))
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(store, n)) for n, store in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(turns) == list(range(30))
    listed = replicas[0].recent().conversations[0].turns
    assert [t.turn for t in listed] == list(range(30))
    assert all(t.question[1:] == t.answer[1:] for t in listed)  # each answer follows its own question
    for store in replicas:
        store.db.close()


def test_a_store_written_before_feedback_existed_keeps_working(store_url, tmp_path):
    """A conversations file of the earlier layout (messages only) is read, listed and continued."""
    db = Database.open(store_url, tmp_path)
    db.execute(OLD_LAYOUT)
    rows = [("old", 0, "user", "Hi", 100.0), ("old", 1, "assistant", "Hello.", 100.0)]
    rows += [("old", 2, "user", "Refund?", 200.0), ("old", 3, "assistant", "Within 30 days.", 200.0)]
    for row in rows:
        db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", row)
    store = ConversationStore(db)
    assert [t.content for t in store.history("old", 1)] == ["Refund?", "Within 30 days."]
    page = store.recent()
    assert page.total == 1 and (page.conversations[0].started_at, page.conversations[0].updated_at) == (100.0, 200.0)
    store.add_feedback("old", 1, "up")
    assert store.append("old", "Thanks", "You're welcome.") == 2
    db.close()


def test_training_reads_the_file_the_store_writes(tmp_path):
    """train/ reads the SQLite file without importing serve: the layout is the contract."""
    from train.sources import read_conversations

    db = Database.open(None, tmp_path)
    store = ConversationStore(db)
    store.append("s1", "How do I cancel?", "Under Settings > Billing.")
    store.add_feedback("s1", 0, "up")
    store.append("s2", "Can I pay by fax?", "No, only card, PayPal or bank transfer.")
    store.add_feedback("s2", 0, "down")  # a rated-down answer stays history, never a target
    db.close()
    with sqlite3.connect(tmp_path / "conversations.sqlite3") as raw:
        tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"messages", "conversations", "feedback"} <= tables
    assert [(p.question, p.answer) for p in read_conversations(tmp_path / "conversations.sqlite3")] == [
        ("How do I cancel?", "Under Settings > Billing.")
    ]


def test_a_conversation_is_its_openers_and_listed_once_it_has_an_answer(store):
    from serve.store.conversations import Caller

    shop, shop_elsewhere = Caller("widget:shop", "https://shop.example"), Caller("widget:shop", None)
    store.claim("s1", shop)
    store.claim("s1", shop)  # the owner again: fine
    assert store.recent().total == 0  # claimed, but no answer yet (it may never come: a 503)
    assert store.append("s1", "Refund?", "Within 30 days.") == 0
    assert store.recent().total == 1
    for other in (Caller("widget:blog", "https://blog.example"), shop_elsewhere, Caller("local")):
        with pytest.raises(NotFoundError, match="for this key and origin"):
            store.claim("s1", other)
        with pytest.raises(NotFoundError, match="for this key and origin"):
            store.add_feedback("s1", 0, "down", caller=other)
    store.add_feedback("s1", 0, "up", caller=shop)
    assert store.recent().conversations[0].turns[0].feedback.rating == "up"
    with pytest.raises(NotFoundError, match="no conversation with session_id 'nope'"):
        store.add_feedback("nope", 0, "up", caller=shop)  # rating does not create a conversation
    assert store.recent().total == 1
