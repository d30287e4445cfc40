"""One small SQL seam over SQLite (one machine) and Postgres (replicas).

Statements are written once with `?` placeholders and portable SQL (`INSERT ... ON CONFLICT`,
`RETURNING`, no AUTOINCREMENT: ids are made by the caller); `Database` turns the placeholders into
`%s` for Postgres. `execute` runs one statement in its own transaction; `transaction()` groups
several. Both are safe to call from several threads (the API runs store calls in a thread pool).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ragtune.errors import ConfigError, RagtuneError


class StoreUnavailable(RagtuneError):
    """The store's database cannot be reached (a Postgres server down, a read-only file)."""

    status_code = 503


_UNAVAILABLE: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...


class _Tx:
    def __init__(self, raw: Any, translate):
        self._raw = raw
        self._translate = translate

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cur = self._raw.execute(self._translate(sql), tuple(params))
        return list(cur.fetchall()) if cur.description else []


class Database:
    """A connection to the store: `Database.open(url, data_dir)`."""

    def __init__(self, dialect: str, connect, url: str):
        self.dialect = dialect  # "sqlite" | "postgres"
        self.url = url
        self._connect = connect
        self._lock = threading.Lock()
        self._conn: Any = None

    @classmethod
    def open(cls, url: str | None, data_dir: Path) -> Database:
        """`None` or `sqlite:///path`: a SQLite file (default `<data_dir>/conversations.sqlite3`);
        `postgresql://user:pass@host/db`: Postgres (needs the `psycopg` package)."""
        if not url or url.startswith("sqlite:"):
            path = Path(url[len("sqlite:///") :]) if url else Path(data_dir) / "conversations.sqlite3"
            return cls("sqlite", lambda: _sqlite(path), f"sqlite:///{path}")
        if url.startswith(("postgresql://", "postgres://")):
            return cls("postgres", lambda: _postgres(url), url)
        raise ConfigError(f"store.url must start with sqlite:/// or postgresql://, not {url.split(':', 1)[0]}:")

    def _translate(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """Statements that commit together or not at all (BEGIN IMMEDIATE on SQLite)."""
        with self._lock:
            try:
                conn = self._connection()
                if self.dialect == "sqlite":
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield _Tx(conn, self._translate)
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                else:
                    with conn.transaction():
                        yield _Tx(conn, self._translate)
            except _UNAVAILABLE + _pg_errors() as exc:
                self._reset()
                raise StoreUnavailable(f"the conversation store ({self.dialect}) is not usable: {exc}") from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.transaction() as tx:
            return tx.execute(sql, params)

    def ensure(self, *ddl: str) -> None:
        """Create tables and indexes if they are missing (statements use IF NOT EXISTS)."""
        with self.transaction() as tx:
            for statement in ddl:
                tx.execute(statement)

    def _reset(self) -> None:
        # A broken Postgres connection is replaced on the next call; SQLite keeps its file handle.
        if self.dialect == "postgres" and self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _sqlite(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _postgres(url: str) -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigError("store.url names Postgres: install the psycopg package (pip install 'psycopg[binary]')") from exc
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot connect to the Postgres store: {exc}") from exc


def _pg_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:
        return ()
    return (psycopg.OperationalError, psycopg.InterfaceError)
