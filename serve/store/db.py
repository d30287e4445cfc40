"""One small SQL seam over SQLite (one machine) and Postgres (replicas), on SQLAlchemy Core.

Statements are written once with `?` placeholders and portable SQL (`INSERT ... ON CONFLICT`,
`RETURNING`, no AUTOINCREMENT: ids are made by the caller) and run through the engine as driver
SQL; `Database` turns the placeholders into `%s` for psycopg. `execute` runs one statement in its
own transaction; `transaction()` groups several. Both are safe to call from several threads (the
API runs store calls in a thread pool).

The connections are SQLAlchemy's pool: Postgres keeps up to `store.pool_size`, each pinged when it
is checked out (`pool_pre_ping`), so a restarted server costs no request an error, and one that
fails mid-statement is invalidated, not handed out again. SQLite keeps one connection (its writers
serialize anyway), in WAL mode, and opens every transaction with BEGIN IMMEDIATE.

The tables are Alembic's (serve/store/migrations): `migrate()` brings a database to the newest
schema, at start and by `ragtune db upgrade`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from ragtune.errors import ConfigError, RagtuneError


class StoreUnavailable(RagtuneError):
    """The store's database cannot be reached (a Postgres server down, a read-only file)."""

    status_code = 503


# Errors that say the database is not usable now (as opposed to a wrong statement).
_UNAVAILABLE = (exc.OperationalError, exc.InterfaceError)
# Two replicas starting together take turns at migrating (a Postgres advisory lock's key).
MIGRATION_LOCK = 7140117


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...


class _Tx:
    def __init__(self, conn: Connection, translate):
        self._conn = conn
        self._translate = translate

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        result = self._conn.exec_driver_sql(self._translate(sql), tuple(params))
        return [tuple(row) for row in result] if result.returns_rows else []


class Database:
    """A connection pool to the store: `Database.open(url, data_dir)`."""

    def __init__(self, dialect: str, engine: Engine, url: str, pool_size: int, wait_s: float):
        self.dialect = dialect  # "sqlite" | "postgres"
        self.engine = engine
        self.url = url
        self.pool_size = pool_size
        self.wait_s = wait_s
        self._migrated = False
        self._migrate_lock = threading.Lock()

    @classmethod
    def open(cls, url: str | None, data_dir: Path, pool_size: int = 8, wait_s: float = 30.0) -> Database:
        """`None` or `sqlite:///path`: a SQLite file (default `<data_dir>/conversations.sqlite3`);
        `postgresql://user:pass@host/db`: Postgres (needs the `psycopg` package), with up to
        `pool_size` connections. Nothing is connected until the first statement."""
        if not url or url.startswith("sqlite:"):
            path = Path(url[len("sqlite:///") :]) if url else Path(data_dir) / "conversations.sqlite3"
            return cls("sqlite", _sqlite_engine(path, wait_s), f"sqlite:///{path}", 1, wait_s)
        if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            return cls("postgres", _postgres_engine(url, pool_size, wait_s), url, pool_size, wait_s)
        raise ConfigError(f"store.url must start with sqlite:/// or postgresql://, not {url.split(':', 1)[0]}:")

    def _translate(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled SQLAlchemy connection, its failures as StoreUnavailable (for migrations and checks)."""
        try:
            conn = self.engine.connect()
        except exc.TimeoutError as error:
            raise StoreUnavailable(
                f"all {self.pool_size} store connections stayed busy for {self.wait_s:.0f} s (store.pool_size)"
            ) from error
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot connect to the {_NAMES[self.dialect]} store: {error.orig}") from error
        with conn:
            try:
                yield conn
            except _UNAVAILABLE as error:
                raise StoreUnavailable(f"the conversation store ({self.dialect}) is not usable: {error.orig}") from error

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """Statements that commit together or not at all (BEGIN IMMEDIATE on SQLite)."""
        with self.connection() as conn, conn.begin():
            yield _Tx(conn, self._translate)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.transaction() as tx:
            return tx.execute(sql, params)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (once per Database; idempotent, safe from several
        replicas at once: Postgres takes an advisory lock, SQLite's BEGIN IMMEDIATE serializes)."""
        if self._migrated:
            return
        with self._migrate_lock:
            if self._migrated:
                return
            from serve.store import migrations

            with self.connection() as conn, conn.begin():
                if self.dialect == "postgres":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                migrations.upgrade(conn)
            self._migrated = True

    def revision(self) -> tuple[str | None, str]:
        """(the schema's migration now, the newest one); the first is None before any migration."""
        from serve.store import migrations

        with self.connection() as conn:
            return migrations.current(conn), migrations.head()

    def close(self) -> None:
        """Close every connection (a later call opens new ones)."""
        self.engine.dispose()


_NAMES = {"sqlite": "SQLite", "postgres": "Postgres"}


def _sqlite_engine(path: Path, wait_s: float) -> Engine:
    engine = create_engine(
        URL.create("sqlite", database=str(path)),
        connect_args={"check_same_thread": False, "timeout": wait_s},
        pool_size=1,  # one connection: SQLite runs one writer at a time anyway
        max_overflow=0,
        pool_timeout=wait_s,
    )

    @event.listens_for(engine, "do_connect")
    def _make_folder(dialect, conn_rec, cargs, cparams):
        path.parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn, record):
        # pysqlite's own transaction handling is off: SQLAlchemy's begin emits BEGIN IMMEDIATE below,
        # so a transaction takes the write lock at its start and cannot fail later for want of it.
        dbapi_conn.isolation_level = None
        dbapi_conn.execute(f"PRAGMA busy_timeout={int(wait_s * 1000)}")
        _write_ahead_log(dbapi_conn, wait_s)

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _write_ahead_log(dbapi_conn: Any, wait_s: float) -> None:
    """Switch the database to WAL. SQLite answers "database is locked" at once, without waiting in
    its busy handler, while another connection holds a lock the switch needs: two replicas opening a
    new store together. Retried for up to `wait_s`, like any other lock wait."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _postgres_engine(url: str, pool_size: int, wait_s: float) -> Engine:
    try:
        import psycopg  # noqa: F401
    except ImportError as error:
        raise ConfigError("store.url names Postgres: install the psycopg package (pip install 'psycopg[binary]')") from error
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
    return create_engine(
        parsed,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=wait_s,
        pool_pre_ping=True,
    )
