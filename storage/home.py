"""App Home: who has opened the bot's Home tab (their dashboard is republished when something changes),
and a digest of what was last published to each, so an unchanged dashboard is not sent again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import insert_unless_duplicate
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
