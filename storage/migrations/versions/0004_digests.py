"""Digests: schedule slot claims, digest runs, bulk purge requests and their chunks.

Revision ID: 0004_digests
Revises: 0001_core
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import JSONType, UTCDateTime

revision: str = "0004_digests"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digest_slots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("slot_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("kind", "slot_at", name="uq_digest_slots_kind_slot"),
    )
    op.create_table(
        "digest_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("slot_at", UTCDateTime(), nullable=True),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("requested_by", sa.String(32), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True, unique=True),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("summary", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("posted_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_digest_runs_kind", "digest_runs", ["kind"])
    op.create_table(
        "purge_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("digest_run_id", sa.Integer(), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("filed_by", sa.String(32), nullable=False),
        sa.Column("filed_at", UTCDateTime(), nullable=False),
        sa.Column("cutoff", UTCDateTime(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("approved_count", sa.Integer(), nullable=False),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("thread_ts", sa.String(32), nullable=True),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("progress_ts", sa.String(32), nullable=True),
        sa.Column("recheck_count", sa.Integer(), nullable=True),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("spared", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("chunks_done", sa.Integer(), nullable=False),
        sa.Column("failed_chunks", sa.Integer(), nullable=False),
        sa.Column("stop_reason", sa.String(500), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_purge_requests_state", "purge_requests", ["state"])
    op.create_table(
        "purge_chunks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("purge_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ids", JSONType, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("gone", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("purge_id", "seq", name="uq_purge_chunks_purge_seq"),
    )
    op.create_index("ix_purge_chunks_purge_id", "purge_chunks", ["purge_id"])


def downgrade() -> None:
    op.drop_table("purge_chunks")
    op.drop_table("purge_requests")
    op.drop_table("digest_runs")
    op.drop_table("digest_slots")
