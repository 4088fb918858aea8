"""Consent evidence that shows what the person was told, and the form fields the webhooks carried.

Consent records gain the policy version, the page URL, the form revision they were collected under (with
its definition hash and the consent box's label text) and an invalid mark (a pre-ticked box). Records
written before this revision get no evidence after the fact: the form may have changed since, so
``evidence_at`` is set to when they were recorded and the evidence job leaves them alone.

Revision ID: 0010_consent11
Revises: 0009_access11
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import JSONType, UTCDateTime

revision: str = "0010_consent11"
down_revision: str | Sequence[str] | None = "0009_access11"

records = sa.table("consent_records", sa.column("evidence_at", UTCDateTime()),
                   sa.column("recorded_at", UTCDateTime()))


def upgrade() -> None:
    with op.batch_alter_table("consent_records") as batch:
        batch.add_column(sa.Column("policy_version", sa.String(64), nullable=True))
        batch.add_column(sa.Column("page_url", sa.String(2000), nullable=True))
        batch.add_column(sa.Column("form_revision_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("form_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("label_text", sa.String(2000), nullable=True))
        batch.add_column(sa.Column("evidence_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("invalid_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("invalid_reason", sa.String(64), nullable=True))
        batch.create_index("ix_consent_records_form_revision_id", ["form_revision_id"])
        batch.create_index("ix_consent_records_evidence_at", ["evidence_at"])
    op.get_bind().execute(sa.update(records).values(evidence_at=records.c.recorded_at))
    op.create_table(
        "form_revisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("definition", JSONType, nullable=False),
        sa.Column("consent_labels", JSONType, nullable=False),
        sa.Column("prechecked", sa.Boolean(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("form_id", "revision", name="uq_form_revisions_form_revision"),
    )
    op.create_index("ix_form_revisions_form_id", "form_revisions", ["form_id"])
    op.create_table(
        "form_fields_seen",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("form_name", sa.String(255), nullable=False),
        sa.Column("field_alias", sa.String(191), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("form_id", "field_alias", name="uq_form_fields_seen_form_field"),
    )
    op.create_index("ix_form_fields_seen_form_id", "form_fields_seen", ["form_id"])


def downgrade() -> None:
    op.drop_index("ix_form_fields_seen_form_id", table_name="form_fields_seen")
    op.drop_table("form_fields_seen")
    op.drop_index("ix_form_revisions_form_id", table_name="form_revisions")
    op.drop_table("form_revisions")
    with op.batch_alter_table("consent_records") as batch:
        batch.drop_index("ix_consent_records_evidence_at")
        batch.drop_index("ix_consent_records_form_revision_id")
        for column in ("invalid_reason", "invalid_at", "evidence_at", "label_text", "form_hash",
                       "form_revision_id", "page_url", "policy_version"):
            batch.drop_column(column)
