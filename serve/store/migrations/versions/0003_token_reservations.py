"""Tokens reserved by answers in flight, against a key's daily budget (issue 18.3).

Revision ID: 0003
Revises: 0002

An answer reserves its worst case before it starts and the reservation is settled to what it
spent when it ends (serve/ratelimit.py), so concurrent answers cannot overshoot the budget by
more than one reservation. Each row expires like an answer slot, so a replica that dies
mid-answer does not hold budget forever.
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
    op.drop_index("token_reservations_bucket", "token_reservations")
    op.drop_table("token_reservations")
