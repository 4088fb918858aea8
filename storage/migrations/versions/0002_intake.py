"""Webhook intake: raw deliveries, the durable inbox, consent records, consent alerts, withdrawals.

Revision ID: 0002_intake
Revises: 0001_core
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import JSONType, UTCDateTime

revision: str = "0002_intake"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sqlite_autoincrement=True,  # ids are never reused once split rows are deleted
    )

    op.create_table(
        "intake_inbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=True),
        sa.Column("processed_at", UTCDateTime(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("subject_hash", sa.String(64), nullable=True),
        sa.Column("subject_hashes", sa.String(4000), nullable=True),
        sa.Column("payload", JSONType, nullable=True),
        sa.Column("raw_body", sa.LargeBinary(), nullable=True),
        sa.Column("note", sa.String(200), nullable=True),
        sa.UniqueConstraint("dedupe_key", name="uq_intake_inbox_dedupe_key"),
    )
    op.create_index("ix_intake_inbox_event_type", "intake_inbox", ["event_type"])
    op.create_index("ix_intake_inbox_state", "intake_inbox", ["state"])
    op.create_index("ix_intake_inbox_contact_id", "intake_inbox", ["contact_id"])
    op.create_index("ix_intake_inbox_subject_hash", "intake_inbox", ["subject_hash"])

    op.create_table(
        "consent_records",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("inbox_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("subject_hash", sa.String(64), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("form_id", sa.Integer(), nullable=True),
        sa.Column("form_name", sa.String(255), nullable=False),
        sa.Column("form_alias", sa.String(255), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("fields", JSONType, nullable=False),
        sa.Column("values", JSONType, nullable=False),
        sa.Column("given", sa.Boolean(), nullable=False),
        sa.Column("exempt", sa.Boolean(), nullable=False),
        sa.Column("source_ip", sa.String(64), nullable=True),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_consent_records_contact_id", "consent_records", ["contact_id"])
    op.create_index("ix_consent_records_subject_hash", "consent_records", ["subject_hash"])
    op.create_index("ix_consent_records_submitted_at", "consent_records", ["submitted_at"])

    op.create_table(
        "consent_alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("dedupe_key", sa.String(120), nullable=False),
        sa.Column("burst_key", sa.String(120), nullable=False),
        sa.Column("burst_of", sa.Integer(), nullable=True),
        sa.Column("folded_count", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("subject_hash", sa.String(64), nullable=True),
        sa.Column("email_display", sa.String(320), nullable=True),
        sa.Column("form_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("missing", JSONType, nullable=False),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("inbox_id", sa.Integer(), nullable=True),
        sa.Column("consent_record_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("channel_id", sa.String(32), nullable=True),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("outcome", sa.String(500), nullable=True),
        sa.Column("outcome_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("dedupe_key", name="uq_consent_alerts_dedupe_key"),
    )
    op.create_index("ix_consent_alerts_kind", "consent_alerts", ["kind"])
    op.create_index("ix_consent_alerts_state", "consent_alerts", ["state"])
    op.create_index("ix_consent_alerts_burst_key", "consent_alerts", ["burst_key"])
    op.create_index("ix_consent_alerts_burst_of", "consent_alerts", ["burst_of"])
    op.create_index("ix_consent_alerts_subject_hash", "consent_alerts", ["subject_hash"])
    op.create_index("ix_consent_alerts_created_at", "consent_alerts", ["created_at"])
    op.create_index("ix_consent_alerts_burst_lookup", "consent_alerts", ["burst_key", "created_at"])

    op.create_table(
        "consent_withdrawals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("inbox_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("subject_hash", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("old_status", sa.String(32), nullable=False),
        sa.Column("new_status", sa.String(32), nullable=False),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("restored_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_consent_withdrawals_contact_id", "consent_withdrawals", ["contact_id"])
    op.create_index("ix_consent_withdrawals_subject_hash", "consent_withdrawals", ["subject_hash"])
    op.create_index("ix_consent_withdrawals_withdrawn_at", "consent_withdrawals", ["withdrawn_at"])


def downgrade() -> None:
    op.drop_table("consent_withdrawals")
    op.drop_table("consent_alerts")
    op.drop_table("consent_records")
    op.drop_table("intake_inbox")
    op.drop_table("inbox_deliveries")
