"""Splitting raw deliveries into inbox rows: one row per event, with its dedupe key and keyed subject hash,
or a dead letter for a body we cannot read as events (or cannot store).

Whoever takes a delivery (deletes it) inserts its events in the same transaction, so a delivery is split
once even with two splitters (two process jobs, or an erasure splitting what is pending). A delivery the
database refuses (a value no sanitising foresaw) is stored as a dead letter in its own savepoint, so it
is reported once and every other delivery goes on: nothing stalls behind it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import InterfaceError, OperationalError

from bot.intake import events
from storage import intake as store
from storage.db import unit_of_work

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.services import Services

log = logging.getLogger(__name__)

SPLIT_CHUNK = 10  # deliveries per split transaction (up to ~100 events in queue mode)
# Body bytes one unit of split chunk may read (at least one delivery is always read): with the largest
# bodies WEBHOOK_MAX_BYTES allows, a chunk of many deliveries would otherwise hold them all in memory.
SPLIT_CHUNK_BYTES = 256 * 1024
# Bodies larger than this are parsed on a worker thread: the loop keeps answering webhooks meanwhile.
PARSE_OFF_LOOP_BYTES = 64 * 1024
INSERT_SLICE = 100  # inbox rows per INSERT statement


@dataclass(frozen=True)
class Split:
    """One delivery and the inbox rows it became."""

    delivery_id: int
    received_at: datetime
    body: bytes
    rows: list[dict[str, Any]]


async def split_deliveries(services: Services, limit: int = SPLIT_CHUNK,
                           max_bytes: int = SPLIT_CHUNK_BYTES) -> tuple[int, bool]:
    """Split up to ``limit`` of the oldest deliveries (and up to about ``max_bytes`` of their bodies) into
    inbox rows; returns how many were read and whether more were waiting."""
    async with unit_of_work(services.sessions) as session:
        found, more = await store.read_delivery_chunk(session, limit=limit, max_bytes=max_bytes)
    if not found:
        return 0, False
    split: list[Split] = []
    seen: set[bytes] = set()
    for delivery_id, received_at, body in found:
        # Parsed outside any transaction (no writer held), yielding between deliveries so a webhook
        # request waiting for the loop gets it within one delivery's parse.
        split.append(await _split(bytes(body), delivery_id, received_at, services.hash_key,
                                  services.settings.max_events_per_delivery, seen))
    async with unit_of_work(services.sessions) as session:
        await _store_split(session, split, services.hash_key)
    return len(found), more


async def split_all_pending(session: AsyncSession, *, hash_key: str, max_events: int | None = None) -> int:
    """Split every pending delivery in the caller's transaction, waiting for a concurrent split
    of the same deliveries to commit; returns how many deliveries this call split.

    Erasure calls this before ``storage.intake.purge_subject``, in the same transaction: events still
    inside a delivery would otherwise escape the purge and be processed afterwards. Storage cannot do
    it itself, since splitting needs the keyed subject hash.
    """
    total = 0
    while found := await store.read_deliveries(session, limit=100, lock=True):
        seen: set[bytes] = set()
        split = [await _split(bytes(body), delivery_id, received_at, hash_key, max_events, seen)
                 for delivery_id, received_at, body in found]
        total += await _store_split(session, split, hash_key)
    return total


async def _split(body: bytes, delivery_id: int, received_at: datetime, hash_key: str,
                 max_events: int | None, seen: set[bytes]) -> Split:
    if body in seen:
        # A byte-identical redelivery in the same chunk (a Mautic retry, or a replayed signed body) yields
        # the very rows of its first copy, which _store_together keeps over it by dedupe key: taken, not
        # parsed again.
        return Split(delivery_id, received_at, body, [])
    seen.add(body)
    if len(body) > PARSE_OFF_LOOP_BYTES:
        rows = await asyncio.to_thread(events.inbox_rows, body, hash_key, received_at, max_events)
    else:
        rows = events.inbox_rows(body, hash_key, received_at, max_events)
        await asyncio.sleep(0)
    return Split(delivery_id, received_at, body, rows)


def _database_unavailable(exc: Exception) -> bool:
    """An error about the connection, not about the data: the whole split is retried, nothing is
    dead-lettered for it."""
    return isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError)


async def _store_split(session: AsyncSession, split: list[Split], hash_key: str) -> int:
    """Store the deliveries together in one savepoint; if the database refuses that, each in its own, and
    a delivery refused on its own becomes a dead letter. Returns how many deliveries this call took."""
    try:
        async with session.begin_nested():
            return await _store_together(session, split)
    except Exception as exc:
        if _database_unavailable(exc):
            raise
        log.warning("intake: %d deliveries could not be stored together (%s); storing them one by one",
                    len(split), type(exc).__name__)
    taken = 0
    for one in split:
        try:
            async with session.begin_nested():
                taken += await _store_together(session, [one])
            continue
        except Exception as exc:
            if _database_unavailable(exc):
                raise
            problem = f"could not be stored ({type(exc).__name__})"
            log.warning("intake: delivery %s %s; kept as a dead letter", one.delivery_id, problem)
        dead = await _dead_letter(one, hash_key, problem)
        async with session.begin_nested():
            taken += await _store_together(session, [Split(one.delivery_id, one.received_at, one.body, [dead])])
    return taken


async def _dead_letter(one: Split, hash_key: str, problem: str) -> dict[str, Any]:
    """The dead letter of a delivery the database refused. Finding its addresses reads the whole body (up
    to WEBHOOK_MAX_BYTES; 200 ms a MiB for a body dense with ``@``), so a large one is read on a worker
    thread, as parsing is."""
    if len(one.body) > PARSE_OFF_LOOP_BYTES:
        return await asyncio.to_thread(events.dead_letter_row, one.body, hash_key, one.received_at, problem)
    return events.dead_letter_row(one.body, hash_key, one.received_at, problem)


async def _store_together(session: AsyncSession, split: list[Split]) -> int:
    # Taking the delivery (DELETE … RETURNING) and inserting its events in one transaction: whoever deletes
    # it inserts its events, so a delivery is split once even with two splitters. The same event in two
    # deliveries (a redelivery) keeps the first; one already in the inbox is skipped by its dedupe key.
    taken = await store.take_deliveries(session, [one.delivery_id for one in split])
    rows: dict[str, dict[str, Any]] = {}
    for one in split:
        if one.delivery_id in taken:
            for row in one.rows:
                rows.setdefault(row["dedupe_key"], row)
    values = list(rows.values())
    for start in range(0, len(values), INSERT_SLICE):
        # One statement per slice: building a statement's parameters holds the loop, so a delivery of a
        # thousand events is stored in slices with the loop free in between.
        await store.insert_inbox(session, values[start:start + INSERT_SLICE])
    return len(taken)
