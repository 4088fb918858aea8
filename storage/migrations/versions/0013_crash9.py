"""Exactly-once Slack posts and the webhook spool.

``slack_posts``: the intent to post (keyed by an idempotency key) committed before a post, and its ts after;
a row without a ts is looked for in Slack by its metadata before posting again.

``spool_moves``: the keys of deliveries moved from the local spool (taken while the database did not answer)
into the inbox, written with each delivery, so a move interrupted by a crash and run again inserts nothing
twice.

Revision ID: 0013_crash9
Revises: 0012_harden9
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0013_crash9"
down_revision: str | Sequence[str] | None = "0012_harden9"


def upgrade() -> None:
    op.create_table(
        "slack_posts",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("thread_ts", sa.String(32), nullable=True),
        sa.Column("ts", sa.String(32), nullable=True),
        sa.Column("intended_at", UTCDateTime(), nullable=False),
        sa.Column("posted_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_slack_posts_intended_at", "slack_posts", ["intended_at"])
    op.create_table(
        "spool_moves",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("moved_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_spool_moves_moved_at", "spool_moves", ["moved_at"])


def downgrade() -> None:
    op.drop_index("ix_spool_moves_moved_at", table_name="spool_moves")
    op.drop_table("spool_moves")
    op.drop_index("ix_slack_posts_intended_at", table_name="slack_posts")
    op.drop_table("slack_posts")
