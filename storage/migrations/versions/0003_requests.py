"""Data-subject requests: requests, decisions, export links, erased subjects.

Revision ID: 0003_requests
Revises: 0001_core
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import JSONType, UTCDateTime

revision: str = "0003_requests"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("regime", sa.String(8), nullable=False),
        sa.Column("subject_hash", sa.String(64), nullable=False),
        sa.Column("subject_email", sa.String(320), nullable=True),
        sa.Column("subject_masked", sa.String(320), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("changes", JSONType, nullable=False),
        sa.Column("filed_by", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("original_due_date", sa.Date(), nullable=False),
        sa.Column("extended_by", sa.String(32), nullable=True),
        sa.Column("extended_at", UTCDateTime(), nullable=True),
        sa.Column("extension_reason", sa.String(1000), nullable=True),
        sa.Column("verified_by", sa.String(32), nullable=True),
        sa.Column("verified_at", UTCDateTime(), nullable=True),
        sa.Column("approved_by", sa.String(32), nullable=True),
        sa.Column("approved_at", UTCDateTime(), nullable=True),
        sa.Column("rejected_by", sa.String(32), nullable=True),
        sa.Column("rejected_at", UTCDateTime(), nullable=True),
        sa.Column("reject_reason", sa.String(1000), nullable=True),
        sa.Column("contacts_found", JSONType, nullable=True),
        sa.Column("result", JSONType, nullable=False),
        sa.Column("failure", sa.String(1000), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("pii_messages", JSONType, nullable=False),
        sa.Column("last_reminded_on", sa.Date(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_privacy_requests_state", "privacy_requests", ["state"])
    op.create_index("ix_privacy_requests_subject_hash", "privacy_requests", ["subject_hash"])
    op.create_table(
        "request_decisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("privacy_requests.id"), nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_request_decisions_request_id", "request_decisions", ["request_id"])
    op.create_table(
        "export_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("privacy_requests.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("last_download_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_export_links_request_id", "export_links", ["request_id"])
    op.create_table(
        "erased_subjects",
        sa.Column("subject_hash", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erased_subjects")
    op.drop_table("export_links")
    op.drop_table("request_decisions")
    op.drop_index("ix_privacy_requests_subject_hash", "privacy_requests")
    op.drop_index("ix_privacy_requests_state", "privacy_requests")
    op.drop_table("privacy_requests")
