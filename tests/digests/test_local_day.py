"""The digest counts "overdue" on the controller's calendar (DEADLINE_TIMEZONE), as due dates are counted
(issue 10: a day taken in UTC is a day late in California). At 01:00 UTC on 11 Mar it is still 10 Mar in
Los Angeles, so a request due 10 Mar is due today there, not overdue."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bot.clock import local_day
from bot.digests.service import compliance_digest
from sandbox.harness import sandbox
from storage.db import unit_of_work
from storage.requests import PrivacyRequest
from tests.helpers import test_tuning

UNTIL = datetime(2026, 3, 11, 1, 0, tzinfo=UTC)  # 18:00 on 10 Mar in Los Angeles


def test_local_day_is_the_date_where_the_controller_is() -> None:
    assert local_day(UNTIL, "America/Los_Angeles") == date(2026, 3, 10)
    assert local_day(UNTIL, "UTC") == date(2026, 3, 11)
    assert local_day(datetime(2026, 3, 10, 23, 30, tzinfo=UTC), "Europe/Berlin") == date(2026, 3, 11)


async def test_the_digest_counts_overdue_on_the_local_calendar(db_url: str, tmp_path: Path) -> None:
    received = datetime(2026, 2, 10, 17, 0, tzinfo=UTC)
    async with sandbox(db_url, tuning=test_tuning(lambda: UNTIL), export_dir=tmp_path / "exports",
                       deadline_timezone="America/Los_Angeles") as box:
        async with unit_of_work(box.services.sessions) as session:
            session.add(PrivacyRequest(
                kind="access", state="verified", regime="gdpr", subject_hash="ab" * 32,
                subject_masked="j***@example.com", filed_by="U0ALICE", channel="C0PRIVACY", received_at=received,
                received_on=received.date(), due_date=date(2026, 3, 10), original_due_date=date(2026, 3, 10),
                updated_at=received))
        digest = await compliance_digest(box.services, since=UNTIL - timedelta(days=7), until=UNTIL)
        assert (digest.requests.overdue, digest.requests.due_soon) == (0, 1)
