"""Read what the running service committed: table rows and the audit ledger."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from sandbox.harness import Sandbox
from storage.db import unit_of_work
from storage.ledger import AuditEntry, verify


async def rows(box: Sandbox, model: Any) -> list[Any]:
    """Every row of ``model``'s table, in id order."""
    async with unit_of_work(box.services.sessions) as session:
        return list((await session.exec(select(model).order_by(model.id))).all())


async def ledger_entries(box: Sandbox) -> list[AuditEntry]:
    """The whole audit ledger, in chain order."""
    async with unit_of_work(box.services.sessions) as session:
        return list((await session.exec(select(AuditEntry).order_by(AuditEntry.seq))).all())  # type: ignore[arg-type]


async def ledger(box: Sandbox, action: str) -> list[AuditEntry]:
    """The ledger entries of one action, after checking that the hash chain still verifies."""
    async with unit_of_work(box.services.sessions) as session:
        entries = list((await session.exec(select(AuditEntry).where(AuditEntry.action == action))).all())
        assert (await verify(session)).ok
    return entries
