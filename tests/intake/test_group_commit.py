"""The webhook's group commit gives up at the earliest deadline of the deliveries it holds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.intake.helpers import offline_writer


async def test_a_commit_that_outlives_its_earliest_deadline_is_cancelled_and_fails_every_delivery_in_it() -> None:
    writer = offline_writer()
    batches: list[list[bytes]] = []
    cancelled = asyncio.Event()

    async def commit(rows: list[dict[str, Any]]) -> list[int]:
        batches.append([row["body"] for row in rows])
        if len(batches) == 1:  # the database hangs on the first group commit
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return list(range(100, 100 + len(rows)))

    writer._commit = commit  # type: ignore[method-assign]
    now = datetime.now(UTC)
    hurried = asyncio.create_task(writer.commit(b"a", now, timeout=0.05))
    patient = asyncio.create_task(writer.commit(b"b", now, timeout=60))
    for delivery in (hurried, patient):  # one group commit, held to the earlier deadline
        with pytest.raises(TimeoutError):
            await delivery
    assert batches == [[b"a", b"b"]]
    assert cancelled.is_set()
    # The writer goes on: the next delivery gets a commit of its own.
    assert await writer.commit(b"c", now, timeout=60) == 100
    assert batches == [[b"a", b"b"], [b"c"]]


async def test_the_watcher_stops_even_when_a_commit_pokes_it_as_it_is_cancelled() -> None:
    writer = offline_writer()
    looks = 0

    async def look() -> None:
        nonlocal looks
        looks += 1

    writer.schedule_processing = look  # type: ignore[method-assign]
    writer.start_watching(0.2)
    await asyncio.sleep(0)  # one turn: the watcher starts waiting for a poke
    writer._committed.set()  # a group commit pokes it in the same turn as the stop cancels it
    async with asyncio.timeout(5):  # inline, so the cancellation comes in this very turn
        await writer.stop_watching()  # on Python 3.11 wait_for lost that cancellation: this never returned
    assert writer._watcher is None and looks == 0
