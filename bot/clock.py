"""Time as a dependency, so deadline and expiry logic can be tested without waiting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def local_day(moment: datetime, timezone: str) -> date:
    """The calendar date of an aware timestamp where the controller counts its days (``DEADLINE_TIMEZONE``):
    17:30 in California is still today there, though tomorrow in UTC."""
    return moment.astimezone(ZoneInfo(timezone)).date()
