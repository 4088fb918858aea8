"""Slack deliveries already taken: Socket Mode redelivers an envelope whose acknowledgement did not arrive
(a connection dropped between our handling and our ack), possibly to another replica. The first taker's
row makes every later copy a no-op."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, delete
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import insert_unless_duplicate
from storage.types import UTCDateTime


class SlackDelivery(SQLModel, table=True):
    __tablename__ = "slack_deliveries"

    key: str = Field(primary_key=True, max_length=120)  # "event:<event_id>" or "envelope:<envelope_id>"
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


async def take_delivery(session: AsyncSession, key: str, now: datetime, *, forget_before: datetime) -> bool:
    """True for the first taker of ``key``; also forgets keys older than Slack would ever redeliver."""
    await session.exec(delete(SlackDelivery).where(col(SlackDelivery.received_at) < forget_before))  # type: ignore[call-overload]
    return await insert_unless_duplicate(session, SlackDelivery(key=key, received_at=now))
