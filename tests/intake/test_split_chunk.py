"""How much of the inbox one split chunk reads: a count and a byte budget, and whether more waits."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from storage import intake as store
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.migrate import migrate


async def read_chunks(db_url: str, sizes: list[int], **chunk: int) -> tuple[list[int], bool]:
    engine = make_engine(db_url)
    try:
        await migrate(engine)
        sessions = make_session_factory(engine)
        rows = [{"received_at": datetime(2026, 12, 1, tzinfo=UTC), "body": bytes([65 + n]) * size,
                 "body_sha256": hashlib.sha256(bytes([65 + n]) * size).hexdigest()} for n, size in enumerate(sizes)]
        if rows:
            async with unit_of_work(sessions) as session:
                await store.insert_deliveries(session, rows)
        async with unit_of_work(sessions) as session:
            found, more = await store.read_delivery_chunk(session, **chunk)
        return [len(body) for _id, _received_at, body in found], more
    finally:
        await engine.dispose()


async def test_the_byte_budget_stops_a_chunk_after_the_body_that_crosses_it(db_url: str) -> None:
    # 100 bytes read before the second body, under 250: it is read; 300 before the third: it is not.
    assert await read_chunks(db_url, [100, 200, 300], limit=10, max_bytes=250) == ([100, 200], True)


async def test_the_first_delivery_is_read_however_large(db_url: str) -> None:
    assert await read_chunks(db_url, [5000, 10], limit=10, max_bytes=50) == ([5000], True)


async def test_a_chunk_cut_by_its_count_says_more_may_wait(db_url: str) -> None:
    assert await read_chunks(db_url, [10, 10, 10], limit=3, max_bytes=10_000) == ([10, 10, 10], True)


async def test_a_chunk_that_took_everything_says_nothing_waits(db_url: str) -> None:
    assert await read_chunks(db_url, [10, 20, 30], limit=10, max_bytes=10_000) == ([10, 20, 30], False)


async def test_an_empty_inbox_reads_nothing(db_url: str) -> None:
    assert await read_chunks(db_url, [], limit=10, max_bytes=10_000) == ([], False)
