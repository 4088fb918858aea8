"""Erased subjects: the keyed hash of everyone erased, kept so a later webhook carrying the same
address can be flagged as "erased subject re-entered". No address is ever stored here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.types import UTCDateTime


class ErasedSubject(SQLModel, table=True):
    __tablename__ = "erased_subjects"

    subject_hash: str = Field(primary_key=True, max_length=64)
    request_id: int
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    erased_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


async def is_erased(session: AsyncSession, subject_hash: str) -> bool:
    """True when a data subject with this keyed hash was erased by an erasure request."""
    query = select(ErasedSubject.subject_hash).where(ErasedSubject.subject_hash == subject_hash)
    row = (await session.exec(query)).first()
    return row is not None


async def record_erasure(
    session: AsyncSession, *, subject_hash: str, request_id: int, received_at: datetime, erased_at: datetime
) -> None:
    """Remember an erased subject (idempotent: a second erasure of the same person keeps the first row)."""
    existing = await session.get(ErasedSubject, subject_hash)
    if existing is None:
        session.add(ErasedSubject(subject_hash=subject_hash, request_id=request_id,
                                  received_at=received_at, erased_at=erased_at))
        await session.flush()
