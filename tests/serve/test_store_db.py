"""The SQL seam the API's shared state goes through (SQLite here; Postgres in test_store_postgres)."""

from __future__ import annotations

import threading

import pytest

from ragtune.errors import ConfigError
from serve.store import Database


def test_sqlite_default_file_transactions_and_rollback(tmp_path):
    db = Database.open(None, tmp_path)
    assert db.dialect == "sqlite" and (tmp_path / "conversations.sqlite3").exists() is False  # opened lazily
    db.ensure("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    db.execute("INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n", ("a", 1))
    db.execute("INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n", ("a", 2))
    assert db.execute("SELECT n FROM t WHERE k = ?", ("a",)) == [(3,)]
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (?, ?)", ("b", 1))
        raise RuntimeError("abort")
    assert db.execute("SELECT count(*) FROM t") == [(1,)]  # the aborted insert is gone
    db.close()
    assert Database.open(f"sqlite:///{tmp_path / 'conversations.sqlite3'}", tmp_path).execute("SELECT n FROM t") == [(3,)]


def test_concurrent_increments_are_not_lost(tmp_path):
    db = Database.open(None, tmp_path)
    db.ensure("CREATE TABLE IF NOT EXISTS c (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")

    def bump():
        for _ in range(50):
            db.execute("INSERT INTO c VALUES ('x', 1) ON CONFLICT (k) DO UPDATE SET n = c.n + 1")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.execute("SELECT n FROM c") == [(200,)]


def test_unknown_url_scheme_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="sqlite:/// or postgresql://"):
        Database.open("mysql://db/x", tmp_path)
