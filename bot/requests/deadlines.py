"""Legal deadlines: pure date arithmetic with no I/O.

GDPR Art. 12(3): one calendar month from receipt, counted to the same date in the next month and
clamped to that month's last day (31 Jan → 28/29 Feb); extendable once by two further months.
CCPA §1798.130(a)(2): 45 days, extendable once by 45 days. Either extension must be decided (and
the subject told) before the original due date.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Literal

Regime = Literal["gdpr", "ccpa"]
DUE_SOON_DAYS = 5  # DataGrail's dashboard split: more than 5 full days left is "on time"


def add_months(day: date, months: int) -> date:
    """Same day-of-month ``months`` later, clamped to the last day of the target month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_date(received: date, regime: Regime) -> date:
    if regime == "gdpr":
        return add_months(received, 1)
    return received + timedelta(days=45)


def extended_due_date(original_due: date, regime: Regime) -> date:
    if regime == "gdpr":
        return add_months(original_due, 2)
    return original_due + timedelta(days=45)


def extension_label(regime: Regime) -> str:
    return "two further months (GDPR Art. 12(3))" if regime == "gdpr" else "45 more days (CCPA §1798.130)"


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


def local_date(moment: datetime) -> date:
    """The calendar date of an aware UTC timestamp (deadlines are counted in UTC days)."""
    return moment.date()
