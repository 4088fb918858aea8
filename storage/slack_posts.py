"""Slack posts made exactly once across crashes: the intent to post is committed (keyed by an idempotency key)
before the post, and the message's ts after it.

A row without a ts means a post may or may not have reached Slack (the process died, or Slack's answer was
lost): the messenger then looks for the message by the key it carries in its ``metadata`` before posting
again. Rows hold ids only (key, channel, ts), never message content.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import insert_unless_duplicate
from storage.types import UTCDateTime


class SlackPost(SQLModel, table=True):
    __tablename__ = "slack_posts"

    key: str = Field(primary_key=True, max_length=200)  # the caller's idempotency key, "alert:12" say
    channel: str = Field(max_length=64)
    thread_ts: str | None = Field(default=None, max_length=32)
    ts: str | None = Field(default=None, max_length=32)  # set once Slack has the message
    intended_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    posted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


async def intend(session: AsyncSession, key: str, channel: str, thread_ts: str | None,
                 now: datetime) -> tuple[SlackPost, bool]:
    """The post's row, and whether this call created it (False: an earlier attempt may have posted)."""
    created = await insert_unless_duplicate(
        session, SlackPost(key=key, channel=channel, thread_ts=thread_ts, intended_at=now))
    row = (await session.exec(select(SlackPost).where(SlackPost.key == key))).one()
    return row, created


async def record_posted(session: AsyncSession, key: str, channel: str, ts: str, now: datetime) -> None:
    await session.exec(  # type: ignore[call-overload]
        update(SlackPost).where(col(SlackPost.key) == key).values(channel=channel, ts=ts, posted_at=now)
    )
