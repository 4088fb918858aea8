"""Legal deadlines: pure date arithmetic with no I/O, counted as the law counts them.

- GDPR Art. 12(3): one month from receipt. Regulation (EEC, Euratom) No 1182/71 Art. 3(2)(c): a period in
  months ends on the day of the last month with the same date as the day of receipt; when that day does
  not exist, on the last day of that month (31 Jan → 28/29 Feb). The extension ("by two further months")
  makes three months *from receipt*, never counted from an already clamped date (31 Jan → 30 Apr).
- CCPA §1798.130(a)(2), Cal. Code Regs. tit. 11 §7021(b): 45 calendar days from receipt, extendable once
  to 90 days from receipt. §7021(a): confirm receipt within 10 business days. §7026(f): an opt-out of
  sale/sharing is complied with within 15 business days, with no identity verification.
- 1182/71 Art. 3(4): a period whose last day is a public holiday, a Saturday or a Sunday ends at the end
  of the following working day. The same roll-forward is applied to CCPA's calendar-day periods, so a due
  date never falls on a day nobody works. Business days are Monday to Friday except public holidays.

Holidays come in as a ``Mapping[date, str]`` (a ``holidays`` calendar is one); an empty mapping means
weekends only.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Literal

import holidays as holiday_data

from bot.clock import local_day

Regime = Literal["gdpr", "ccpa"]
REGIMES: tuple[Regime, ...] = ("gdpr", "ccpa")
Holidays = Mapping[date, str]
NO_HOLIDAYS: Holidays = {}
DUE_SOON_DAYS = 5  # DataGrail's dashboard split: more than 5 full days left is "on time"
CCPA_DAYS = 45  # §7021(b)
CCPA_EXTENDED_DAYS = 90  # §7021(b): "up to a total of 90 calendar days from the day the business receives"
ACKNOWLEDGE_BUSINESS_DAYS = 10  # §7021(a)
OPT_OUT_BUSINESS_DAYS = 15  # §7026(f)
_WEEKEND = {5: "a Saturday", 6: "a Sunday"}


def add_months(day: date, months: int) -> date:
    """Same day-of-month ``months`` later, clamped to the last day of the target month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_date(received: date, regime: Regime) -> date:
    """The last day of the response period before any roll-forward."""
    if regime == "gdpr":
        return add_months(received, 1)
    return received + timedelta(days=CCPA_DAYS)


def extended_due_date(received: date, regime: Regime) -> date:
    """The last day of the extended period, counted from receipt, before any roll-forward."""
    if regime == "gdpr":
        return add_months(received, 3)
    return received + timedelta(days=CCPA_EXTENDED_DAYS)


def not_working(day: date, holidays: Holidays = NO_HOLIDAYS) -> str | None:
    """Why ``day`` is not a working day ("a Saturday", "a public holiday (Christmas Day)"), or None."""
    name = holidays.get(day)
    if name:
        return f"a public holiday ({name})"
    return _WEEKEND.get(day.weekday())


@dataclass(frozen=True)
class Deadline:
    due: date
    note: str | None = None  # why the due date rolled forward, e.g. "1 Mar is a Saturday"


def roll_forward(day: date, holidays: Holidays = NO_HOLIDAYS) -> Deadline:
    """``day``, or the next working day after it when it is a weekend day or public holiday (1182/71 Art. 3(4))."""
    why = not_working(day, holidays)
    if why is None:
        return Deadline(day)
    rolled = day + timedelta(days=1)
    while not_working(rolled, holidays) is not None:
        rolled += timedelta(days=1)
    return Deadline(rolled, f"{short_day(day)} is {why}")


def short_day(day: date) -> str:
    return f"{day.day} {day:%b}"


def add_business_days(start: date, count: int, holidays: Holidays = NO_HOLIDAYS) -> date:
    """The ``count``-th working day after ``start`` (the day of receipt itself is not counted)."""
    day = start
    left = count
    while left > 0:
        day += timedelta(days=1)
        if not_working(day, holidays) is None:
            left -= 1
    return day


def legal_deadline(received: date, regime: Regime, holidays: Holidays = NO_HOLIDAYS, *,
                   extended: bool = False, opt_out: bool = False) -> Deadline:
    """The due date of a request received on ``received``: the period's end, rolled to a working day.

    A CCPA opt-out of sale/sharing is due in 15 business days and cannot be extended."""
    if opt_out:
        return Deadline(add_business_days(received, OPT_OUT_BUSINESS_DAYS, holidays))
    end = extended_due_date(received, regime) if extended else due_date(received, regime)
    return roll_forward(end, holidays)


def acknowledgement_due(received: date, regime: Regime, holidays: Holidays = NO_HOLIDAYS) -> date | None:
    """When the confirmation of receipt is due: 10 business days under CCPA (§7021(a)); GDPR sets none."""
    if regime == "ccpa":
        return add_business_days(received, ACKNOWLEDGE_BUSINESS_DAYS, holidays)
    return None


def received_on(moment: datetime, timezone: str) -> date:
    """The calendar date of an aware timestamp where the controller is (``DEADLINE_TIMEZONE``)."""
    return local_day(moment, timezone)


def split_holiday_spec(spec: str) -> tuple[str, str | None]:
    """``"DE-BY"`` → ``("DE", "BY")``; ``"FR"`` → ``("FR", None)``."""
    country, _, subdivision = spec.strip().upper().partition("-")
    return country, subdivision or None


@lru_cache(maxsize=8)
def holiday_calendar(spec: str) -> Holidays:
    """The public holidays of ``DEADLINE_HOLIDAYS`` (empty spec: none). The calendar fills in years lazily."""
    if not spec.strip():
        return NO_HOLIDAYS
    country, subdivision = split_holiday_spec(spec)
    calendar_: Holidays = holiday_data.country_holidays(country, subdiv=subdivision)
    return calendar_


def extension_label(regime: Regime) -> str:
    if regime == "gdpr":
        return "to three months from receipt (GDPR Art. 12(3))"
    return "to 90 days from receipt (CCPA §1798.130(a)(2), Cal. Code Regs. tit. 11 §7021(b))"


def deadline_label(regime: Regime) -> str:
    return "GDPR Art. 12(3): one month" if regime == "gdpr" else "CCPA: 45 days"


def extension_refusal(*, already_extended: bool, original_due: date, today: date) -> str | None:
    """Why an extension is not allowed, or None when it is."""
    if already_extended:
        return "This request was already extended once; the law allows one extension."
    if today > original_due:
        return (f"The original due date ({original_due.isoformat()}) has passed; an extension had to be "
                "decided and told to the subject before it.")
    return None


def notice_refusal(*, told_on: date, received: date, original_due: date, today: date) -> str | None:
    """Why the day the subject was told of an extension cannot be right, or None. The notice must go out
    within the first period (Art. 12(3): "within one month of receipt"; CCPA §7021(b))."""
    if told_on > today:
        return f"The notice date {told_on.isoformat()} is in the future; record it once it was sent."
    if told_on < received:
        return f"The notice date {told_on.isoformat()} is before the request was received ({received.isoformat()})."
    if told_on > original_due:
        return (f"The notice went out on {told_on.isoformat()}, after the original due date "
                f"({original_due.isoformat()}); the law requires telling the subject within the first period.")
    return None


class Urgency(StrEnum):
    ON_TIME = "on_time"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class Countdown:
    days_left: int  # negative when overdue
    urgency: Urgency

    @property
    def text(self) -> str:
        if self.urgency is Urgency.OVERDUE:
            late = -self.days_left
            return f"OVERDUE by {late} day{'s' if late != 1 else ''}"
        if self.days_left == 0:
            return "due today"
        suffix = f"{self.days_left} day{'s' if self.days_left != 1 else ''} left"
        return f"due soon, {suffix}" if self.urgency is Urgency.DUE_SOON else suffix


def countdown(due: date, today: date, *, soon_days: int = DUE_SOON_DAYS) -> Countdown:
    """Days left until the due date (the due date itself still counts as on time)."""
    left = (due - today).days
    if left < 0:
        return Countdown(left, Urgency.OVERDUE)
    if left <= soon_days:
        return Countdown(left, Urgency.DUE_SOON)
    return Countdown(left, Urgency.ON_TIME)
