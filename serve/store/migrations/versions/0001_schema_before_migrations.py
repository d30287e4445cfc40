"""The store's tables as they stood before migrations (conversations, feedback, jobs, rate limits).

Revision ID: 0001
Revises: -

Until this migration the tables were made at start with CREATE TABLE IF NOT EXISTS, and a
database in the field may hold any subset of them (a conversations file from before the jobs or
rate-limit tables, or from before the `conversations` table itself). So this one creates only what
is missing, and fills an empty `conversations` from `messages` when messages exist; on a
database that has it all, it only records the version. Timestamps are DOUBLE PRECISION (Postgres'
REAL is 4 bytes, which rounds a unix time to about two minutes), counts of short windows BIGINT.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME: sa.Double[float] = sa.Double()


def _tables() -> dict[str, tuple]:
    return {
        "messages": (
            sa.Column("session_id", sa.Text, nullable=False),
            sa.Column("seq", sa.Integer, nullable=False),
            sa.Column("role", sa.Text, nullable=False),
            sa.Column("content", sa.Text, nullable=False),
            sa.Column("created_at", TIME, nullable=False),
            sa.PrimaryKeyConstraint("session_id", "seq"),
        ),
        "conversations": (
            sa.Column("session_id", sa.Text, primary_key=True),
            sa.Column("started_at", TIME, nullable=False),
            sa.Column("updated_at", TIME, nullable=False),
            sa.Column("turns", sa.Integer, nullable=False),
        ),
        "feedback": (
            sa.Column("session_id", sa.Text, nullable=False),
            sa.Column("turn", sa.Integer, nullable=False),
            sa.Column("rating", sa.Text, nullable=False),
            sa.Column("comment", sa.Text),
            sa.Column("principal", sa.Text),
            sa.Column("created_at", TIME, nullable=False),
            sa.PrimaryKeyConstraint("session_id", "turn"),
        ),
        "jobs": (
            sa.Column("job_id", sa.Text, primary_key=True),
            sa.Column("kind", sa.Text, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("slot", sa.Text, unique=True),
            sa.Column("owner", sa.Text, nullable=False),
            sa.Column("detail", sa.Text, nullable=False, server_default=""),
            sa.Column("done", sa.Integer, nullable=False, server_default=sa.text("0")),
            sa.Column("total", sa.Integer, nullable=False, server_default=sa.text("0")),
            sa.Column("stage", sa.Text, nullable=False, server_default=""),
            sa.Column("request", sa.Text, nullable=False, server_default="{}"),
            sa.Column("result", sa.Text),
            sa.Column("created_at", TIME, nullable=False),
            sa.Column("started_at", TIME),
            sa.Column("finished_at", TIME),
            sa.Column("heartbeat_at", TIME, nullable=False),
        ),
        "rate_windows": (
            sa.Column("bucket", sa.Text, nullable=False),
            sa.Column("win", sa.BigInteger, nullable=False),
            sa.Column("hits", sa.BigInteger, nullable=False),
            sa.PrimaryKeyConstraint("bucket", "win"),
        ),
        "answer_slots": (
            sa.Column("slot_id", sa.Text, primary_key=True),
            sa.Column("bucket", sa.Text, nullable=False),
            sa.Column("expires", TIME, nullable=False),
        ),
        # One row per bucket, touched by every slot acquisition: on Postgres the row lock serialises
        # replicas counting the same bucket (SQLite's BEGIN IMMEDIATE already does).
        "answer_slot_locks": (
            sa.Column("bucket", sa.Text, primary_key=True),
            sa.Column("touched", TIME, nullable=False),
        ),
        "token_usage": (
            sa.Column("bucket", sa.Text, nullable=False),
            sa.Column("day", sa.BigInteger, nullable=False),
            sa.Column("tokens", sa.BigInteger, nullable=False),
            sa.PrimaryKeyConstraint("bucket", "day"),
        ),
    }


INDEXES = {
    "conversations_updated": ("conversations", ["updated_at"]),
    "jobs_created": ("jobs", ["created_at"]),
    "answer_slots_bucket": ("answer_slots", ["bucket", "expires"]),
}

# A file written before the conversations table existed: one row per conversation already stored.
BACKFILL = (
    "INSERT INTO conversations (session_id, started_at, updated_at, turns)"
    " SELECT session_id, MIN(created_at), MAX(created_at), SUM(CASE WHEN role = 'assistant' THEN 1 ELSE 0 END)"
    " FROM messages WHERE session_id IS NOT NULL GROUP BY session_id ON CONFLICT (session_id) DO NOTHING"
)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, columns in _tables().items():
        if name not in existing:
            op.create_table(name, *columns)
    for index, (table, indexed) in INDEXES.items():
        if table not in existing or index not in {i["name"] for i in inspector.get_indexes(table)}:
            op.create_index(index, table, indexed)
    bind = op.get_bind()
    if "messages" in existing and not bind.exec_driver_sql("SELECT 1 FROM conversations LIMIT 1").first():
        op.execute(BACKFILL)


def downgrade() -> None:
    raise NotImplementedError("0001 is the schema the store started from; it has no version below it to go back to")
