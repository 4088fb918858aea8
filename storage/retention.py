"""The bot's own retention: queries that delete what the bot keeps past its time, in bounded batches.

Every delete is by age or state alone, so running it twice (two replicas, a retried job) deletes nothing
more and loses nothing: rows still pending (a delivery not yet split, an event not yet processed, a job
queued or running) are never touched. Figures of each run are written to the audit ledger
(``retention.own_purge``), which is where the compliance digest reads them from.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.intake import ConsentRecord, InboxEvent, InboxState
from storage.jobs import Job, JobState
from storage.ledger import AuditEntry

LEDGER_ACTION = "retention.own_purge"
# Package files are deleted by the requests feature (on expiry, daily) one ledger entry each.
FILE_ACTIONS = {"export_files": "export.file_deleted", "slack_uploads": "export.slack_deleted"}
CONTACT_DELETED = "mautic.lead_post_delete"  # the event type Mautic sends (bot.intake.events.CONTACT_DELETED)


async def _delete_ids(session: AsyncSession, model: Any, condition: Any, limit: int) -> int:
    """Delete up to ``limit`` rows matching ``condition`` (by id: portable LIMIT on both backends).

    The row with the highest id always stays: SQLite (these tables have no AUTOINCREMENT) hands out
    max(id) + 1 next, so emptying a table would reuse old ids, and other rows name inbox rows and jobs
    by id in their dedupe keys (``gap:<inbox id>``): a reused id would silently drop a new alert.
    """
    newest = sa_select(func.max(col(model.id))).scalar_subquery()
    ids = (sa_select(col(model.id)).where(condition, col(model.id) < newest)
           .order_by(col(model.id)).limit(limit))
    result = await session.exec(delete(model).where(col(model.id).in_(ids)))  # type: ignore[call-overload]
    return int(result.rowcount or 0)


async def delete_inbox_rows(session: AsyncSession, before: datetime, *, dead: bool, limit: int) -> int:
    """Processed inbox rows (``dead``: dead letters) received before ``before``; pending ones stay."""
    states = [InboxState.DEAD] if dead else [InboxState.DONE, InboxState.FAILED]
    condition = and_(col(InboxEvent.received_at) < before, col(InboxEvent.state).in_(states))
    return await _delete_ids(session, InboxEvent, condition, limit)


async def delete_finished_jobs(session: AsyncSession, before: datetime, *, limit: int) -> int:
    """Jobs done or failed before ``before``. Their dedupe keys name one-off things (a request's run, a
    day's sweep, a digest slot, which the slot table claims itself), so forgetting them re-runs nothing."""
    condition = and_(col(Job.state).in_([JobState.DONE, JobState.FAILED]), col(Job.finished_at) < before)
    return await _delete_ids(session, Job, condition, limit)


async def mark_deleted_contacts(session: AsyncSession) -> int:
    """Consent records whose contact Mautic reported deleted (a contact-deleted event in the inbox) get
    the moment of the deletion; CONSENT_EVIDENCE_DAYS count from there. Runs before old inbox rows go."""
    deleted_at = (
        sa_select(func.min(func.coalesce(col(InboxEvent.occurred_at), col(InboxEvent.received_at))))
        .where(col(InboxEvent.event_type) == CONTACT_DELETED,
               col(InboxEvent.contact_id) == col(ConsentRecord.contact_id))
        .scalar_subquery()
    )
    deleted_ids = sa_select(col(InboxEvent.contact_id)).where(
        col(InboxEvent.event_type) == CONTACT_DELETED, col(InboxEvent.contact_id).is_not(None))
    result = await session.exec(  # type: ignore[call-overload]
        update(ConsentRecord)
        .where(col(ConsentRecord.contact_deleted_at).is_(None), col(ConsentRecord.contact_id).in_(deleted_ids))
        .values(contact_deleted_at=deleted_at)
    )
    return int(result.rowcount or 0)


async def consent_records_past(session: AsyncSession, before: datetime, *, limit: int) -> list[ConsentRecord]:
    """Consent records whose contact has been gone from Mautic since before ``before``."""
    query = (select(ConsentRecord).where(col(ConsentRecord.contact_deleted_at) < before)
             .order_by(col(ConsentRecord.id)).limit(limit))
    return list((await session.exec(query)).all())


async def keep_consent_records(session: AsyncSession, ids: Sequence[int], contact_id: int) -> int:
    """The person is still in Mautic (merged into ``contact_id``, or under the same address): the
    evidence follows that contact and is kept while it exists."""
    result = await session.exec(  # type: ignore[call-overload]
        update(ConsentRecord).where(col(ConsentRecord.id).in_(list(ids)))
        .values(contact_id=contact_id, contact_deleted_at=None))
    return int(result.rowcount or 0)


async def delete_consent_records(session: AsyncSession, ids: Sequence[int], before: datetime) -> int:
    """Delete these records if they are still past their time (a concurrent keep wins)."""
    result = await session.exec(  # type: ignore[call-overload]
        delete(ConsentRecord).where(col(ConsentRecord.id).in_(list(ids)),
                                    col(ConsentRecord.contact_deleted_at) < before))
    return int(result.rowcount or 0)


async def figures(session: AsyncSession, since: datetime, until: datetime) -> dict[str, int]:
    """What the bot's own retention deleted in ``[since, until)``, summed per kind from the ledger."""
    query = select(AuditEntry.details).where(col(AuditEntry.action) == LEDGER_ACTION,
                                             col(AuditEntry.at) >= since, col(AuditEntry.at) < until)
    totals: dict[str, int] = {}
    for details in (await session.exec(query)).all():
        for kind, count in ((details or {}).get("deleted") or {}).items():
            if isinstance(count, int):
                totals[kind] = totals.get(kind, 0) + count
    for kind, action in FILE_ACTIONS.items():
        count = (await session.exec(select(func.count()).select_from(AuditEntry).where(
            col(AuditEntry.action) == action, col(AuditEntry.at) >= since, col(AuditEntry.at) < until))).one()
        totals[kind] = int(count or 0)
    return totals
