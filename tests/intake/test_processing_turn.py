"""How much work a processing turn may do at once: the chunk scale that keeps a listener's loop responsive."""

from __future__ import annotations

import asyncio

from bot.intake.writer import CHUNK_SCALE, IDLE_GAP, WORKER_CHUNK_SCALE, DeliveryWriter
from tests.intake.helpers import offline_writer as writer


async def scale_after(w: DeliveryWriter, quiet_for: float) -> int:
    w.last_arrival = asyncio.get_running_loop().time() - quiet_for
    async with w.processing_turn() as scale:
        return scale


async def test_a_worker_process_takes_large_chunks_whenever_intake_is_quiet() -> None:
    assert await scale_after(writer(serves_web=False), 0.01) == WORKER_CHUNK_SCALE


async def test_a_listeners_process_takes_one_unit_until_intake_has_been_idle_a_while() -> None:
    w = writer(serves_web=True)
    assert await scale_after(w, 0.01) == 1  # a gap between deliveries: the next may come any moment
    assert await scale_after(w, IDLE_GAP * 2) == CHUNK_SCALE  # the burst is over
