"""Erased subjects: the keyed hash of everyone erased (by a request or a bulk purge), kept so a later
webhook carrying the same address can be flagged as "erased subject re-entered". No address is ever stored
here: the row is the hash, the id of the request or purge that erased the person, its kind, dates and who
decided.

Why the hash may be kept (README, "What the bot keeps after an erasure"): GDPR Art. 17(3)(b) and (e) (showing
that the erasure was done, and defending it) and, for people who had Do-Not-Contact, suppression: without it a
re-import would make them contactable again. It is kept for ``ERASED_HASH_RETENTION`` and then deleted.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, delete
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.types import UTCDateTime


class ErasureKind(StrEnum):
    REQUEST = "request"  # an erasure request (request_id is the request's id)
    PURGE = "purge"  # a bulk retention purge (request_id is the purge's id)


class ErasedSubject(SQLModel, table=True):
    __tablename__ = "erased_subjects"

    subject_hash: str = Field(primary_key=True, max_length=64)
    request_id: int
    kind: str = Field(default=ErasureKind.REQUEST, max_length=16)
    # The person had Do-Not-Contact when erased: a re-entry must not make them contactable again.
    suppressed: bool = False
    decided_by: str | None = Field(default=None, max_length=32)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    erased_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


async def is_erased(session: AsyncSession, subject_hash: str) -> bool:
    """True when a data subject with this keyed hash was erased by an erasure request."""
    query = select(ErasedSubject.subject_hash).where(ErasedSubject.subject_hash == subject_hash)
    row = (await session.exec(query)).first()
    return row is not None


async def suppressed_among(session: AsyncSession, subjects: set[str]) -> set[str]:
    """Which of these erased subjects had Do-Not-Contact when they were erased."""
    if not subjects:
        return set()
    query = select(ErasedSubject.subject_hash).where(col(ErasedSubject.subject_hash).in_(sorted(subjects)),
                                                      col(ErasedSubject.suppressed).is_(True))
    return set((await session.exec(query)).all())


async def record_erasure(
    session: AsyncSession, *, subject_hash: str, request_id: int, received_at: datetime, erased_at: datetime,
    kind: ErasureKind = ErasureKind.REQUEST, suppressed: bool = False, decided_by: str | None = None,
) -> None:
    """Remember an erased subject (idempotent: a retry changes nothing, and the suppression flag is only ever
    added). A later erasure of the same person (they came back, and were erased again) becomes the one the
    row records: ERASED_HASH_RETENTION counts from it, and events older than it are covered by it."""
    existing = await session.get(ErasedSubject, subject_hash)
    if existing is None:
        session.add(ErasedSubject(subject_hash=subject_hash, request_id=request_id, kind=kind.value,
                                  suppressed=suppressed, decided_by=decided_by, received_at=received_at,
                                  erased_at=erased_at))
    else:
        if erased_at > existing.erased_at and (existing.kind, existing.request_id) != (kind.value, request_id):
            existing.request_id, existing.kind, existing.decided_by = request_id, kind.value, decided_by
            existing.received_at, existing.erased_at = received_at, erased_at
        existing.suppressed = existing.suppressed or suppressed
        session.add(existing)
    await session.flush()


async def forget_erased_before(session: AsyncSession, cutoff: datetime) -> int:
    """ERASED_HASH_RETENTION: delete the hashes of people erased before ``cutoff``; returns how many."""
    result = await session.exec(delete(ErasedSubject).where(col(ErasedSubject.erased_at) < cutoff))  # type: ignore[call-overload]
    return int(result.rowcount or 0)
