"""Deadlines as the law counts them: the day a request was received, why its due date rolled forward, and
how the requester's identity was verified, and the proof that the subject was told: the confirmation of
receipt, the extension notice and the answer.

A request done or rejected before this revision counted as closed; it keeps counting so, with its
completion as the moment the answer went out.

``received_on`` is the day the controller received the request (by email, phone, post…), which may be
earlier than the moment it was filed in Slack (``received_at``). Requests filed before this revision were
counted from their filing day in UTC, so that is what they get. The column stays nullable: a replica of
the previous version still writing during a rolling upgrade leaves it empty, and such a row counts from
its filing day too.

Revision ID: 0007_request_deadlines
Revises: 0006_slack_deliveries_and_home
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0007_request_deadlines"
down_revision: str | Sequence[str] | None = "0006_slack_deliveries_and_home"

requests = sa.table("privacy_requests", sa.column("id", sa.Integer()), sa.column("state", sa.String()),
                    sa.column("received_at", UTCDateTime()), sa.column("received_on", sa.Date()),
                    sa.column("completed_at", UTCDateTime()), sa.column("responded_at", UTCDateTime()))


def upgrade() -> None:
    with op.batch_alter_table("privacy_requests") as batch:
        batch.add_column(sa.Column("received_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("due_note", sa.String(200), nullable=True))
        batch.add_column(sa.Column("verification_method", sa.String(16), nullable=True))
        batch.add_column(sa.Column("verification_note", sa.String(200), nullable=True))
        batch.add_column(sa.Column("acknowledgement_due", sa.Date(), nullable=True))
        batch.add_column(sa.Column("acknowledged_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("acknowledged_by", sa.String(32), nullable=True))
        batch.add_column(sa.Column("extension_notified_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("responded_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("responded_by", sa.String(32), nullable=True))
        batch.add_column(sa.Column("lifted_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("lifted_by", sa.String(32), nullable=True))
    bind = op.get_bind()
    for row_id, received_at in bind.execute(sa.select(requests.c.id, requests.c.received_at)).all():
        bind.execute(sa.update(requests).where(requests.c.id == row_id).values(received_on=received_at.date()))
    bind.execute(sa.update(requests).where(requests.c.state.in_(("done", "rejected")))
                 .values(responded_at=requests.c.completed_at))


def downgrade() -> None:
    with op.batch_alter_table("privacy_requests") as batch:
        for column in ("lifted_by", "lifted_at", "responded_by", "responded_at", "extension_notified_on",
                       "acknowledged_by", "acknowledged_at", "acknowledgement_due", "verification_note"):
            batch.drop_column(column)
        batch.drop_column("verification_method")
        batch.drop_column("due_note")
        batch.drop_column("received_on")
