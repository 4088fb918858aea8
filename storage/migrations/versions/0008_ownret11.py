"""The bot's own retention and Slack-delivered packages: when a consent record's contact left Mautic (the
evidence is kept CONSENT_EVIDENCE_DAYS from then), and the file ids of packages uploaded to Slack, so they
can be deleted on expiry and on erasure.

Existing rows: no consent record is known to belong to a deleted contact yet (the retention sweep marks
them from the contact-deleted events still in the inbox); packages uploaded before this revision left no
file id and cannot be found again (delete them in Slack by hand).

Revision ID: 0008_ownret11
Revises: 0007_request_deadlines
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0008_ownret11"
down_revision: str | Sequence[str] | None = "0007_request_deadlines"


def upgrade() -> None:
    with op.batch_alter_table("consent_records") as batch:
        batch.add_column(sa.Column("contact_deleted_at", UTCDateTime(), nullable=True))
        batch.create_index("ix_consent_records_contact_deleted_at", ["contact_deleted_at"])
    op.create_table(
        "slack_export_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("privacy_requests.id"), nullable=False),
        sa.Column("file_id", sa.String(32), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("uploaded_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("error", sa.String(64), nullable=True),
    )
    op.create_index("ix_slack_export_files_request_id", "slack_export_files", ["request_id"])
    op.create_index("ix_slack_export_files_state", "slack_export_files", ["state"])
    op.create_index("ix_slack_export_files_expires_at", "slack_export_files", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_slack_export_files_expires_at", table_name="slack_export_files")
    op.drop_index("ix_slack_export_files_state", table_name="slack_export_files")
    op.drop_index("ix_slack_export_files_request_id", table_name="slack_export_files")
    op.drop_table("slack_export_files")
    with op.batch_alter_table("consent_records") as batch:
        batch.drop_index("ix_consent_records_contact_deleted_at")
        batch.drop_column("contact_deleted_at")
