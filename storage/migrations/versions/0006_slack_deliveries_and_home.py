"""Socket Mode's taken deliveries (redelivered envelopes are handled once) and App Home viewers.

Revision ID: 0006_slack_deliveries_and_home
Revises: 0005_one_chain
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0006_slack_deliveries_and_home"
down_revision: str | Sequence[str] | None = "0005_one_chain"


def upgrade() -> None:
    op.create_table(
        "slack_deliveries",
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_slack_deliveries_received_at", "slack_deliveries", ["received_at"])
    op.create_table(
        "app_home_viewers",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("published_digest", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("app_home_viewers")
    op.drop_index("ix_slack_deliveries_received_at", table_name="slack_deliveries")
    op.drop_table("slack_deliveries")
