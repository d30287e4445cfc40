"""Conversations and the feedback on their answers, in the shared store (serve/store/db.py).

Tables (serve/store/migrations):
  messages  (session_id, seq, role, content, created_at), key (session_id, seq): the layout the
            API has always written, so an existing `conversations.sqlite3` keeps working, and
            `train/sources.py` reads it directly. Each turn adds a user and an assistant row.
  conversations (session_id, started_at, updated_at, turns, owner_key, owner_origin): one row per
            conversation, for listing recent ones. Appending upserts it first, which also makes two
            replicas appending to the same session take turns (Postgres locks the row until the
            transaction ends). The owner is the caller that opened it (`claim`): the chat and
            feedback routes serve a session to its owner only. A conversation claimed whose first
            answer never came has 0 turns and is not listed.
  feedback  (session_id, turn, rating, comment, principal, created_at), key (session_id, turn):
            a later rating of the same answer replaces the earlier one.

A turn is the 0-based index of an answer in its session: the first answer is turn 0.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from ragtune.errors import NotFoundError, UserInputError
from ragtune.prompt import Turn
from serve.store.db import Cursor, Database

_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
Rating = Literal["up", "down"]
MAX_COMMENT_CHARS = 2000


def new_session_id() -> str:
    return uuid.uuid4().hex


def check_session_id(session_id: str) -> str:
    if not _SESSION_ID.match(session_id):
        raise UserInputError("session_id must be 1-64 characters of letters, digits, '_', '-', '.', ':'")
    return session_id


@dataclass(frozen=True)
class Caller:
    """Who uses a conversation: the API key (`widget:shop`, `admin:ops`, `local` without keys) and
    the browser origin the request came from (None for a server-side client)."""

    key: str
    origin: str | None = None


@dataclass
class Feedback:
    rating: str
    comment: str | None
    principal: str | None
    created_at: float


@dataclass
class TurnRecord:
    turn: int
    question: str
    answer: str
    created_at: float
    feedback: Feedback | None = None


@dataclass
class Conversation:
    session_id: str
    started_at: float
    updated_at: float
    turns: list[TurnRecord] = field(default_factory=list)


@dataclass
class ConversationPage:
    total: int
    conversations: list[Conversation]


class ConversationStore:
    """Conversation history and feedback; every method is blocking (call it from a thread)."""

    def __init__(self, db: Database):
        self.db = db

    def ensure(self) -> None:
        """The tables are there (the store's migrations run once per Database; every method calls this first)."""
        self.db.migrate()

    def claim(self, session_id: str, caller: Caller) -> None:
        """Make sure `caller` may use the conversation: a new session id becomes theirs, so does one
        from before owners were recorded; one opened by another key or origin is a NotFoundError,
        exactly as if it did not exist (its history and ratings are never shown to or changed by them)."""
        check_session_id(session_id)
        self.ensure()
        now = time.time()
        with self.db.transaction() as tx:
            self._claim(tx, session_id, caller, now, create=True)

    @staticmethod
    def _claim(tx: Cursor, session_id: str, caller: Caller, now: float, create: bool) -> int | None:
        """The conversation's turns once it is `caller`'s; None when it does not exist (and `create` is off)."""
        if create:
            tx.execute(
                "INSERT INTO conversations (session_id, started_at, updated_at, turns, owner_key, owner_origin)"
                " VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (session_id) DO NOTHING",
                (session_id, now, now, caller.key, caller.origin),
            )
        # A conversation from before owners were recorded goes to whoever uses it first.
        tx.execute(
            "UPDATE conversations SET owner_key = ?, owner_origin = ? WHERE session_id = ? AND owner_key IS NULL",
            (caller.key, caller.origin, session_id),
        )
        rows = tx.execute("SELECT turns, owner_key, owner_origin FROM conversations WHERE session_id = ?", (session_id,))
        if not rows:
            return None
        turns, key, origin = rows[0]
        if (key, origin) != (caller.key, caller.origin):
            raise NotFoundError(
                f"no conversation with session_id {session_id!r} for this key and origin "
                "(a conversation belongs to the key and origin that opened it; leave session_id out to start a new one)"
            )
        return int(turns)

    def history(self, session_id: str, turns: int) -> list[Turn]:
        """The last `turns` question/answer pairs of the session, oldest first."""
        if turns <= 0:
            return []
        self.ensure()
        rows = self.db.execute(
            "SELECT role, content FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT ?", (session_id, turns * 2)
        )
        return [Turn(role, content) for role, content in reversed(rows)]

    def append(self, session_id: str, user: str, assistant: str) -> int:
        """Store one question and its answer; returns the answer's turn (0 for the first)."""
        self.ensure()
        now = time.time()
        with self.db.transaction() as tx:
            ((turns,),) = tx.execute(
                "INSERT INTO conversations (session_id, started_at, updated_at, turns) VALUES (?, ?, ?, 1)"
                " ON CONFLICT (session_id) DO UPDATE SET updated_at = excluded.updated_at, turns = conversations.turns + 1"
                " RETURNING turns",
                (session_id, now, now),
            )
            ((last,),) = tx.execute("SELECT COALESCE(MAX(seq), -1) FROM messages WHERE session_id = ?", (session_id,))
            for offset, role, content in ((1, "user", user), (2, "assistant", assistant)):
                tx.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", (session_id, last + offset, role, content, now))
        return int(turns) - 1

    def add_feedback(
        self,
        session_id: str,
        turn: int,
        rating: str,
        comment: str | None = None,
        principal: str | None = None,
        caller: Caller | None = None,
    ) -> Feedback:
        """Record (or replace) the rating of one answer; NotFoundError for an unknown session or turn,
        and, when `caller` is given (the API), for a conversation that is not theirs."""
        check_session_id(session_id)
        if rating not in ("up", "down"):
            raise UserInputError(f"rating must be 'up' or 'down', not {rating!r}")
        if turn < 0:
            raise UserInputError(f"turn must be 0 or more (the answer's index in the session), not {turn}")
        comment = (comment or "").strip() or None
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise UserInputError(f"comment has {len(comment)} characters; the limit is {MAX_COMMENT_CHARS}")
        self.ensure()
        now = time.time()
        with self.db.transaction() as tx:
            if caller is not None:
                turns = self._claim(tx, session_id, caller, now, create=False)
            else:
                rows = tx.execute("SELECT turns FROM conversations WHERE session_id = ?", (session_id,))
                turns = int(rows[0][0]) if rows else None
            if not turns:
                raise NotFoundError(f"no conversation with session_id {session_id!r} has an answer to rate")
            if turn >= turns:
                raise NotFoundError(
                    f"conversation {session_id!r} has {turns} answer(s) (turns 0 to {turns - 1}); there is no turn {turn}"
                )
            tx.execute(
                "INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, turn) DO UPDATE SET"
                " rating = excluded.rating, comment = excluded.comment, principal = excluded.principal, created_at = excluded.created_at",
                (session_id, turn, rating, comment, principal, now),
            )
        return Feedback(rating, comment, principal, now)

    def recent(self, limit: int = 20, offset: int = 0, rating: str | None = None) -> ConversationPage:
        """The most recently active conversations, newest first, each with its turns and their feedback.

        `rating` keeps only conversations with at least one answer rated so ("down": what to review)."""
        if not 1 <= limit <= 200 or offset < 0:
            raise UserInputError("limit must be 1-200 and offset 0 or more")
        if rating not in (None, "up", "down"):
            raise UserInputError(f"rating must be 'up' or 'down', not {rating!r}")
        self.ensure()
        where, params = (
            (" WHERE turns > 0", ())
            if rating is None
            else (
                " WHERE turns > 0 AND EXISTS (SELECT 1 FROM feedback f WHERE f.session_id = conversations.session_id"
                " AND f.rating = ?)",
                (rating,),
            )
        )
        with self.db.transaction() as tx:
            ((total,),) = tx.execute(f"SELECT COUNT(*) FROM conversations{where}", params)
            heads = tx.execute(
                f"SELECT session_id, started_at, updated_at FROM conversations{where}"
                " ORDER BY updated_at DESC, session_id LIMIT ? OFFSET ?",
                (*params, limit, offset),
            )
            conversations = [Conversation(s, started, updated) for s, started, updated in heads]
            _fill(tx, conversations)
        return ConversationPage(int(total), conversations)


def _fill(tx: Cursor, conversations: list[Conversation]) -> None:
    """Attach each conversation's turns (question, answer) and their feedback."""
    if not conversations:
        return
    ids = [c.session_id for c in conversations]
    marks = ", ".join("?" for _ in ids)
    by_id = {c.session_id: c for c in conversations}
    pending: dict[str, tuple[str, float]] = {}
    for session, role, content, created in tx.execute(
        f"SELECT session_id, role, content, created_at FROM messages WHERE session_id IN ({marks}) ORDER BY session_id, seq",
        ids,
    ):
        if role == "user":
            pending[session] = (content, created)
        elif role == "assistant" and session in pending:
            question, asked = pending.pop(session)
            turns = by_id[session].turns
            turns.append(TurnRecord(len(turns), question, content, asked))
    ratings: dict[tuple[str, int], Any] = {
        (session, turn): Feedback(rating, comment, principal, created)
        for session, turn, rating, comment, principal, created in tx.execute(
            f"SELECT session_id, turn, rating, comment, principal, created_at FROM feedback WHERE session_id IN ({marks})", ids
        )
    }
    for conversation in conversations:
        for record in conversation.turns:
            record.feedback = ratings.get((conversation.session_id, record.turn))
