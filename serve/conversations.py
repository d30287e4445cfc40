"""Conversation history in an embedded SQLite file (`<data_dir>/conversations.sqlite3`)."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from ragtune.errors import UserInputError
from ragtune.prompt import Turn

_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def new_session_id() -> str:
    return uuid.uuid4().hex


def check_session_id(session_id: str) -> str:
    if not _SESSION_ID.match(session_id):
        raise UserInputError("session_id must be 1-64 characters of letters, digits, '_', '-', '.', ':'")
    return session_id


class ConversationStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL,"
            " content TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (session_id, seq))"
        )
        self._lock = threading.Lock()

    def history(self, session_id: str, turns: int) -> list[Turn]:
        """The last `turns` question/answer pairs of the session, oldest first."""
        if turns <= 0:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT role, content FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
                (session_id, turns * 2),
            ).fetchall()
        return [Turn(role, content) for role, content in reversed(rows)]

    def append(self, session_id: str, user: str, assistant: str) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (last,) = self._db.execute(
                    "SELECT COALESCE(MAX(seq), -1) FROM messages WHERE session_id = ?", (session_id,)
                ).fetchone()
                self._db.executemany(
                    "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
                    [(session_id, last + 1, "user", user, now), (session_id, last + 2, "assistant", assistant, now)],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()
