"""An access package goes out only when an approver releases it: who released it and when.

Requests answered before this revision delivered their package at once; they have no release to wait for
(their ``result`` carries no pending release), so the new columns stay empty for them.

Revision ID: 0009_access11
Revises: 0008_ownret11
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0009_access11"
down_revision: str | Sequence[str] | None = "0008_ownret11"


def upgrade() -> None:
    with op.batch_alter_table("privacy_requests") as batch:
        batch.add_column(sa.Column("released_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("released_by", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("privacy_requests") as batch:
        batch.drop_column("released_by")
        batch.drop_column("released_at")
