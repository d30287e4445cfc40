"""The store's schema as Alembic migrations: a fresh database, a database of the schema the store
had before migrations (created here the old way, with data), replicas migrating at once, and
`ragtune db upgrade`, on SQLite and on a real Postgres."""

from __future__ import annotations

import re
import threading

import pytest

from ragtune.errors import NotFoundError
from serve.store import Database, migrations
from serve.store.conversations import Caller, ConversationStore
from serve.store.jobs import JobStore
from serve.store.limits import LimitStore

# The tables exactly as the store created them before migrations (CREATE TABLE IF NOT EXISTS at
# start; on Postgres REAL was rewritten to DOUBLE PRECISION), copied from that code.
BEFORE_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL,"
    " content TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (session_id, seq))",
    "CREATE TABLE IF NOT EXISTS conversations (session_id TEXT PRIMARY KEY, started_at REAL NOT NULL,"
    " updated_at REAL NOT NULL, turns INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS conversations_updated ON conversations (updated_at)",
    "CREATE TABLE IF NOT EXISTS feedback (session_id TEXT NOT NULL, turn INTEGER NOT NULL, rating TEXT NOT NULL,"
    " comment TEXT, principal TEXT, created_at REAL NOT NULL, PRIMARY KEY (session_id, turn))",
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, slot TEXT UNIQUE, owner TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,
        stage TEXT NOT NULL DEFAULT '', request TEXT NOT NULL DEFAULT '{}', result TEXT,
        created_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
        heartbeat_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at)",
    "CREATE TABLE IF NOT EXISTS rate_windows (bucket TEXT NOT NULL, win BIGINT NOT NULL, hits BIGINT NOT NULL, "
    "PRIMARY KEY (bucket, win))",
    "CREATE TABLE IF NOT EXISTS answer_slots (slot_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS answer_slots_bucket ON answer_slots (bucket, expires)",
    "CREATE TABLE IF NOT EXISTS answer_slot_locks (bucket TEXT PRIMARY KEY, touched DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS token_usage (bucket TEXT NOT NULL, day BIGINT NOT NULL, tokens BIGINT NOT NULL, "
    "PRIMARY KEY (bucket, day))",
)
# The tables of today's schema (migration 0001); 0003 adds token_reservations.
TABLES = {"messages", "conversations", "feedback", "jobs", "rate_windows", "answer_slots", "answer_slot_locks", "token_usage"}
NEWEST = TABLES | {"token_reservations"}
SHOP = Caller("widget:shop", "https://shop.example")
BLOG = Caller("widget:blog", "https://blog.example")
NOW = 1_780_000_000.0


def _old_schema(db: Database) -> None:
    for statement in BEFORE_MIGRATIONS:
        db.execute(re.sub(r"\bREAL\b", "DOUBLE PRECISION", statement) if db.dialect == "postgres" else statement)


def _tables(db: Database) -> set[str]:
    import sqlalchemy

    with db.connection() as conn:
        return set(sqlalchemy.inspect(conn).get_table_names())


def _columns(db: Database, table: str) -> set[str]:
    import sqlalchemy

    with db.connection() as conn:
        return {c["name"] for c in sqlalchemy.inspect(conn).get_columns(table)}


def test_a_fresh_database_gets_every_table_at_the_newest_revision(store_url, tmp_path):
    db = Database.open(store_url, tmp_path)
    assert db.revision() == (None, migrations.head())
    db.migrate()
    assert db.revision() == (migrations.head(), migrations.head()) and migrations.head() == "0003"
    assert NEWEST | {migrations.VERSION_TABLE} == _tables(db)
    assert {"owner_key", "owner_origin"} <= _columns(db, "conversations")
    db.close()
    again = Database.open(store_url, tmp_path)  # the next start: nothing to do, nothing lost
    ConversationStore(again).append("s1", "Hi", "Hello.")
    again.migrate()
    assert ConversationStore(again).recent().total == 1
    again.close()


def test_a_database_of_the_schema_before_migrations_is_upgraded_with_its_data(store_url, tmp_path):
    old = Database.open(store_url, tmp_path)
    _old_schema(old)
    old.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", ("legacy", 0, "user", "Refund?", NOW))
    old.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", ("legacy", 1, "assistant", "Within 30 days.", NOW))
    old.execute("INSERT INTO conversations VALUES (?, ?, ?, ?)", ("legacy", NOW, NOW, 1))
    old.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?)", ("legacy", 0, "up", None, "shop", NOW))
    old.execute(
        "INSERT INTO jobs (job_id, kind, status, owner, created_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
        ("j1", "ingest", "succeeded", "host:1:abc", NOW, NOW),
    )
    old.execute("INSERT INTO token_usage VALUES (?, ?, ?)", ("key:shop", int(NOW // 86400), 321))
    old.close()

    db = Database.open(store_url, tmp_path)
    assert db.revision()[0] is None  # tables, but no version: the schema from before migrations
    db.migrate()
    assert db.revision()[0] == migrations.head()
    assert {"owner_key", "owner_origin"} <= _columns(db, "conversations")
    store = ConversationStore(db)
    [conversation] = store.recent().conversations
    assert [(t.question, t.answer, t.feedback and t.feedback.rating) for t in conversation.turns] == [
        ("Refund?", "Within 30 days.", "up")
    ]
    assert JobStore(db).get("j1")["status"] == "succeeded"
    assert LimitStore(db).tokens_today("key:shop", NOW) == 321
    # A conversation from before owners were recorded becomes its first caller's, and then only theirs.
    store.claim("legacy", SHOP)
    with pytest.raises(NotFoundError, match="for this key and origin"):
        store.claim("legacy", BLOG)
    assert store.append("legacy", "And annual plans?", "The same.") == 1
    db.close()


def test_an_old_file_with_messages_only_is_filled_into_conversations(tmp_path):
    db = Database.open(None, tmp_path)
    db.execute(BEFORE_MIGRATIONS[0])
    db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", ("old", 0, "user", "Hi", 100.0))
    db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", ("old", 1, "assistant", "Hello.", 200.0))
    db.migrate()
    assert db.execute("SELECT session_id, started_at, updated_at, turns FROM conversations") == [("old", 100.0, 200.0, 1)]
    db.close()


def test_replicas_starting_together_migrate_once(store_url, tmp_path):
    replicas = [Database.open(store_url, tmp_path) for _ in range(4)]
    errors: list[BaseException] = []

    def start(db: Database) -> None:
        try:
            db.migrate()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert replicas[0].execute(f"SELECT version_num FROM {migrations.VERSION_TABLE}") == [(migrations.head(),)]
    for db in replicas:
        db.close()


def test_a_second_migration_goes_down_and_up_again_without_losing_conversations(store_url, tmp_path):
    db = Database.open(store_url, tmp_path)
    db.migrate()
    ConversationStore(db).append("s1", "Hi", "Hello.")
    with db.connection() as conn, conn.begin():
        from alembic import command

        command.downgrade(migrations.config(conn), "0001")
    assert "owner_key" not in _columns(db, "conversations")
    with db.connection() as conn, conn.begin():
        migrations.upgrade(conn)
    assert db.execute("SELECT session_id, turns, owner_key FROM conversations") == [("s1", 1, None)]
    db.close()


def test_ragtune_db_upgrade_migrates_and_says_where_the_schema_stands(tmp_path, capsys, monkeypatch):
    from cli.main import main

    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    old = Database.open(url, tmp_path)
    _old_schema(old)
    old.close()
    monkeypatch.setenv("RAGTUNE_STORE__URL", url)
    assert main(["db", "current"]) == 1
    assert "not migrated" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"now at revision {migrations.head()}" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert f"at revision {migrations.head()} (the newest)" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert "already at" in capsys.readouterr().out
