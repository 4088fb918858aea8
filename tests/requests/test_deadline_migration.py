"""Revision 0007_request_deadlines on both backends: a request filed before it keeps its filing day (in UTC)
as its received date, and the upgraded schema is the one the models describe."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import inspect, select
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (every table on the metadata)
from storage.db import make_engine
from storage.migrate import MIGRATIONS, current_heads, migrate, script_head, upgrade

LATE_EVENING = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
COMPLETED = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
requests = SQLModel.metadata.tables["privacy_requests"]


async def test_an_existing_request_gets_its_filing_day_as_received_date(db_url: str) -> None:
    # ... and one done before the revision keeps counting as answered (closed) when it completed.
    engine = make_engine(db_url)
    try:
        await upgrade(engine, MIGRATIONS, "0006_slack_deliveries_and_home")
        async with engine.begin() as conn:
            await conn.execute(requests.insert().values(
                kind="access", state="filed", regime="gdpr", subject_hash="h" * 64, subject_masked="j***@e***.com",
                changes={}, filed_by="U0ALICE", channel="C0PRIVACY", received_at=LATE_EVENING,
                due_date=date(2026, 2, 28), original_due_date=date(2026, 2, 28), result={}, runs=0, pii_messages=[],
                updated_at=LATE_EVENING))
            await conn.execute(requests.insert().values(
                kind="erasure", state="done", regime="gdpr", subject_hash="d" * 64, subject_masked="s***@e***.com",
                changes={}, filed_by="U0ALICE", channel="C0PRIVACY", received_at=LATE_EVENING,
                due_date=date(2026, 2, 28), original_due_date=date(2026, 2, 28), result={}, runs=1, pii_messages=[],
                updated_at=LATE_EVENING, completed_at=COMPLETED))
        await migrate(engine)
        assert await current_heads(engine) == {script_head()}
        async with engine.connect() as conn:
            rows = (await conn.execute(select(requests.c.received_on, requests.c.due_note, requests.c.responded_at)
                                       .order_by(requests.c.id))).all()
            columns = await conn.run_sync(lambda sync: {c["name"]: c for c in inspect(sync).get_columns(
                "privacy_requests")})
        assert rows == [(date(2026, 1, 31), None, None), (date(2026, 1, 31), None, COMPLETED)]
        assert set(columns) == {c.name for c in requests.columns}
        assert columns["due_note"]["nullable"] is True and columns["verification_method"]["nullable"] is True
    finally:
        await engine.dispose()
