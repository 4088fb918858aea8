"""Slot arithmetic for the digest schedules: crontab expressions, the latest slot that is due, and keys.

A *slot* is one scheduled fire time of one digest kind, in UTC. Every replica computes the same slots, so
the slot time is what replicas race to claim in the database; whoever inserts the row posts the digest.

APScheduler 3 numbers weekdays from Monday = 0, while crontab numbers them from Sunday = 0 (and ``7`` is
Sunday too); ``CronTrigger.from_crontab("0 9 * * 1")`` would fire on *Tuesdays*. :func:`cron_trigger`
translates the day-of-week field into day names so the documented crontab meaning holds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_INDEX = {name: i for i, name in enumerate(_DOW_NAMES)}
# How far back to look for the latest slot: short windows first so frequent schedules stay cheap.
_LOOKBACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32), timedelta(days=367),
             timedelta(days=366 * 8 + 2))


class CronError(ValueError):
    """A cron expression or timezone the schedule cannot use; the message says what is wrong."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown timezone {name!r} (use an IANA name such as Europe/Berlin or UTC)") from None


def _dow_value(token: str) -> int:
    token = token.strip().lower()
    if token in _DOW_INDEX:
        return _DOW_INDEX[token]
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise CronError(f"bad day of week {token!r} (0-7 or sun-sat)")


def _crontab_days(field: str) -> set[int]:
    """Expand a crontab day-of-week field into weekday numbers, Sunday = 0."""
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise CronError(f"bad step in day of week {part!r}")
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            a, b = base.split("-", 1)
            low, high = _dow_value(a), _dow_value(b)
            if b.strip() == "7":
                high = 7  # 5-7 means Friday to Sunday
        else:
            low = high = _dow_value(base)
            if step is not None:
                high = 6
        if high < low:
            raise CronError(f"bad range in day of week {part!r}")
        days.update(d % 7 for d in range(low, high + 1, step or 1))
    return days


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """A trigger for a five-field crontab expression with crontab's weekday numbering."""
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(f"{expression!r} is not a five-field cron expression (minute hour day month weekday)")
    minute, hour, day, month, dow = fields
    if day != "*" and dow != "*":
        # crontab ORs the two day fields, APScheduler ANDs them; refuse rather than fire on other days.
        raise CronError(f"{expression!r} restricts both day of month and day of week; restrict only one")
    days = _crontab_days(dow) if dow != "*" else set(range(7))
    day_of_week = "*" if len(days) == 7 else ",".join(_DOW_NAMES[d] for d in sorted(days))
    try:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week,
                           timezone=zone(timezone))
    except ValueError as exc:
        raise CronError(f"{expression!r}: {exc}") from None


def validate(expression: str, timezone: str) -> None:
    cron_trigger(expression, timezone)


def next_slot(expression: str, timezone: str, after: datetime) -> datetime | None:
    """The first slot strictly after ``after``, in UTC."""
    trigger = cron_trigger(expression, timezone)
    fire = trigger.get_next_fire_time(None, after + timedelta(seconds=1))
    return fire.astimezone(UTC) if fire is not None else None


def latest_due_slot(expression: str, timezone: str, now: datetime) -> datetime | None:
    """The most recent slot at or before ``now`` (UTC), or None if none in the last eight years."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    trigger = cron_trigger(expression, timezone)
    now = now.astimezone(UTC)
    for window in _LOOKBACK:
        fire = trigger.get_next_fire_time(None, now - window)
        latest = None
        while fire is not None and fire.astimezone(UTC) <= now:
            latest = fire.astimezone(UTC)
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if latest is not None:
            return latest
    return None


def slot_label(slot: datetime, timezone: str) -> str:
    """How a slot reads in messages: local time of the schedule's zone."""
    local = slot.astimezone(zone(timezone))
    return local.strftime("%a %d %b %Y %H:%M ") + (local.tzname() or timezone)


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def parse_slot(text: str) -> datetime:
    if not _ISO.match(text):
        raise ValueError(f"not an ISO slot time: {text!r}")
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
