"""Handle each Slack delivery once, however often it arrives.

Socket Mode redelivers an envelope whose acknowledgement Slack did not get (the connection dropped after
we handled it, before the ack was through), and the copy may reach another replica; an Events API event
keeps its ``event_id`` across retries. The key is therefore the event id where there is one, else the
envelope id, and it is claimed in the database before the delivery is handled.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from storage.db import SessionFactory, unit_of_work
from storage.slack_deliveries import take_delivery

# Far longer than Slack keeps redelivering (its retries end within minutes); older keys are forgotten.
REMEMBER_FOR = timedelta(days=1)


def delivery_key(envelope_id: str, payload: dict[str, Any]) -> str:
    event_id = payload.get("event_id")
    return f"event:{event_id}" if isinstance(event_id, str) and event_id else f"envelope:{envelope_id}"


async def first_delivery(sessions: SessionFactory, key: str, now: datetime) -> bool:
    async with unit_of_work(sessions) as session:
        return await take_delivery(session, key[:120], now, forget_before=now - REMEMBER_FOR)
