"""Each conversation remembers who opened it: the API key (by kind and name) and the browser origin.

Revision ID: 0002
Revises: 0001

A session id is a bearer of history: whoever sends it continues the conversation and may rate its
answers. From this version on the chat and feedback routes serve a session only to the key and
origin that opened it (issue 18.4). Conversations from before it have no owner (NULL): the first
caller to use one after the upgrade becomes its owner.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("owner_key", sa.Text, nullable=True))
    op.add_column("conversations", sa.Column("owner_origin", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("owner_origin")
        batch.drop_column("owner_key")
