"""What ``GET /metrics`` reads from the database at scrape time: a few grouped COUNTs, no row loads.

Read from the database rather than kept in memory so every replica reports the same, whole-system
figures (counters, which are per process, live in ``bot.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.intake import AlertState, ConsentAlert, InboxDelivery, InboxEvent, InboxState
from storage.jobs import Job
from storage.ledger import AuditEntry
from storage.requests import OPEN_STATES, PrivacyRequest


@dataclass(frozen=True)
class GaugeSnapshot:
    inbox_pending: int  # deliveries not yet split plus events not yet processed
    jobs: dict[tuple[str, str], int]  # (kind, state) -> count
    open_requests_by_due: dict[tuple[str, date], int]  # (kind, due date) -> count; bucketed by the caller
    consent_alerts_open: int
    ledger_entries: int


async def read_gauges(session: AsyncSession) -> GaugeSnapshot:
    deliveries = (await session.exec(select(func.count()).select_from(InboxDelivery))).one()
    events = (await session.exec(select(func.count()).select_from(InboxEvent)
                                 .where(col(InboxEvent.state) == InboxState.PENDING))).one()
    jobs = (await session.exec(select(Job.kind, Job.state, func.count()).group_by(col(Job.kind), col(Job.state)))).all()
    requests = (await session.exec(
        select(col(PrivacyRequest.kind), col(PrivacyRequest.due_date), func.count())
        .where(col(PrivacyRequest.state).in_(OPEN_STATES))
        .group_by(col(PrivacyRequest.kind), col(PrivacyRequest.due_date))
    )).all()
    alerts = (await session.exec(select(func.count()).select_from(ConsentAlert)
                                 .where(col(ConsentAlert.state) == AlertState.OPEN))).one()
    ledger = (await session.exec(select(func.max(AuditEntry.seq)))).one()
    return GaugeSnapshot(
        inbox_pending=int(deliveries) + int(events),
        jobs={(str(kind), str(state)): int(n) for kind, state, n in jobs},
        open_requests_by_due={(str(kind), due): int(n) for kind, due, n in requests},
        consent_alerts_open=int(alerts),
        # Sequence numbers are dense from 1 (the chain checks it), so the head's is the count, without a scan.
        ledger_entries=int(ledger or 0),
    )
