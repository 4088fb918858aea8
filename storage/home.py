"""App Home: who has opened the bot's Home tab (their dashboard is republished when something changes),
and a digest of what was last published to each, so an unchanged dashboard is not sent again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, and_, func, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import insert_unless_duplicate
from storage.intake import AlertState, ConsentAlert
from storage.ledger import AuditEntry
from storage.types import UTCDateTime


class HomeViewer(SQLModel, table=True):
    __tablename__ = "app_home_viewers"

    user_id: str = Field(primary_key=True, max_length=32)
    opened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    published_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    published_digest: str | None = Field(default=None, max_length=64)


async def remember_viewer(session: AsyncSession, user_id: str, now: datetime) -> None:
    if not await insert_unless_duplicate(session, HomeViewer(user_id=user_id, opened_at=now)):
        await session.exec(update(HomeViewer).where(col(HomeViewer.user_id) == user_id).values(opened_at=now))  # type: ignore[call-overload]


async def viewers(session: AsyncSession) -> list[HomeViewer]:
    return list((await session.exec(select(HomeViewer).order_by(col(HomeViewer.user_id)))).all())


async def published_digest(session: AsyncSession, user_id: str) -> str | None:
    row = await session.get(HomeViewer, user_id)
    return row.published_digest if row is not None else None


async def mark_published(session: AsyncSession, user_id: str, digest: str, now: datetime) -> None:
    await session.exec(update(HomeViewer).where(col(HomeViewer.user_id) == user_id)  # type: ignore[call-overload]
                       .values(published_digest=digest, published_at=now))


async def open_alert_leads(session: AsyncSession, *, limit: int) -> tuple[list[ConsentAlert], int]:
    """Open alerts waiting for a decision (folded ones count with their lead), newest first, and how many."""
    waiting = and_(col(ConsentAlert.state) == AlertState.OPEN, col(ConsentAlert.burst_of).is_(None))
    rows = (await session.exec(select(ConsentAlert).where(waiting)
                               .order_by(col(ConsentAlert.created_at).desc(), col(ConsentAlert.id).desc())
                               .limit(limit))).all()
    total = (await session.exec(select(func.count()).select_from(ConsentAlert).where(waiting))).one()
    return list(rows), int(total)


async def ledger_head(session: AsyncSession) -> tuple[int, str | None]:
    """The ledger's entry count (sequence numbers are dense from 1) and its head hash."""
    last = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(1))).first()
    return (last.seq, last.hash) if last is not None else (0, None)
