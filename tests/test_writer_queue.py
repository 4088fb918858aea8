"""SQLite's writer queue: in order, except that the webhook's group commit goes first."""

from __future__ import annotations

import asyncio

from storage.db import WriterQueue


async def _holder(queue: WriterQueue, name: str, order: list[str], *, first: bool = False) -> None:
    async with queue.first() if first else queue:
        order.append(name)
        await asyncio.sleep(0)  # hold the writer across a loop turn, as a transaction does


async def test_waiters_get_the_writer_in_order_and_a_group_commit_goes_first() -> None:
    queue, order = WriterQueue(), list[str]()
    async with queue:  # a transaction in progress
        tasks = [asyncio.create_task(_holder(queue, name, order)) for name in ("a", "b")]
        await asyncio.sleep(0)  # both queue up
        tasks.append(asyncio.create_task(_holder(queue, "commit", order, first=True)))
        await asyncio.sleep(0)
        assert order == []
    await asyncio.gather(*tasks)
    assert order == ["commit", "a", "b"]
    async with queue:  # free again
        pass


async def test_a_cancelled_waiter_neither_takes_nor_loses_the_writer() -> None:
    queue, order = WriterQueue(), list[str]()
    async with queue:
        gone = asyncio.create_task(_holder(queue, "gone", order))
        kept = asyncio.create_task(_holder(queue, "kept", order))
        await asyncio.sleep(0)
        gone.cancel()
    await asyncio.gather(gone, kept, return_exceptions=True)
    assert order == ["kept"] and gone.cancelled()
    await asyncio.wait_for(_holder(queue, "after", order), timeout=1)  # not left held by the cancelled one
    assert order == ["kept", "after"]
