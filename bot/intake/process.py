"""Processing the inbox: each pending row becomes its effects (consent record, withdrawal, alerts, ledger
entries) and is marked done, chunk by chunk, each chunk in one transaction.

Rows are claimed by state, so a redelivered job or a second replica cannot process anything twice, and
a job left behind by a crash or restart runs when the service is back. Slack and Mautic calls are
separate jobs enqueued in that same transaction (``bot.intake.alerts``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from bot.intake import events
from bot.intake.alerts import WEBHOOK_ACTOR, raise_alert
from bot.intake.ids import IntakeJob
from bot.intake.inbox import InboxRow
from bot.intake.rules import breaches_objection, evaluate
from bot.intake.split import SPLIT_CHUNK, SPLIT_CHUNK_BYTES, split_deliveries
from bot.intake.writer import process_max_attempts
from storage import erasures, ledger
from storage import forms as form_store
from storage import intake as store
from storage import jobs as job_queue
from storage import requests as requests_store
from storage.db import unit_of_work
from storage.intake import AlertKind, AlertState, InboxEvent, InboxState, Withdrawal

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.intake.writer import DeliveryWriter
    from bot.jobs import JobRun
    from bot.services import Services

log = logging.getLogger(__name__)

PROCESS_CHUNK = 50  # rows per transaction: bounds how long SQLite's one writer is held
YIELD_EVERY = 20  # rows processed between two turns of the event loop for everything else
SWEEP_EVERY = timedelta(minutes=5)
STALE_AFTER = timedelta(minutes=10)  # pending this long with no live job: its job failed for good


async def process_inbox(services: Services, writer: DeliveryWriter, run: JobRun) -> None:
    """Job: process the given rows, or (no ids) split every pending delivery and process every pending row,
    oldest first, chunk by chunk, each chunk in its own transaction and processing turn."""
    if "ids" in run.payload:
        ids = sorted(int(i) for i in run.payload["ids"])
        for start in range(0, len(ids), PROCESS_CHUNK):
            async with writer.processing_turn():
                await _process_chunk(services, ids[start:start + PROCESS_CHUNK])
    else:
        with writer.splitting():
            while True:
                async with writer.processing_turn() as scale:
                    _read, more = await split_deliveries(services, SPLIT_CHUNK * scale, SPLIT_CHUNK_BYTES * scale)
                while True:
                    async with writer.processing_turn() as scale:
                        done = await _process_chunk(services, None, PROCESS_CHUNK * scale)
                    if done < PROCESS_CHUNK * scale:
                        break
                if not more:
                    break  # a delivery committed from here on is found by the writer's watcher, which queues a job
    services.jobs.notify()


async def enqueue_sweep(services: Services) -> None:
    """Scheduled: queue one sweep per interval, however many replicas' schedulers fire."""
    async with unit_of_work(services.sessions) as session:
        bucket = int(services.clock().timestamp() // SWEEP_EVERY.total_seconds())
        await job_queue.enqueue(session, IntakeJob.SWEEP, {}, dedupe_key=f"{IntakeJob.SWEEP}:{bucket}",
                                max_attempts=1)
    services.jobs.notify()


async def sweep_inbox(services: Services, run: JobRun) -> None:
    """Job: rows or deliveries left pending with no live job (their job failed for good) get a fresh
    process job, so none are lost."""
    stale = services.clock() - STALE_AFTER
    async with unit_of_work(services.sessions) as session:
        ids = await store.pending_ids(session, older_than=stale)
        if ids:
            await job_queue.enqueue(session, IntakeJob.PROCESS, {"ids": ids},
                                    max_attempts=process_max_attempts(services))
        oldest = await store.oldest_delivery(session)
        unsplit = (oldest is not None and oldest < stale
                   and await store.queued_job(session, IntakeJob.PROCESS) is None)
        if unsplit:
            await job_queue.enqueue(session, IntakeJob.PROCESS, {}, max_attempts=process_max_attempts(services))
        # Consent records whose evidence job failed for good (Mautic down for long) get another one.
        evidence = bool(await form_store.forms_awaiting_evidence(session, limit=1, older_than=stale)) and \
            await form_store.request_evidence(session)
    if ids or unsplit or evidence:
        services.jobs.notify()


@dataclass
class _Chunk:
    """What one processing transaction shares: who was erased, who objected to direct marketing (and when),
    consent records still to write."""

    erased: dict[str, datetime]  # subject hash → when it was erased
    objected: dict[str, datetime] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    fields_seen: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    evidence_wanted: bool = False  # a record of a known form waits for its form revision
    forgotten: list[int] = field(default_factory=list)  # inbox rows of events that predate their erasure

    async def flush(self, session: AsyncSession) -> None:
        await store.insert_consent_records(session, self.records)
        self.records = []
        await form_store.note_fields_seen(session, list(self.fields_seen.values()))
        self.fields_seen = {}
        if self.evidence_wanted:
            # The revision is fetched from Mautic by a job, never here: processing stays a database-only step.
            await form_store.request_evidence(session)
            self.evidence_wanted = False


async def _process_chunk(services: Services, ids: list[int] | None, limit: int = PROCESS_CHUNK) -> int:
    """One transaction over up to ``limit`` pending rows; returns how many were claimed."""
    async with unit_of_work(services.sessions) as session:
        claimed = await store.claim_pending(session, ids, limit=limit)
        rows = [
            InboxRow(row_id, event_type, dict(payload or {}), occurred_at, contact_id, subject, int(raw_size), note)
            for row_id, event_type, payload, occurred_at, contact_id, subject, note, raw_size in claimed
        ]
        if not rows:
            return 0
        # Mautic groups a delivery by type, losing the order between types; time order restores it.
        rows.sort(key=lambda r: (r.occurred_at is None, r.occurred_at or datetime.min.replace(tzinfo=UTC), r.id))
        subjects = {r.subject for r in rows if r.subject}
        erased = await store.erased_among(session, subjects)
        objected = await requests_store.objections_among(session, subjects)
        now = services.clock()
        outcomes: list[dict[str, Any]] = []
        try:
            # Fast path: the whole chunk in one savepoint, effects flushed together.
            async with session.begin_nested():
                chunk = _Chunk(erased, objected)
                for n, row in enumerate(rows, 1):
                    state, kept = await _apply(session, services, row, chunk)
                    if n % YIELD_EVERY == 0:
                        # Most events take no database round trip (their effects are flushed together), so
                        # without this a chunk would hold the loop for all of them at once.
                        await asyncio.sleep(0)
                    outcomes.append({"id": row.id, "state": state, "payload": kept, "processed_at": now})
                await chunk.flush(session)
                await session.flush()
            forgotten = chunk.forgotten
        except Exception:
            log.warning("intake: a chunk of %d events failed together; processing them one by one", len(rows))
            forgotten = []
            outcomes = [await _apply_alone(session, services, row, erased, objected, now, forgotten) for row in rows]
        await session.exec(update(InboxEvent), params=outcomes)  # type: ignore[call-overload]
        if forgotten:
            await store.delete_inbox_rows(session, forgotten)
            log.info("intake: %d event(s) from before their subject's erasure arrived late; forgotten", len(forgotten))
    return len(rows)


async def _apply_alone(session: AsyncSession, services: Services, row: InboxRow, erased: dict[str, datetime],
                       objected: dict[str, datetime], now: datetime, forgotten: list[int]) -> dict[str, Any]:
    try:
        async with session.begin_nested():
            chunk = _Chunk(erased, objected)
            state, kept = await _apply(session, services, row, chunk)
            await chunk.flush(session)
            await session.flush()
        forgotten.extend(chunk.forgotten)
        return {"id": row.id, "state": state, "payload": kept, "processed_at": now}
    except Exception as exc:
        # One poisonous event must not hold back the rest of the delivery.
        log.exception("intake: processing inbox row %s (%s) failed", row.id, row.type)
        return {"id": row.id, "state": InboxState.FAILED, "payload": row.payload, "processed_at": now,
                "note": type(exc).__name__}


async def _apply(session: AsyncSession, services: Services, row: InboxRow,
                 chunk: _Chunk) -> tuple[InboxState, dict[str, Any] | None]:
    """Effects of one event; returns the row's final state and what to keep of its payload."""
    if row.type == events.DEAD_LETTER:
        await _dead_letter(session, services, row)
        return InboxState.DEAD, None
    erased_at = chunk.erased.get(row.subject) if row.subject else None
    # Mautic stamps whole seconds: an event in the erasure's own second counts as a re-entry, never forgotten.
    if erased_at is not None and row.occurred_at is not None and row.occurred_at < erased_at.replace(microsecond=0):
        # Happened before the erasure, arrived after it (spooled during a database outage, or held in Mautic's
        # webhook queue): the erasure already covers it. Kept, it would bring the address back into the store
        # and raise a false "erased person is back" alert; its inbox row is deleted with the chunk.
        chunk.forgotten.append(row.id)
        return InboxState.DONE, None
    event = events.InboundEvent(row.type, row.payload, row.occurred_at, row.contact_id,
                                _email_of(row), "", events.Disposition.ACT)
    if row.type == events.FORM_SUBMIT:
        await _form_submitted(session, services, row, event, chunk)
    elif row.type == events.SUBSCRIPTION_CHANGED:
        await chunk.flush(session)  # a consent given earlier in this chunk must count for a re-subscription
        await _subscription_changed(session, services, row, event)
    elif row.type == events.EMAIL_SEND:
        await _email_sent(session, services, row, event)
    elif row.type == events.CONTACT_DELETED:
        # Also fires for the losing side of a merge: recorded, never treated as an erasure.
        await ledger.record(session, actor=WEBHOOK_ACTOR, action="mautic.contact_deleted",
                            subject=row.contact_ref(),
                            details={"inbox": row.id, "meaning": "deleted or merged in Mautic; not an erasure"})
    elif row.type == events.CONTACT_IDENTIFIED:
        await _check_erased(session, services, row, event, chunk.erased, via="contact identified in Mautic")
    elif row.type not in events.KNOWN_TYPES:
        return InboxState.DONE, row.payload  # stored as received, for whoever adds support for it
    # Once processed, keep ids and types only: the payload's personal data is not needed any more.
    return InboxState.DONE, events.summary(event)


def _email_of(row: InboxRow) -> str | None:
    return events.contact_of(row.type, row.payload)[1]


async def _form_submitted(session: AsyncSession, services: Services, row: InboxRow, event: events.InboundEvent,
                          chunk: _Chunk) -> None:
    policy = services.policy.consent
    sub = events.form_submission(row.payload, fallback_at=row.occurred_at)
    verdict = evaluate(policy, sub.form_id, sub.form_alias, sub.results)
    now = services.clock()
    record = {
        "inbox_id": row.id, "contact_id": sub.contact_id, "subject_hash": row.subject, "email": sub.email,
        "form_id": sub.form_id, "form_name": sub.form_name[:255], "form_alias": sub.form_alias[:255],
        "submission_id": sub.submission_id, "fields": list(verdict.fields),
        "values": {k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
                   for k, v in verdict.values.items()},
        "given": verdict.given, "exempt": verdict.exempt,
        "source_ip": sub.source_ip if policy.store_source_ip else None,
        "submitted_at": sub.submitted_at or now, "recorded_at": now,
        "policy_version": services.policy.version, "page_url": sub.page_url,
        # A submission without a form id has no revision to fetch: its evidence is complete as it is.
        "evidence_at": None if sub.form_id is not None else now,
    }
    if sub.form_id is not None:
        chunk.evidence_wanted = True
        for alias in sub.results:  # the aliases only, never the values (record of processing, Art. 30)
            chunk.fields_seen.setdefault((sub.form_id, str(alias)[:191]), {
                "form_id": sub.form_id, "form_name": sub.form_name[:255], "field_alias": str(alias)[:191],
                "first_seen_at": now})
    submitted_at = sub.submitted_at or now
    objected_at = chunk.objected.get(row.subject) if row.subject else None
    breach = False
    if objected_at is not None and not verdict.given:
        await chunk.flush(session)  # a consent given earlier in this chunk counts as new consent
        newer = await store.consent_given_since(session, subject=row.subject, contact_id=None, since=objected_at)
        breach = breaches_objection(verdict, objected_at=objected_at, submitted_at=submitted_at,
                                    consented_since=newer is not None)
    record_id: int | None = None
    if verdict.gap or breach:
        record_id = await store.insert_consent_record(session, record)  # the alert refers to it
    else:
        chunk.records.append(record)  # written with the rest of the chunk
    await _check_erased(session, services, row, event, chunk.erased, via=f"form {sub.form_name}")
    if breach:
        assert objected_at is not None and row.subject is not None
        # One alert for the submission: the objection is the graver finding, and it names the missing consent.
        await raise_alert(
            session, services, row, kind=AlertKind.SUBMITTED_AFTER_OBJECTION,
            burst_key=f"objected:{row.subject[:16]}", dedupe_key=f"objected:{row.id}", contact_id=sub.contact_id,
            email=sub.email, title=sub.form_name, missing=list(verdict.missing), consent_record_id=record_id,
            details={"form_id": sub.form_id, "form_alias": sub.form_alias,
                     "missing_text": "exempt form, no consent asked" if verdict.exempt else verdict.describe_missing(),
                     "objected_at": objected_at.isoformat(), "submitted_at": submitted_at.isoformat(),
                     "submission_id": sub.submission_id},
            ledger_action="consent.submitted_after_objection",
            ledger_details={"form_id": sub.form_id, "consent_record": record_id,
                            "objected_at": objected_at.isoformat()},
        )
        return
    if not verdict.gap:
        return
    await raise_alert(
        session, services, row,
        kind=AlertKind.CONSENT_GAP, burst_key=f"form:{sub.form_id if sub.form_id is not None else sub.form_alias}",
        dedupe_key=f"gap:{row.id}", contact_id=sub.contact_id, email=sub.email, title=sub.form_name,
        missing=list(verdict.missing), consent_record_id=record_id,
        details={"form_id": sub.form_id, "form_alias": sub.form_alias, "missing_text": verdict.describe_missing(),
                 "submitted_at": (sub.submitted_at or now).isoformat(), "submission_id": sub.submission_id},
        ledger_action="consent.gap_detected",
        ledger_details={"form_id": sub.form_id, "missing": list(verdict.missing), "consent_record": record_id},
    )


async def _check_erased(session: AsyncSession, services: Services, row: InboxRow, event: events.InboundEvent,
                        erased: dict[str, datetime], *, via: str) -> None:
    if not row.subject or row.subject not in erased:
        return
    # Erased while they had Do-Not-Contact (a bulk purge, or an erasure): they must stay suppressed.
    suppressed = bool(await erasures.suppressed_among(session, {row.subject}))
    await raise_alert(
        session, services, row, kind=AlertKind.ERASED_REENTERED, burst_key=f"erased:{row.subject[:16]}",
        dedupe_key=f"erased:{row.id}", contact_id=row.contact_id, email=event.email, title=via,
        details={"via": via, "suppressed": suppressed}, ledger_action="consent.erased_subject_reentered",
        ledger_details={"via_type": row.type, "suppressed": suppressed},
    )


async def _subscription_changed(session: AsyncSession, services: Services, row: InboxRow,
                                event: events.InboundEvent) -> None:
    change = events.subscription_change(row.payload)
    now = services.clock()
    at = row.occurred_at or now
    if change.withdrawn:
        withdrawal = Withdrawal(
            inbox_id=row.id, contact_id=change.contact_id, subject_hash=row.subject, channel=change.channel[:32],
            old_status=change.old_status[:32], new_status=change.new_status[:32], withdrawn_at=at, recorded_at=now,
        )
        session.add(withdrawal)
        await session.flush()
        await ledger.record(session, actor=WEBHOOK_ACTOR, action="consent.withdrawn", subject=row.subject_ref(),
                            details={"channel": change.channel, "status": change.new_status,
                                     "withdrawal": withdrawal.id, "contact": change.contact_id})
        if change.channel == "email" and change.contact_id is not None:
            # A send processed before this (late) withdrawal arrived still counts.
            for send in await store.sends_after(session, change.contact_id, at):
                await _flag_send(session, services, row, event, withdrawal, send.occurred_at or at,
                                 dict(send.payload or {}), dedupe=f"sent:{send.id}")
        if services.settings.alert_on_unsubscribe:
            await raise_alert(
                session, services, row, kind=AlertKind.UNSUBSCRIBE, burst_key="unsubscribe",
                dedupe_key=f"unsub:{row.id}", contact_id=change.contact_id, email=event.email,
                title=change.channel, state=AlertState.INFO,
                details={"channel": change.channel, "new_status": change.new_status, "withdrawn_at": at.isoformat()},
            )
        return
    if not change.restored:
        return
    open_w = await store.open_withdrawal(session, subject=row.subject, contact_id=change.contact_id,
                                         channel=change.channel)
    if open_w is not None:
        open_w.restored_at = at
        session.add(open_w)
    since = open_w.withdrawn_at if open_w is not None else None
    newer = await store.consent_given_since(session, subject=row.subject, contact_id=change.contact_id, since=since)
    # With no withdrawal on record, any consent record we hold clears it; none at all is flagged.
    flagged = newer is None
    await ledger.record(session, actor=WEBHOOK_ACTOR, action="consent.resubscribed", subject=row.subject_ref(),
                        details={"channel": change.channel, "from": change.old_status, "flagged": flagged,
                                 "withdrawal": open_w.id if open_w else None,
                                 "consent_record": newer.id if newer else None})
    if flagged:
        withdrawn_text = (f"{_when(open_w.withdrawn_at)} (`{open_w.new_status}`)" if open_w
                          else f"not on record (was `{change.old_status}`)")
        await raise_alert(
            session, services, row, kind=AlertKind.RESUBSCRIBED, burst_key=f"resub:{change.channel}",
            dedupe_key=f"resub:{row.id}", contact_id=change.contact_id, email=event.email, title=change.channel,
            details={"channel": change.channel, "withdrawn_text": withdrawn_text, "changed_at": at.isoformat()},
            ledger_action="consent.resubscribed_without_consent", ledger_details={"channel": change.channel},
        )


async def _email_sent(session: AsyncSession, services: Services, row: InboxRow, event: events.InboundEvent) -> None:
    at = row.occurred_at or services.clock()
    withdrawal = await store.open_withdrawal(session, subject=row.subject, contact_id=row.contact_id,
                                             channel="email", before=at)
    if withdrawal is not None:
        await _flag_send(session, services, row, event, withdrawal, at, row.payload, dedupe=f"sent:{row.id}")


async def _flag_send(session: AsyncSession, services: Services, row: InboxRow, event: events.InboundEvent,
                     withdrawal: Withdrawal, sent_at: datetime, send_payload: dict[str, Any], *, dedupe: str) -> None:
    email = events.email_send(send_payload) if "email" in send_payload else None
    email_id = email.email_id if email else send_payload.get("email_id")
    name = email.email_name if email else f"email #{email_id}"
    await raise_alert(
        session, services, row, kind=AlertKind.SENT_AFTER_WITHDRAWAL, burst_key=f"email:{email_id}",
        dedupe_key=dedupe, contact_id=row.contact_id or withdrawal.contact_id, email=event.email, title=name,
        details={"email_id": email_id, "sent_at": sent_at.isoformat(),
                 "withdrawn_text": f"{_when(withdrawal.withdrawn_at)} (`{withdrawal.new_status}`)"},
        ledger_action="consent.sent_after_withdrawal",
        ledger_details={"email_id": email_id, "withdrawal": withdrawal.id},
    )


async def _dead_letter(session: AsyncSession, services: Services, row: InboxRow) -> None:
    await ledger.record(session, actor=WEBHOOK_ACTOR, action="intake.dead_letter", subject=f"inbox:{row.id}",
                        details={"bytes": row.raw_size, "problem": row.note})
    await raise_alert(
        session, services, row, kind=AlertKind.DEAD_LETTER, burst_key="dead_letter", dedupe_key=f"dead:{row.id}",
        contact_id=None, email=None, title="dead letter", state=AlertState.INFO,
        details={"problem": row.note, "bytes": row.raw_size, "inbox_id": row.id},
    )


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")

