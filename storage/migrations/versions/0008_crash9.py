"""Exactly-once Slack posts and the webhook spool.

``slack_posts``: the intent to post (keyed by an idempotency key) committed before a post, and its ts after;
a row without a ts is looked for in Slack by its metadata before posting again.

``inbox_deliveries.spool_key``: a delivery taken into the local spool while the database did not answer
keeps its spool record's key when it is moved into the inbox, so a move interrupted by a crash and run again
inserts nothing twice (unique; NULL for deliveries committed directly, which never conflict).

Revision ID: 0008_crash9
Revises: 0007_request_deadlines
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0008_crash9"
down_revision: str | Sequence[str] | None = "0007_request_deadlines"


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
    # A plain ADD COLUMN and a unique index: no table rebuild, which on SQLite would also drop the table's
    # AUTOINCREMENT (delivery ids must never be handed out twice).
    op.add_column("inbox_deliveries", sa.Column("spool_key", sa.String(64), nullable=True))
    op.create_index("ix_inbox_deliveries_spool_key", "inbox_deliveries", ["spool_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_inbox_deliveries_spool_key", table_name="inbox_deliveries")
    with op.batch_alter_table("inbox_deliveries") as batch:
        batch.drop_column("spool_key")
    op.drop_index("ix_slack_posts_intended_at", table_name="slack_posts")
    op.drop_table("slack_posts")
