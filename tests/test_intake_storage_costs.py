"""The cheaper intake paths keep their guarantees: redelivered events are not stored twice, and SQLite
commits are fsync'd (durable before acknowledged, power loss included)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from bot.intake.events import FORM_SUBMIT, inbox_rows
from storage import intake as store
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.intake import InboxEvent
from storage.migrate import migrate

RECEIVED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _body(*submission_ids: int) -> bytes:
    return json.dumps({FORM_SUBMIT: [
        {"submission": {"id": n, "form": {"id": 1}, "lead": {"id": n, "fields": {}}, "results": {}},
         "timestamp": "2026-12-01T12:00:00+00:00"}
        for n in submission_ids
    ]}).encode()


async def test_insert_inbox_returns_only_new_ids_for_a_redelivered_batch(db_url: str) -> None:
    engine = make_engine(db_url)
    await migrate(engine)
    sessions = make_session_factory(engine)
    try:
        first = inbox_rows(_body(1, 2), "k" * 64, RECEIVED)
        async with unit_of_work(sessions) as session:
            stored = await store.insert_inbox(session, first)
        assert set(stored) == {row["dedupe_key"] for row in first}

        again = inbox_rows(_body(2, 3), "k" * 64, RECEIVED)  # event 2 redelivered beside a new event 3
        async with unit_of_work(sessions) as session:
            added = await store.insert_inbox(session, again)
        assert set(added) == {again[1]["dedupe_key"]}
        assert added[again[1]["dedupe_key"]] not in stored.values()

        async with unit_of_work(sessions) as session:
            assert await store.insert_inbox(session, first) == {}  # a whole redelivered batch: nothing written
            count = (await session.exec(select(func.count()).select_from(InboxEvent))).one()  # type: ignore[call-overload]
        assert count[0] == 3
    finally:
        await engine.dispose()


async def test_sqlite_commits_are_fsynced(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            level = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
        assert level == 2  # FULL: NORMAL (1) in WAL mode may lose the last commits on power loss
    finally:
        await engine.dispose()
