"""A request's received date and regime, end to end: `received=` and `regime=` on the slash command, the
local date in DEADLINE_TIMEZONE, the roll-forward past weekends and DEADLINE_HOLIDAYS, and what the
request message, `/privacy status` and the ledger show."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlmodel import select

from sandbox.harness import ALICE, PRIVACY_CHANNEL, sandbox
from storage import requests as store
from storage.db import unit_of_work
from tests.helpers import ledger, test_tuning, text_of
from tests.requests.helpers import TIMEOUT, file_request, load_row, request_id_of


def fixed(moment: datetime):  # type: ignore[no-untyped-def]
    return lambda: moment


async def test_a_late_evening_filing_in_california_counts_from_the_local_date(db_url: str, tmp_path: Path) -> None:
    # 07:30 UTC on 1 Feb is 23:30 on 31 Jan in Los Angeles.
    clock = fixed(datetime(2026, 2, 1, 7, 30, tzinfo=UTC))
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports",
                       deadline_timezone="America/Los_Angeles") as box:
        box.mautic.add_contact(email="jane@example.com")
        result = await box.command(ALICE, "dsar jane@example.com regime=ccpa ticket 9")
        assert "(CCPA), received 2026-01-31; legal due date 2026-03-17" in result.text, result.text
        await box.slack.wait_until(lambda: len(box.slack.messages(PRIVACY_CHANNEL)) == 1, timeout=TIMEOUT,
                                   describe="the first request's message")
        message = await file_request(box, ALICE, "erase sam@example.com", expect_contacts=False)
        row = await load_row(box, 1)
        assert row is not None and (row.regime, row.received_on, row.due_date) == ("ccpa", date(2026, 1, 31),
                                                                                  date(2026, 3, 17))
        assert row.note == "ticket 9"
        other = await load_row(box, request_id_of(message))
        assert other is not None and (other.regime, other.received_on) == ("gdpr", date(2026, 1, 31))  # DSAR_DEADLINE
        assert other.due_date == date(2026, 3, 2) and other.due_note == "28 Feb is a Saturday"
        shown = text_of(message)
        assert "2026-01-31" in shown and "GDPR" in shown
        assert "2026-03-02 (GDPR Art. 12(3): one month; 28 Feb is a Saturday, so the next working day)" in shown


async def test_received_date_and_public_holidays(db_url: str, tmp_path: Path) -> None:
    clock = fixed(datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports",
                       deadline_holidays="DE") as box:
        box.mautic.add_contact(email="jane@example.com")
        message = await file_request(box, ALICE, "dsar jane@example.com received=2026-11-25 by email")
        row = await load_row(box, request_id_of(message))
        assert row is not None and row.received_on == date(2026, 11, 25) and row.note == "by email"
        # 25 Dec is Christmas, 26 Dec Boxing Day (a Saturday), 27 Dec a Sunday.
        assert row.due_date == row.original_due_date == date(2026, 12, 28)
        assert "25 Dec is a public holiday (Christmas Day)" in text_of(message)
        (filed,) = await ledger(box, "request.filed")
        assert filed.details["received_on"] == "2026-11-25" and filed.details["due_date"] == "2026-12-28"
        assert filed.details["due_note"] == "25 Dec is a public holiday (Christmas Day)"
        status = await box.command(ALICE, f"status {row.id}")
        assert "2026-11-25" in status.text and "2026-12-28" in status.text
        shown = str(status.json["blocks"])  # issue 10 item 1: status shows the received date and the regime
        assert "*Received*" in shown and "*Regime*" in shown and "GDPR" in shown


async def test_a_future_or_malformed_received_date_is_refused_and_nothing_is_filed(db_url: str,
                                                                                   tmp_path: Path) -> None:
    clock = fixed(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        for args, needle in [
            ("dsar jane@example.com received=2026-03-11", "is in the future (today is 2026-03-10)"),
            ("dsar jane@example.com received=2026-02-30", "`received` is a date written YYYY-MM-DD"),
            ("dsar jane@example.com received=yesterday", "`received` is a date written YYYY-MM-DD"),
            ("erase jane@example.com regime=lgpd", "`regime` is `gdpr` or `ccpa`"),
            ("dsar jane@example.com received=2026-03-01 received=2026-03-02", "`received` is given twice"),
        ]:
            result = await box.command(ALICE, args)
            assert needle in result.text, (args, result.text)
            assert "/privacy " in result.text and "received=YYYY-MM-DD" in result.text  # the right form
        async with unit_of_work(box.services.sessions) as session:
            assert (await session.exec(select(store.PrivacyRequest))).all() == []
