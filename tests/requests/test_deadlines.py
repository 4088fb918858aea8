"""Deadlines as the law counts them (bot.requests.deadlines): table-driven.

Sources: GDPR Art. 12(3); Regulation (EEC, Euratom) No 1182/71 Art. 3(2)(c) (a period in months ends on the
same date, or the month's last day when that date does not exist) and Art. 3(4) (a period ending on a
Saturday, Sunday or public holiday ends at the end of the next working day); CCPA §1798.130(a)(2) and
Cal. Code Regs. tit. 11 §7021 (45 days, 90 with an extension, both from receipt; receipt confirmed within
10 business days) and §7026(f) (an opt-out is complied with within 15 business days).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.requests.deadlines import (
    NO_HOLIDAYS,
    REGIMES,
    Countdown,
    Deadline,
    Holidays,
    Urgency,
    acknowledgement_due,
    add_business_days,
    add_months,
    countdown,
    deadline_label,
    due_date,
    extended_due_date,
    extension_label,
    extension_refusal,
    holiday_calendar,
    legal_deadline,
    not_working,
    notice_refusal,
    received_on,
    roll_forward,
    short_day,
    split_holiday_spec,
)

GERMANY = holiday_calendar("DE")
# A hand-made calendar keeps the business-day tables independent of the holidays package's data.
FAKE: Holidays = {date(2026, 5, 1): "Labour Day", date(2026, 5, 4): "Bridge Day"}


@pytest.mark.parametrize(("received", "regime", "holidays", "expected"), [
    # GDPR: one month, the missing day clamped to the month's last day.
    (date(2025, 1, 31), "gdpr", NO_HOLIDAYS, Deadline(date(2025, 2, 28))),  # a Friday: no roll
    (date(2024, 1, 31), "gdpr", NO_HOLIDAYS, Deadline(date(2024, 2, 29))),  # leap year, a Thursday
    (date(2025, 2, 1), "gdpr", NO_HOLIDAYS, Deadline(date(2025, 3, 3), "1 Mar is a Saturday")),
    (date(2026, 2, 1), "gdpr", NO_HOLIDAYS, Deadline(date(2026, 3, 2), "1 Mar is a Sunday")),
    (date(2026, 3, 16), "gdpr", NO_HOLIDAYS, Deadline(date(2026, 4, 16))),  # a Thursday
    # 25 Dec 2026 is a Friday: Christmas, then Boxing Day (Sat), then Sunday → Monday 28 Dec.
    (date(2026, 11, 25), "gdpr", GERMANY, Deadline(date(2026, 12, 28),
                                                    "25 Dec is a public holiday (Christmas Day)")),
    (date(2026, 11, 25), "gdpr", NO_HOLIDAYS, Deadline(date(2026, 12, 25))),  # weekends only: a Friday
    # CCPA: 45 calendar days.
    (date(2026, 1, 1), "ccpa", NO_HOLIDAYS, Deadline(date(2026, 2, 16), "15 Feb is a Sunday")),
    (date(2026, 1, 5), "ccpa", NO_HOLIDAYS, Deadline(date(2026, 2, 19))),  # a Thursday
])
def test_the_due_date_is_the_period_end_rolled_to_a_working_day(
    received: date, regime: str, holidays: Holidays, expected: Deadline
) -> None:
    assert legal_deadline(received, regime, holidays) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("received", "regime", "expected"), [
    (date(2026, 1, 31), "gdpr", Deadline(date(2026, 4, 30))),  # three months from receipt, not from 28 Feb
    (date(2025, 1, 31), "gdpr", Deadline(date(2025, 4, 30))),
    (date(2025, 11, 30), "gdpr", Deadline(date(2026, 3, 2), "28 Feb is a Saturday")),
    (date(2026, 1, 5), "ccpa", Deadline(date(2026, 4, 6), "5 Apr is a Sunday")),  # 90 days from receipt
    (date(2026, 1, 7), "ccpa", Deadline(date(2026, 4, 7))),  # a Tuesday
])
def test_an_extension_counts_from_receipt(received: date, regime: str, expected: Deadline) -> None:
    assert legal_deadline(received, regime, extended=True) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("received", "regime", "raw"), [
    (date(2026, 1, 1), "ccpa", date(2026, 2, 15)),  # 45 days
    (date(2026, 12, 31), "ccpa", date(2027, 2, 14)),
    (date(2026, 12, 15), "gdpr", date(2027, 1, 15)),
])
def test_the_raw_period_end(received: date, regime: str, raw: date) -> None:
    assert due_date(received, regime) == raw  # type: ignore[arg-type]


@pytest.mark.parametrize(("received", "regime", "raw"), [
    (date(2026, 1, 1), "ccpa", date(2026, 4, 1)),  # 90 days
    (date(2026, 11, 30), "gdpr", date(2027, 2, 28)),  # three months, clamped, across the year
    (date(2026, 10, 31), "gdpr", date(2027, 1, 31)),
])
def test_the_raw_extended_period_end(received: date, regime: str, raw: date) -> None:
    assert extended_due_date(received, regime) == raw  # type: ignore[arg-type]


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2026, 1, 31), 3, date(2026, 4, 30)),
    (date(2026, 1, 30), 1, date(2026, 2, 28)),
    (date(2026, 1, 28), 1, date(2026, 2, 28)),
    (date(2026, 12, 1), 1, date(2027, 1, 1)),
    (date(2026, 11, 1), 1, date(2026, 12, 1)),  # month 12 stays in the same year
    (date(2026, 1, 15), 12, date(2027, 1, 15)),
    (date(2026, 1, 15), -1, date(2025, 12, 15)),
])
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


@pytest.mark.parametrize(("day", "holidays", "why"), [
    (date(2026, 3, 6), NO_HOLIDAYS, None),  # Friday
    (date(2026, 3, 2), NO_HOLIDAYS, None),  # Monday
    (date(2026, 3, 7), NO_HOLIDAYS, "a Saturday"),
    (date(2026, 3, 8), NO_HOLIDAYS, "a Sunday"),
    (date(2026, 5, 1), FAKE, "a public holiday (Labour Day)"),
    (date(2026, 5, 1), NO_HOLIDAYS, None),  # a Friday with no calendar
    (date(2026, 5, 2), {date(2026, 5, 2): "Saturday Fair"}, "a public holiday (Saturday Fair)"),
    (date(2026, 5, 5), {date(2026, 5, 5): ""}, None),  # a nameless entry is not a holiday
])
def test_not_working(day: date, holidays: Holidays, why: str | None) -> None:
    assert not_working(day, holidays) == why


def test_roll_forward_skips_a_run_of_days_and_names_the_first() -> None:
    # Friday 1 May (holiday), weekend, Monday 4 May (holiday) → Tuesday 5 May.
    assert roll_forward(date(2026, 5, 1), FAKE) == Deadline(date(2026, 5, 5), "1 May is a public holiday (Labour Day)")
    assert roll_forward(date(2026, 5, 2), FAKE) == Deadline(date(2026, 5, 5), "2 May is a Saturday")
    assert roll_forward(date(2026, 5, 5), FAKE) == Deadline(date(2026, 5, 5))


@pytest.mark.parametrize(("start", "count", "holidays", "expected"), [
    (date(2026, 3, 2), 10, NO_HOLIDAYS, date(2026, 3, 16)),  # Monday + 10 business days = Monday two weeks on
    (date(2026, 3, 6), 1, NO_HOLIDAYS, date(2026, 3, 9)),  # Friday + 1 → Monday
    (date(2026, 3, 7), 1, NO_HOLIDAYS, date(2026, 3, 9)),  # received on a Saturday
    (date(2026, 4, 30), 1, FAKE, date(2026, 5, 5)),  # skips the holiday, the weekend and the bridge day
    (date(2026, 4, 30), 2, FAKE, date(2026, 5, 6)),
    (date(2026, 3, 2), 0, NO_HOLIDAYS, date(2026, 3, 2)),
    (date(2026, 3, 2), 15, NO_HOLIDAYS, date(2026, 3, 23)),
])
def test_add_business_days(start: date, count: int, holidays: Holidays, expected: date) -> None:
    assert add_business_days(start, count, holidays) == expected


def test_an_opt_out_is_due_in_15_business_days_and_is_never_rolled() -> None:
    assert legal_deadline(date(2026, 3, 2), "ccpa", opt_out=True) == Deadline(date(2026, 3, 23))
    assert legal_deadline(date(2026, 3, 2), "ccpa", opt_out=True, extended=True) == Deadline(date(2026, 3, 23))
    assert legal_deadline(date(2026, 4, 30), "ccpa", FAKE, opt_out=True).due == date(2026, 5, 25)


def test_receipt_is_confirmed_within_10_business_days_under_ccpa_only() -> None:
    assert acknowledgement_due(date(2026, 3, 2), "ccpa") == date(2026, 3, 16)
    assert acknowledgement_due(date(2026, 4, 30), "ccpa", FAKE) == date(2026, 5, 18)
    assert acknowledgement_due(date(2026, 3, 2), "gdpr") is None


@pytest.mark.parametrize(("moment", "zone", "day"), [
    # 23:30 on 31 Jan in Los Angeles is 07:30 UTC on 1 Feb: the request was received on 31 Jan.
    (datetime(2026, 2, 1, 7, 30, tzinfo=UTC), "America/Los_Angeles", date(2026, 1, 31)),
    (datetime(2026, 2, 1, 7, 30, tzinfo=UTC), "UTC", date(2026, 2, 1)),
    (datetime(2026, 1, 31, 23, 30, tzinfo=UTC), "Europe/Berlin", date(2026, 2, 1)),
])
def test_the_received_date_is_the_local_date(moment: datetime, zone: str, day: date) -> None:
    assert received_on(moment, zone) == day


def test_a_late_evening_receipt_in_california_is_counted_from_that_day() -> None:
    day = received_on(datetime(2026, 2, 1, 7, 30, tzinfo=UTC), "America/Los_Angeles")
    assert legal_deadline(day, "ccpa") == Deadline(date(2026, 3, 17))  # 31 Jan + 45 days, a Tuesday


@pytest.mark.parametrize(("spec", "parts"), [
    ("DE", ("DE", None)), ("de-by", ("DE", "BY")), (" US-CA ", ("US", "CA")),
])
def test_split_holiday_spec(spec: str, parts: tuple[str, str | None]) -> None:
    assert split_holiday_spec(spec) == parts


def test_holiday_calendars_come_from_the_holidays_package() -> None:
    assert holiday_calendar("") == {}
    assert holiday_calendar("  ") is NO_HOLIDAYS
    assert not_working(date(2026, 1, 6), holiday_calendar("DE-BY")) == "a public holiday (Epiphany)"
    assert not_working(date(2026, 1, 6), GERMANY) is None  # Epiphany is a holiday in Bavaria, not nationwide
    assert not_working(date(2026, 3, 31), holiday_calendar("US-CA")) == "a public holiday (Cesar Chavez Day)"


def test_labels_name_the_law() -> None:
    assert "three months from receipt" in extension_label("gdpr") and "12(3)" in extension_label("gdpr")
    assert "90 days from receipt" in extension_label("ccpa") and "§7021" in extension_label("ccpa")
    assert short_day(date(2026, 3, 1)) == "1 Mar"


@pytest.mark.parametrize(("told_on", "why"), [
    (date(2026, 3, 10), None),  # today
    (date(2026, 3, 2), None),  # the day of receipt
    (date(2026, 3, 11), "The notice date 2026-03-11 is in the future; record it once it was sent."),
    (date(2026, 3, 1), "The notice date 2026-03-01 is before the request was received (2026-03-02)."),
])
def test_notice_refusal(told_on: date, why: str | None) -> None:
    assert notice_refusal(told_on=told_on, received=date(2026, 3, 2), original_due=date(2026, 4, 2),
                          today=date(2026, 3, 10)) == why


def test_a_notice_after_the_first_period_is_refused() -> None:
    kwargs = {"received": date(2026, 3, 2), "original_due": date(2026, 4, 2), "today": date(2026, 5, 1)}
    assert notice_refusal(told_on=date(2026, 4, 2), **kwargs) is None  # the last day is still in time
    assert notice_refusal(told_on=date(2026, 4, 3), **kwargs) == (
        "The notice went out on 2026-04-03, after the original due date (2026-04-02); the law requires telling "
        "the subject within the first period.")


def test_extension_refusal_texts() -> None:
    due = date(2026, 4, 14)
    assert extension_refusal(already_extended=True, original_due=due, today=due) == (
        "This request was already extended once; the law allows one extension.")
    assert extension_refusal(already_extended=False, original_due=due, today=date(2026, 4, 15)) == (
        "The original due date (2026-04-14) has passed; an extension had to be decided and told to the subject "
        "before it.")
    assert extension_refusal(already_extended=False, original_due=due, today=due) is None


def test_label_texts() -> None:
    assert deadline_label("gdpr") == "GDPR Art. 12(3): one month"
    assert deadline_label("ccpa") == "CCPA: 45 days"
    assert extension_label("gdpr") == "to three months from receipt (GDPR Art. 12(3))"
    assert extension_label("ccpa") == "to 90 days from receipt (CCPA §1798.130(a)(2), Cal. Code Regs. tit. 11 §7021(b))"
    assert REGIMES == ("gdpr", "ccpa")


@pytest.mark.parametrize(("due", "today", "text", "urgency"), [
    (date(2026, 4, 14), date(2026, 4, 15), "OVERDUE by 1 day", Urgency.OVERDUE),
    (date(2026, 4, 14), date(2026, 4, 17), "OVERDUE by 3 days", Urgency.OVERDUE),
    (date(2026, 4, 14), date(2026, 4, 14), "due today", Urgency.DUE_SOON),
    (date(2026, 4, 14), date(2026, 4, 13), "due soon, 1 day left", Urgency.DUE_SOON),
    (date(2026, 4, 14), date(2026, 4, 9), "due soon, 5 days left", Urgency.DUE_SOON),
    (date(2026, 4, 14), date(2026, 4, 8), "6 days left", Urgency.ON_TIME),
])
def test_countdown_texts(due: date, today: date, text: str, urgency: Urgency) -> None:
    left = countdown(due, today)
    assert (left.text, left.urgency) == (text, urgency)


def test_an_on_time_single_day_is_singular() -> None:
    assert Countdown(1, Urgency.ON_TIME).text == "1 day left"
    assert countdown(date(2026, 4, 14), date(2026, 4, 13), soon_days=0).text == "1 day left"
    assert [u.value for u in Urgency] == ["on_time", "due_soon", "overdue"]
