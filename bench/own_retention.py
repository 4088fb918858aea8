"""Benchmark: the bot's own retention deleting a large backlog of old rows, on SQLite and PostgreSQL.

    TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/<throw-away db> \\
      .venv/bin/python -m bench.own_retention --rows 100000 --backends sqlite,postgres

Seeds ``--rows`` processed inbox rows older than OWN_RETENTION_DAYS, a tenth as many dead letters (2 KB raw
bodies), half as many finished jobs, plus 1,000 pending and 1,000 recent rows that must survive; then
deletes them batch by batch exactly as ``bot.retention.run`` does (the same storage calls, the same batch
size, one transaction per batch). Figures: total time, rows per second and the longest single batch
transaction (how long the run holds SQLite's write lock, or PostgreSQL row locks, at a stretch).
PostgreSQL's ``public`` schema is dropped and recreated: point it at a throw-away database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import select

from bot.retention import BATCH, MAX_BATCHES
from storage import retention as store
from storage.db import SessionFactory, make_engine, make_session_factory, unit_of_work
from storage.intake import InboxEvent
from storage.jobs import Job
from storage.migrate import migrate

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=500)
BEFORE = NOW - timedelta(days=400)


async def seed(sessions: SessionFactory, rows: int) -> None:
    inbox = InboxEvent.__table__  # type: ignore[attr-defined]
    jobs = Job.__table__  # type: ignore[attr-defined]

    def event(n: int, state: str, received: datetime, raw: bytes | None = None) -> dict[str, object]:
        return {"dedupe_key": f"k{n}", "event_type": "mautic.form_on_submit", "state": state, "received_at": received,
                "contact_id": n, "subject_hash": f"{n:064x}", "payload": {"type": "form", "form_id": 4},
                "raw_body": raw, "note": None, "subject_hashes": None, "occurred_at": received,
                "processed_at": received}

    plan = ([("done", OLD, None)] * rows + [("dead", OLD, b"x" * 2048)] * (rows // 10)
            + [("pending", OLD, None)] * 1000 + [("done", NOW, None)] * 1000)
    for start in range(0, len(plan), 5000):
        chunk = plan[start:start + 5000]
        async with unit_of_work(sessions) as session:
            await session.exec(insert(inbox), params=[  # type: ignore[call-overload]
                event(start + i, state, received, raw) for i, (state, received, raw) in enumerate(chunk)])
    for start in range(0, rows // 2, 5000):
        async with unit_of_work(sessions) as session:
            await session.exec(insert(jobs), params=[  # type: ignore[call-overload]
                {"kind": "intake.process", "dedupe_key": None, "state": "done", "attempts": 1, "max_attempts": 5,
                 "payload": {}, "progress": {}, "run_after": OLD, "created_at": OLD, "finished_at": OLD,
                 "lease_until": None, "last_error": None}
                for _ in range(min(5000, rows // 2 - start))])


async def run(url: str, rows: int) -> dict[str, float]:
    engine = make_engine(url)
    try:
        await migrate(engine)
        sessions = make_session_factory(engine)
        await seed(sessions, rows)
        longest = 0.0
        deleted = 0
        started = time.perf_counter()
        for kind in ("inbox", "dead", "jobs"):
            for _ in range(MAX_BATCHES):
                t0 = time.perf_counter()
                async with unit_of_work(sessions) as session:
                    if kind == "jobs":
                        n = await store.delete_finished_jobs(session, BEFORE, limit=BATCH)
                    else:
                        n = await store.delete_inbox_rows(session, BEFORE, dead=kind == "dead", limit=BATCH)
                longest = max(longest, time.perf_counter() - t0)
                deleted += n
                if n < BATCH:
                    break
        total = time.perf_counter() - started
        async with unit_of_work(sessions) as session:
            left = len((await session.exec(select(InboxEvent.id))).all())
        return {"deleted": deleted, "seconds": total, "rows_per_s": deleted / total, "longest_batch_ms": longest * 1000,
                "inbox_left": left}
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        if backend == "sqlite":
            folder = tempfile.mkdtemp(prefix="own-retention-")
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
        else:
            from sandbox.harness import reset_postgres_schema

            url = os.environ["TEST_POSTGRES_URL"]
            await reset_postgres_schema(url)
        figures = await run(url, args.rows)
        print(f"{backend:<9} deleted {int(figures['deleted']):,} rows in {figures['seconds']:.1f} s "
              f"({figures['rows_per_s']:,.0f} rows/s), longest batch {figures['longest_batch_ms']:.0f} ms, "
              f"inbox rows left {int(figures['inbox_left']):,} (the 2,000 pending and recent ones)")


if __name__ == "__main__":
    asyncio.run(main())
