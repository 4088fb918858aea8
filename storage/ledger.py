"""The audit ledger: append-only, hash-chained, written through one function.

Each entry carries the hash of its predecessor, so an edited, deleted or reordered entry breaks
the chain and :func:`verify` names the first bad one. Entries never hold personal data: subjects
are referenced by opaque ids (``request:42``) or keyed hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, text
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.types import JSONType, UTCDateTime, utcnow

GENESIS = "0" * 64
# Keys whose values would be text a person typed (a reason, a note). The ledger can never be edited, so such
# text would outlive an erasure of the person it mentions: writers record ``reason_fields()`` instead, and
# :func:`record` refuses these keys outright so a new writer cannot slip one in.
FREE_TEXT_KEYS = frozenset({"reason", "note", "method_note", "comment", "comments", "text"})
# Any constant works; it only has to be the same for every writer of this database.
_LEDGER_LOCK_ID = 0x5052_4956  # "PRIV"


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_ledger"

    seq: int = Field(primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64, index=True)
    subject: str | None = Field(default=None, max_length=128, index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


def entry_hash(
    *, seq: int, at: datetime, actor: str, action: str, subject: str | None,
    details: dict[str, Any], prev_hash: str,
) -> str:
    canonical = json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
            "prev": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def reason_digest(key: str, text: str) -> str:
    """Keyed hash of a typed reason: proves later which text was given (whoever holds the text and the key can
    check it) without the ledger holding the text itself."""
    return hmac.new(key.encode(), b"reason:" + " ".join(text.split()).encode(), hashlib.sha256).hexdigest()


def reason_fields(key: str, text: str | None, *, name: str = "reason") -> dict[str, Any]:
    """What the ledger records about a typed text: that one was given and its keyed hash, never the text."""
    if not text:
        return {f"{name}_given": False}
    return {f"{name}_given": True, f"{name}_hash": reason_digest(key, text)}


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction (the change and its record commit together)."""
    typed = FREE_TEXT_KEYS.intersection(details or {})
    if typed:
        raise ValueError(f"free text never enters the audit ledger (use reason_fields): {sorted(typed)}")
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        # Serialise appenders so two transactions never chain onto the same predecessor.
        connection = await session.connection()
        await connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LEDGER_LOCK_ID})
    last = (
        await session.exec(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))  # type: ignore[attr-defined]
    ).first()
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    # Round-trip through JSON so the hash covers exactly what the database will return.
    clean_details = json.loads(json.dumps(details or {}, default=str))
    when = at or utcnow()
    entry = AuditEntry(
        seq=seq,
        at=when,
        actor=actor,
        action=action,
        subject=subject,
        details=clean_details,
        prev_hash=prev,
        hash=entry_hash(
            seq=seq, at=when, actor=actor, action=action, subject=subject,
            details=clean_details, prev_hash=prev,
        ),
    )
    session.add(entry)
    await session.flush()
    return entry


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_hash: str | None = None

    def describe(self) -> str:
        if self.ok:
            # The head hash, posted outside the database (digests, the CLI), lets a later reader tell
            # whether newest entries were cut off, which a chain alone cannot show.
            head = f", head {self.head_hash[:16]}" if self.head_hash else ""
            return f"ledger OK: {self.entries} entries, chain intact{head}"
        return f"ledger BROKEN at entry {self.first_bad_seq}: {self.problem}"


async def verify(session: AsyncSession, *, batch: int = 1000) -> VerifyResult:
    """Walk the chain in order and report the first entry that does not hold."""
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    after = 0
    while True:
        rows = (
            await session.exec(
                select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)  # type: ignore[arg-type]
            )
        ).all()
        if not rows:
            return VerifyResult(ok=True, entries=count, head_hash=None if count == 0 else expected_prev)
        for row in rows:
            if row.seq != expected_seq:
                return VerifyResult(False, count, expected_seq, f"entry {expected_seq} is missing")
            if row.prev_hash != expected_prev:
                return VerifyResult(False, count, row.seq, "does not follow its predecessor (deleted or reordered)")
            recomputed = entry_hash(
                seq=row.seq, at=row.at, actor=row.actor, action=row.action, subject=row.subject,
                details=row.details, prev_hash=row.prev_hash,
            )
            if recomputed != row.hash:
                return VerifyResult(False, count, row.seq, "content was edited (hash mismatch)")
            expected_prev = row.hash
            expected_seq += 1
            count += 1
            after = row.seq
