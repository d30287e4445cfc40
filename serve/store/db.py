"""One small SQL seam over SQLite (one machine) and Postgres (replicas).

Statements are written once with `?` placeholders and portable SQL (`INSERT ... ON CONFLICT`,
`RETURNING`, no AUTOINCREMENT: ids are made by the caller); `Database` turns the placeholders into
`%s` for Postgres. `execute` runs one statement in its own transaction; `transaction()` groups
several. Both are safe to call from several threads (the API runs store calls in a thread pool).

SQLite keeps one connection behind a lock (its writers serialize anyway). Postgres keeps a small
pool of connections, so one slow statement does not hold up every other request of the replica;
a connection that has sat idle is checked before it is used, so a restarted Postgres costs no
request an error, and a connection that fails is dropped, not returned to the pool.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ragtune.errors import ConfigError, RagtuneError


class StoreUnavailable(RagtuneError):
    """The store's database cannot be reached (a Postgres server down, a read-only file)."""

    status_code = 503


_UNAVAILABLE: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)
# A pooled connection idle for longer than this is pinged before use (a restarted server or a
# firewall that dropped the idle socket would otherwise fail the request that picks it up).
PING_AFTER_S = 5.0
_REAL = re.compile(r"\bREAL\b", re.IGNORECASE)


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

    def __init__(self, dialect: str, connect, url: str, pool_size: int = 8, wait_s: float = 30.0):
        self.dialect = dialect  # "sqlite" | "postgres"
        self.url = url
        self._connect = connect
        self._lock = threading.Lock()
        self._conn: Any = None  # SQLite's one connection
        self._idle: list[tuple[Any, float]] = []  # Postgres: (connection, idle since)
        self._slots = threading.BoundedSemaphore(pool_size)
        self.pool_size = pool_size
        self._wait_s = wait_s
        self._generation = 0  # bumped by close(): connections from before it are not pooled again

    @classmethod
    def open(cls, url: str | None, data_dir: Path, pool_size: int = 8) -> Database:
        """`None` or `sqlite:///path`: a SQLite file (default `<data_dir>/conversations.sqlite3`);
        `postgresql://user:pass@host/db`: Postgres (needs the `psycopg` package), with up to
        `pool_size` connections."""
        if not url or url.startswith("sqlite:"):
            path = Path(url[len("sqlite:///") :]) if url else Path(data_dir) / "conversations.sqlite3"
            return cls("sqlite", lambda: _sqlite(path), f"sqlite:///{path}")
        if url.startswith(("postgresql://", "postgres://")):
            return cls("postgres", lambda: _postgres(url), url, pool_size=pool_size)
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
        if self.dialect == "sqlite":
            with self._sqlite_transaction() as tx:
                yield tx
        else:
            with self._postgres_transaction() as tx:
                yield tx

    @contextlib.contextmanager
    def _sqlite_transaction(self) -> Iterator[Cursor]:
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield _Tx(conn, self._translate)
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite has already rolled back after some errors (a full disk): a second
                    # ROLLBACK would fail and hide the error that says what went wrong.
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except _UNAVAILABLE as exc:
                raise StoreUnavailable(f"the conversation store (sqlite) is not usable: {exc}") from exc

    @contextlib.contextmanager
    def _postgres_transaction(self) -> Iterator[Cursor]:
        if not self._slots.acquire(timeout=self._wait_s):
            raise StoreUnavailable(
                f"all {self.pool_size} store connections stayed busy for {self._wait_s:.0f} s (store.pool_size)"
            )
        conn = None
        generation = self._generation
        try:
            try:
                conn = self._checkout()
                with conn.transaction():
                    yield _Tx(conn, self._translate)
            except _pg_errors() as exc:
                _discard(conn)
                conn = None
                raise StoreUnavailable(f"the conversation store (postgres) is not usable: {exc}") from exc
            except BaseException:
                if conn is not None and (conn.closed or conn.broken):
                    _discard(conn)
                    conn = None
                raise
        finally:
            # Committed, or an error in the caller's block (rolled back): the connection is fine.
            if conn is not None:
                self._checkin(conn, generation)
            self._slots.release()

    def _checkout(self) -> Any:
        while True:
            with self._lock:
                conn, since = self._idle.pop() if self._idle else (None, 0.0)
            if conn is None:
                return self._connect()
            if conn.closed or conn.broken:
                continue
            if time.monotonic() - since > PING_AFTER_S:
                try:
                    conn.execute("SELECT 1")
                except _pg_errors():
                    _discard(conn)
                    continue
            return conn

    def _checkin(self, conn: Any, generation: int) -> None:
        with self._lock:
            if generation != self._generation or conn.closed or conn.broken:
                _discard(conn)
            else:
                self._idle.append((conn, time.monotonic()))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.transaction() as tx:
            return tx.execute(sql, params)

    def ensure(self, *ddl: str) -> None:
        """Create tables and indexes if they are missing (statements use IF NOT EXISTS).

        On Postgres a column type REAL becomes DOUBLE PRECISION: Postgres' REAL has 4 bytes, which
        rounds a unix timestamp to about two minutes (SQLite's REAL has 8)."""
        with self.transaction() as tx:
            if self.dialect == "postgres":
                # Two replicas starting together would race on CREATE ... IF NOT EXISTS (it is not
                # atomic in Postgres); the advisory lock makes them take turns.
                tx.execute("SELECT pg_advisory_xact_lock(7140117)")
            for statement in ddl:
                tx.execute(_REAL.sub("DOUBLE PRECISION", statement) if self.dialect == "postgres" else statement)

    def close(self) -> None:
        """Close every connection (a later call opens new ones)."""
        with self._lock:
            self._generation += 1
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            _discard(conn)


def _discard(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


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
