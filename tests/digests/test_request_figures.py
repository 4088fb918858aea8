"""The compliance digest's request figures: opened, closed with days to close, due soon and overdue."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.requests.deadlines import DUE_SOON_DAYS
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.digests import request_figures
from storage.migrate import migrate
from storage.requests import PrivacyRequest

TODAY = date(2026, 11, 30)
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _request(n: int, *, state: str, due: date, received: datetime, completed: datetime | None = None) -> PrivacyRequest:
    return PrivacyRequest(
        kind="access", state=state, regime="gdpr", subject_hash=f"{n:064x}", subject_masked="j***@example.com",
        filed_by="U0ALICE", channel="C0PRIVACY", received_at=received, due_date=due, original_due_date=due,
        updated_at=received, completed_at=completed, responded_at=completed,  # answered when completed
    )


async def test_request_figures_count_the_period_and_the_deadlines(db_url: str) -> None:
    engine = make_engine(db_url)
    await migrate(engine)
    sessions = make_session_factory(engine)
    since = NOW - timedelta(days=7)
    async with unit_of_work(sessions) as session:
        session.add_all([
            # opened in the period, still open, due inside the due-soon window (edge: exactly N days)
            _request(1, state="filed", due=TODAY + timedelta(days=DUE_SOON_DAYS), received=NOW - timedelta(days=2)),
            # open, due just outside the window: neither due soon nor overdue
            _request(2, state="verified", due=TODAY + timedelta(days=DUE_SOON_DAYS + 1),
                     received=NOW - timedelta(days=20)),
            # open and overdue
            _request(3, state="approved", due=TODAY - timedelta(days=1), received=NOW - timedelta(days=40)),
            # closed in the period after 4 days (received in the period too)
            _request(4, state="done", due=TODAY + timedelta(days=20), received=NOW - timedelta(days=5),
                     completed=NOW - timedelta(days=1)),
            # closed before the period: not counted as closed
            _request(5, state="done", due=TODAY, received=NOW - timedelta(days=30),
                     completed=NOW - timedelta(days=10)),
        ])
    async with unit_of_work(sessions) as session:
        figures = await request_figures(session, since, NOW, today=TODAY, due_soon_days=DUE_SOON_DAYS)
    await engine.dispose()
    assert figures is not None
    assert (figures["opened"], figures["closed"]) == (2, 1)
    assert (figures["due_soon"], figures["overdue"]) == (1, 1)
    assert figures["days_to_close"] == [4.0]
