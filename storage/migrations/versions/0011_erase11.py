"""Erasure that leaves nothing behind (issue 11, items 1-3).

- ``erasure_cleanup``: an erasure's clean-up checklist (one line per place Mautic keeps data, one per recipient).
- ``erased_subjects`` gains the erasure's kind (request or bulk purge), the suppression flag (the person had
  Do-Not-Contact) and who decided; ``erased_at`` is indexed for the ERASED_HASH_RETENTION sweep.
- ``purge_chunks.subjects`` (per contact of a planned chunk: its keyed hash and whether it had DNC, so a
  resumed chunk can still forget contacts Mautic no longer returns) and ``purge_requests.skipped``
  (contacts spared because a data-subject request about them is open).
- Requests and alerts erased before this revision lose what the erasure used to leave: reasons, notes,
  contact ids, results.
- The audit ledger: reasons and notes typed by people were copied into entries word for word. They are
  replaced by ``<name>_given: true`` and ``<name>_scrubbed: "0011_erase11"`` (the keyed hash that new entries
  carry cannot be made here: the key is not part of the database). Editing an entry breaks the hash chain, so
  the chain is recomputed from the first edited entry on, and one entry ``ledger.rechained`` is appended that
  names the previous head hash, the first changed entry and how many were scrubbed: a head hash published
  before (digests post it) is thereby accounted for, and ``audit verify`` passes. Re-chaining rather than
  keeping reason text outside the chained payload, because the text must not be anywhere in the store.

The hashing below is a frozen copy of ``storage.ledger.entry_hash`` as of this revision (SHA-256 over
canonical JSON): a later revision that changes the live scheme (a keyed chain) re-chains again on its own.

Revision ID: 0011_erase11
Revises: 0010_consent11
Create Date: 2026-12-01
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from storage.types import UTCDateTime

revision: str = "0011_erase11"
down_revision: str | Sequence[str] | None = "0010_consent11"

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_GENESIS = "0" * 64
# The keys under which earlier versions copied text people typed (reject/extend reasons, the identity note).
_FREE_TEXT_KEYS = ("reason", "method_note")
_BATCH = 1000

ledger = sa.table("audit_ledger", sa.column("seq", sa.Integer()), sa.column("at", UTCDateTime()),
                  sa.column("actor", sa.String()), sa.column("action", sa.String()), sa.column("subject", sa.String()),
                  sa.column("details", _JSON), sa.column("prev_hash", sa.String()), sa.column("hash", sa.String()))
requests = sa.table("privacy_requests", sa.column("id", sa.Integer()), sa.column("subject_masked", sa.String()),
                    sa.column("extension_reason", sa.String()), sa.column("reject_reason", sa.String()),
                    sa.column("verification_note", sa.String()), sa.column("failure", sa.String()),
                    sa.column("note", sa.String()), sa.column("contacts_found", _JSON), sa.column("result", _JSON),
                    sa.column("changes", _JSON))
decisions = sa.table("request_decisions", sa.column("request_id", sa.Integer()), sa.column("reason", sa.String()))
alerts = sa.table("consent_alerts", sa.column("email_display", sa.String()), sa.column("reason", sa.String()),
                  sa.column("outcome", sa.String()))


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _entry_hash(*, seq: int, at: datetime, actor: str, action: str, subject: str | None,
                details: dict[str, Any], prev_hash: str) -> str:
    canonical = json.dumps(
        {"seq": seq, "at": at.isoformat(timespec="microseconds"), "actor": actor, "action": action,
         "subject": subject, "details": details, "prev": prev_hash},
        sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _scrubbed(details: dict[str, Any]) -> dict[str, Any] | None:
    """The entry's details without typed text, or None when it holds none."""
    typed = [key for key in _FREE_TEXT_KEYS if key in details]
    if not typed:
        return None
    clean = {k: v for k, v in details.items() if k not in typed}
    for key in typed:
        clean[f"{key}_given"] = bool(details[key])
        clean[f"{key}_scrubbed"] = revision
    return clean


def _scrub_ledger() -> None:
    bind = op.get_bind()
    prev = _GENESIS
    after = 0
    first_changed: int | None = None
    scrubbed = 0
    old_head = _GENESIS
    while True:
        rows = bind.execute(sa.select(ledger).where(ledger.c.seq > after).order_by(ledger.c.seq).limit(_BATCH)).all()
        if not rows:
            break
        for row in rows:
            after = row.seq
            old_head = row.hash
            details = dict(row.details or {})
            clean = _scrubbed(details)
            if clean is not None:
                scrubbed += 1
                details = clean
                if first_changed is None:
                    first_changed = row.seq
            if first_changed is None:
                prev = row.hash
                continue
            new_hash = _entry_hash(seq=row.seq, at=_utc(row.at), actor=row.actor, action=row.action,
                                   subject=row.subject, details=details, prev_hash=prev)
            bind.execute(ledger.update().where(ledger.c.seq == row.seq)
                         .values(details=details, prev_hash=prev, hash=new_hash))
            prev = new_hash
    if first_changed is None:
        return
    now = datetime.now(UTC)
    details = {"migration": revision, "scrubbed_entries": scrubbed, "first_changed_seq": first_changed,
               "previous_head": old_head, "why": "reason and note texts typed by people removed from the ledger"}
    seq = after + 1
    bind.execute(ledger.insert().values(
        seq=seq, at=now, actor="migration", action="ledger.rechained", subject=None, details=details,
        prev_hash=prev, hash=_entry_hash(seq=seq, at=now, actor="migration", action="ledger.rechained",
                                         subject=None, details=details, prev_hash=prev)))


def upgrade() -> None:
    op.create_table(
        "erasure_cleanup",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("privacy_requests.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("place", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(255), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.UniqueConstraint("request_id", "seq", name="uq_erasure_cleanup_line"),
    )
    op.create_index("ix_erasure_cleanup_request_id", "erasure_cleanup", ["request_id"])
    with op.batch_alter_table("erased_subjects") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="request"))
        batch.add_column(sa.Column("suppressed", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("decided_by", sa.String(32), nullable=True))
        batch.create_index("ix_erased_subjects_erased_at", ["erased_at"])
    with op.batch_alter_table("purge_chunks") as batch:
        batch.add_column(sa.Column("subjects", _JSON, nullable=True))
    with op.batch_alter_table("purge_requests") as batch:
        batch.add_column(sa.Column("skipped", sa.Integer(), nullable=False, server_default="0"))

    erased = requests.c.subject_masked == "(erased subject)"
    bind = op.get_bind()
    bind.execute(requests.update().where(erased).values(
        extension_reason=None, reject_reason=None, verification_note=None, failure=None, note=None,
        contacts_found=None, result={}, changes={}))
    bind.execute(decisions.update().where(decisions.c.request_id.in_(sa.select(requests.c.id).where(erased)))
                 .values(reason=None))
    bind.execute(alerts.update().where(alerts.c.email_display == "(erased)").values(reason=None, outcome=None))
    _scrub_ledger()


def downgrade() -> None:
    with op.batch_alter_table("purge_requests") as batch:
        batch.drop_column("skipped")
    with op.batch_alter_table("purge_chunks") as batch:
        batch.drop_column("subjects")
    with op.batch_alter_table("erased_subjects") as batch:
        batch.drop_index("ix_erased_subjects_erased_at")
        batch.drop_column("decided_by")
        batch.drop_column("suppressed")
        batch.drop_column("kind")
    op.drop_index("ix_erasure_cleanup_request_id", "erasure_cleanup")
    op.drop_table("erasure_cleanup")
