"""Splitting raw deliveries into inbox rows: one row per event, with its dedupe key and keyed subject hash,
or a dead letter for a body we cannot read as events.

Whoever takes a delivery (deletes it) inserts its events in the same transaction, so a delivery is split
once even with two splitters (two process jobs, or an erasure splitting what is pending).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from bot.intake import events
from storage import intake as store
from storage.db import unit_of_work

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.services import Services

SPLIT_CHUNK = 10  # deliveries per split transaction (up to ~100 events in queue mode)


async def split_deliveries(services: Services, limit: int = SPLIT_CHUNK) -> int:
    """Split up to ``limit`` of the oldest deliveries into inbox rows; returns how many were read."""
    async with unit_of_work(services.sessions) as session:
        found = await store.read_deliveries(session, limit=limit)
    if not found:
        return 0
    split: list[tuple[int, list[dict[str, Any]]]] = []
    for delivery_id, received_at, body in found:
        # Parsed outside any transaction (no writer held), yielding between deliveries so a webhook
        # request waiting for the loop gets it within one delivery's parse.
        split.append((delivery_id, events.inbox_rows(bytes(body), services.hash_key, received_at)))
        await asyncio.sleep(0)
    async with unit_of_work(services.sessions) as session:
        await _store_split(session, split)
    return len(found)


async def split_all_pending(session: AsyncSession, *, hash_key: str) -> int:
    """Split every pending delivery in the caller's transaction, waiting for a concurrent split
    of the same deliveries to commit; returns how many deliveries this call split.

    Erasure calls this before ``storage.intake.purge_subject``, in the same transaction: events still
    inside a delivery would otherwise escape the purge and be processed afterwards. Storage cannot do
    it itself, since splitting needs the keyed subject hash.
    """
    total = 0
    while found := await store.read_deliveries(session, limit=100, lock=True):
        total += await _store_split(session, [
            (delivery_id, events.inbox_rows(bytes(body), hash_key, received_at))
            for delivery_id, received_at, body in found
        ])
    return total


async def _store_split(session: AsyncSession, split: list[tuple[int, list[dict[str, Any]]]]) -> int:
    # Taking the delivery (DELETE … RETURNING) and inserting its events in one transaction: whoever deletes
    # it inserts its events, so a delivery is split once even with two splitters. The same event in two
    # deliveries (a redelivery) keeps the first; one already in the inbox is skipped by its dedupe key.
    taken = await store.take_deliveries(session, [delivery_id for delivery_id, _rows in split])
    rows: dict[str, dict[str, Any]] = {}
    for delivery_id, delivery_rows in split:
        if delivery_id in taken:
            for row in delivery_rows:
                rows.setdefault(row["dedupe_key"], row)
    if rows:
        await store.insert_inbox(session, list(rows.values()))
    return len(taken)

