"""Tokens reserved by answers in flight, so concurrent answers cannot overshoot a daily token budget.

Revision ID: 0003
Revises: 0002

An answer reserves its `max_tokens` of the key's daily budget before it starts and settles to what
it spent when it ends, however the stream ends (issue 18.3). A reservation expires like an answer
slot, so a replica that dies mid-answer cannot hold budget for ever.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_reservations",
        sa.Column("reservation_id", sa.Text, primary_key=True),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("expires", sa.Double(), nullable=False),
    )
    op.create_index("token_reservations_bucket", "token_reservations", ["bucket", "expires"])


def downgrade() -> None:
    op.drop_index("token_reservations_bucket", table_name="token_reservations")
    op.drop_table("token_reservations")
