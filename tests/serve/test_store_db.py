"""The SQL seam the API's shared state goes through, on SQLite and on a real Postgres (pgserver)."""

from __future__ import annotations

import threading

import pytest

from ragtune.errors import ConfigError
from serve.store import Database
from serve.store.db import StoreUnavailable


def test_sqlite_default_file_is_the_conversations_file(tmp_path):
    db = Database.open(None, tmp_path)
    assert db.dialect == "sqlite" and (tmp_path / "conversations.sqlite3").exists() is False  # opened lazily
    db.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    db.execute("INSERT INTO t VALUES (?, ?)", ("a", 3))
    db.close()
    assert Database.open(f"sqlite:///{tmp_path / 'conversations.sqlite3'}", tmp_path).execute("SELECT n FROM t") == [(3,)]


def test_upserts_transactions_and_rollback(store_url, tmp_path):
    db = Database.open(store_url, tmp_path)
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    db.execute("INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n", ("a", 1))
    db.execute("INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n", ("a", 2))
    assert db.execute("SELECT n FROM t WHERE k = ?", ("a",)) == [(3,)]
    assert db.execute("INSERT INTO t VALUES (?, ?) RETURNING n", ("r", 7)) == [(7,)]
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (?, ?)", ("b", 1))
        raise RuntimeError("abort")
    assert db.execute("SELECT count(*) FROM t") == [(2,)]  # the aborted insert is gone
    db.execute("INSERT INTO t VALUES (?, ?)", ("c", 1))  # and the connection still works
    db.close()
    reopened = Database.open(store_url, tmp_path)
    assert reopened.execute("SELECT k, n FROM t ORDER BY k") == [("a", 3), ("c", 1), ("r", 7)]
    reopened.close()


def test_concurrent_increments_are_not_lost(store_url, tmp_path):
    db = Database.open(store_url, tmp_path, pool_size=3)
    db.execute("CREATE TABLE IF NOT EXISTS c (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")

    def bump():
        for _ in range(50):
            db.execute("INSERT INTO c VALUES ('x', 1) ON CONFLICT (k) DO UPDATE SET n = c.n + 1")

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.execute("SELECT n FROM c") == [(300,)]
    if db.dialect == "postgres":
        assert db.engine.pool.checkedin() <= 3  # never more connections than the pool allows
    db.close()


def test_unknown_url_scheme_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="sqlite:/// or postgresql://"):
        Database.open("mysql://db/x", tmp_path)


def _kill_other_connections(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_postgres_connections_dropped_by_the_server_are_replaced(pg_url, tmp_path):
    db = Database.open(pg_url, tmp_path)
    db.execute("CREATE TABLE t (n INTEGER)")
    db.execute("INSERT INTO t VALUES (?)", (1,))
    # A pooled connection is pinged when it is checked out (pool_pre_ping): a server restart costs no request an error.
    assert _kill_other_connections(pg_url) == 1
    assert db.execute("SELECT count(*) FROM t") == [(1,)]
    # A connection that dies in the middle of a request costs that request a 503, and the next one gets a new connection.
    with pytest.raises(StoreUnavailable) as failed, db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (?)", (2,))
        assert _kill_other_connections(pg_url) == 1
        tx.execute("SELECT count(*) FROM t")
    assert failed.value.status_code == 503 and "not usable" in str(failed.value)
    assert db.execute("SELECT count(*) FROM t") == [(1,)]  # the interrupted insert never committed
    db.close()


def test_postgres_down_is_a_503_not_a_hang(tmp_path):
    db = Database.open(f"postgresql://postgres@/postgres?host={tmp_path}&connect_timeout=2", tmp_path)
    with pytest.raises(StoreUnavailable, match="cannot connect to the Postgres store"):
        db.execute("SELECT 1")
