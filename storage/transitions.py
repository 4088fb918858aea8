"""Guarded state transitions: ``UPDATE … SET state = … WHERE id = … AND state IN (…)``.

The one primitive every decision in the bot rests on (requests, bulk purges, consent alerts): when two
people, two clicks or two replicas race, the database lets exactly one UPDATE match, and the caller
learns whether it won from the row count. Runs inside the caller's transaction, so the ledger entry and
any job the decision queues commit with it or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession


async def guarded_update(
    session: AsyncSession, table: Any, row_id: int, *, from_states: Iterable[str], values: dict[str, Any],
    extra_guard: Any = None,
) -> bool:
    """Apply ``values`` to row ``row_id`` of ``table`` only while its ``state`` is one of ``from_states``;
    True if this caller won."""
    states = [str(state) for state in from_states]
    query = update(table).where(col(table.id) == row_id, col(table.state).in_(states))
    if extra_guard is not None:
        query = query.where(extra_guard)
    result = await session.exec(query.values(**values))  # type: ignore[call-overload]
    return bool(result.rowcount)
