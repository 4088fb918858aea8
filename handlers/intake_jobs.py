"""Durable job kinds of the intake feature: work off the inbox, post and refresh alerts, apply decisions.

The webhook view stores each delivery raw (``inbox_deliveries``) and enqueues ``intake.process``. That
job first splits deliveries into per-event inbox rows (parse, dedupe keys, dead letters; the delivery
is deleted in the same transaction), then turns each pending row into its effects (consent record,
withdrawal, alert, ledger entries) and marks it done. Deliveries are taken by deleting them and rows
are claimed by state, so a redelivered job or a second replica cannot split or process anything twice,
and a job left behind by a crash or restart runs when the service is back. Slack and Mautic calls are
separate jobs enqueued in that same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import text, update

from bot.intake import events as intake
from bot.intake.blocks import AlertView, alert_message, decision_thread_text
from bot.intake.rules import evaluate
from bot.jobs import JobRun, PermanentJobError, RetryableJobError
from bot.mautic import MauticAuthError, MauticError, MauticNotFound
from bot.privacy import mask_email
from storage import intake as store
from storage import jobs as job_queue
from storage import ledger
from storage.db import unit_of_work
from storage.intake import AlertKind, AlertState, ConsentAlert, InboxEvent, InboxState, Withdrawal
from storage.types import utcnow

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.jobs import JobRunner
    from bot.services import Services

log = logging.getLogger(__name__)

PROCESS = "intake.process"
POST_ALERT = "intake.post_alert"
REFRESH_ALERT = "intake.refresh_alert"
APPLY_DECISION = "intake.apply_decision"
SWEEP = "intake.sweep"

ACTOR = "mautic-webhook"
# Folded findings refresh the lead message at most once per this many seconds (chat.update budget).
REFRESH_BUCKET_SECONDS = 3
RETRY_AFTER_CAP_SECONDS = 30.0


def register(runner: JobRunner, services: Services, writer: DeliveryWriter) -> None:
    """Register this feature's job kinds, bound to the services and the process's delivery writer."""
    runner.register(PROCESS, partial(process_inbox, services, writer))
    runner.register(POST_ALERT, partial(post_alert, services))
    runner.register(REFRESH_ALERT, partial(refresh_alert, services))
    runner.register(APPLY_DECISION, partial(apply_decision, services), on_failed=partial(decision_failed, services))
    runner.register(SWEEP, partial(sweep_inbox, services))
    # Erasure (storage.intake.purge_subject) splits what is still pending first, with our hash key.
    store.install_splitter(services.engine, functools.partial(split_all_pending, hash_key=services.hash_key))


def schedule(scheduler: AsyncIOScheduler, services: Services) -> None:
    """Every few minutes, give rows or deliveries whose process job failed for good another job (none are lost)."""

    async def enqueue_sweep() -> None:
        async with unit_of_work(services.sessions) as session:
            bucket = int(services.clock().timestamp() // 300)
            await job_queue.enqueue(session, SWEEP, {}, dedupe_key=f"{SWEEP}:{bucket}", max_attempts=1)
        services.jobs.notify()

    scheduler.add_job(enqueue_sweep, "interval", minutes=5, id="intake-sweep", replace_existing=True,
                      coalesce=True, max_instances=1)


class DeliveryWriter:
    """Group commit for the webhook view, and the signal processing reads to stay out of intake's way.

    Each request returns only after the transaction holding its delivery has committed (durable before
    acknowledged), but deliveries arriving while a commit is in flight share the next one: one
    transaction, one executemany and one job check for all of them instead of one each. A short-lived
    drain task does the commits, so no request queues on a lock behind requests already answered.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self._pending: list[tuple[dict[str, Any], asyncio.Future[int]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.last_arrival = -math.inf  # loop time of the latest delivery handed to commit()
        self.in_flight = 0  # deliveries handed to commit() and not answered yet
        self._turn = asyncio.Lock()
        self._last_turn = -math.inf  # loop time the latest processing chunk ended
        self._job_due: datetime | None = None  # run_after of a process job seen queued (wall clock)
        self._sqlite = services.engine.dialect.name == "sqlite"
        self._last_commit = -math.inf  # loop time the latest group commit ended

    async def commit(self, body: bytes, received_at: datetime) -> int:
        """Store one raw delivery durably; returns its id once committed."""
        loop = asyncio.get_running_loop()
        self.last_arrival = loop.time()
        future: asyncio.Future[int] = loop.create_future()
        row = {"received_at": received_at, "body": body, "body_sha256": hashlib.sha256(body).hexdigest()}
        self._pending.append((row, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain(), name="intake-delivery-writer")
        self.in_flight += 1
        try:
            return await future
        finally:
            self.in_flight -= 1
            self.last_arrival = loop.time()  # its sender's next delivery is on its way

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                ids = await self._commit([row for row, _future in batch])
            except BaseException as exc:
                for _row, future in batch:
                    if not future.done():  # a request cancelled meanwhile has no one to tell
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_row, future), delivery_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(delivery_id)

    async def _commit(self, rows: list[dict[str, Any]]) -> list[int]:
        services = self.services
        # A queued process job whose run_after is still ahead cannot have been claimed by any runner (they
        # claim by run_after <= their clock), so it will see these rows if they commit before then: no
        # need to look for it again. Checked again after the commit, which is what correctness rests on.
        due = self._job_due
        known = due is not None and utcnow() < due - JOB_DUE_MARGIN
        if known and self._sqlite:
            ids = await store.commit_deliveries_sqlite(services.sessions, rows)
        elif known and len(rows) <= store.INSERTMANY_ROWS:
            ids = await store.commit_deliveries_autocommit(services.sessions, rows)
        else:
            async with unit_of_work(services.sessions) as session:
                ids = await store.insert_deliveries(session, rows)
                found = None if known else await self._ensure_job(session)
            if found is not None:
                self._job_due = found  # only once committed: a rolled-back enqueue leaves no job to count on
        if known and due is not None and utcnow() >= due - JOB_DUE_MARGIN:
            # The commit ended too close to the job's start (a slow commit): the job may already be past
            # these rows, so look again now that they are visible.
            async with unit_of_work(services.sessions) as session:
                found = await self._ensure_job(session)
            self._job_due = found
        self._last_commit = asyncio.get_running_loop().time()
        return ids

    async def _ensure_job(self, session: AsyncSession) -> datetime:
        """Make sure a queued process job will see what this transaction commits; remember when it starts."""
        # One waiting job drains every pending delivery, so deliveries arriving together share it.
        # A running job does not count: it may already be past these rows.
        services = self.services
        due = await store.queued_job_due(session, PROCESS)
        if due is None:
            loop = asyncio.get_running_loop()
            delay = BURST_PROCESS_DELAY if loop.time() - self._last_commit < BURST_GAP else PROCESS_DELAY
            due = utcnow() + delay
            await job_queue.enqueue(session, PROCESS, {}, max_attempts=process_max_attempts(services), run_after=due)
            # The runner polls only every few seconds; wake it when the job becomes due.
            loop.call_later(delay.total_seconds(), services.jobs.notify)
        return due

    @contextlib.asynccontextmanager
    async def processing_turn(self) -> AsyncIterator[int]:
        """Hold the processing turn for one chunk, once intake has had its way; yields the chunk scale.

        Splitting and processing run on the same event loop (and core) as the webhook view, and a chunk
        holds the loop (and on SQLite the one writer) for milliseconds. Intake comes first: while a
        delivery waits for its commit, or one arrived or was answered less than QUIET_GAP ago (senders
        post again as soon as they are answered), a processor waits for a gap, so a burst is answered at
        intake speed and worked off after it. The wait never exceeds
        PROCESSING_FLOOR since the previous chunk ended, so a flood without gaps still gets at least one
        chunk per floor and cannot starve processing. One turn at a time per process: chunks of
        concurrent process jobs queue here. A turn taken in a quiet moment may do CHUNK_SCALE times the
        work (fewer transactions per event, a faster drain); one forced by the floor does one unit, so it
        holds the loop and SQLite's writer only briefly.
        """
        async with self._turn:
            loop = asyncio.get_running_loop()
            floor_at = self._last_turn + PROCESSING_FLOOR
            while True:
                now = loop.time()
                quiet_for = now - self.last_arrival
                quiet = quiet_for >= QUIET_GAP and not self.in_flight
                if quiet or now >= floor_at:
                    break
                await asyncio.sleep(min(max(QUIET_GAP - quiet_for, QUIET_GAP / 5), floor_at - now))
            try:
                yield CHUNK_SCALE if quiet else 1
            finally:
                self._last_turn = loop.time()


QUIET_GAP = 0.005  # seconds without a new delivery that count as a gap in intake
PROCESSING_FLOOR = 0.25  # seconds: processing gets a chunk at least this often, however busy intake is
CHUNK_SCALE = 4  # chunk size multiplier for a turn taken while intake is quiet


def process_max_attempts(services: Services) -> int:
    return max(services.settings.job_max_attempts, 5)


# ---- processing the inbox -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """Plain copy of an inbox row, so a rolled-back savepoint cannot expire what we read."""

    id: int
    type: str
    payload: dict[str, Any]
    occurred_at: datetime | None
    contact_id: int | None
    subject: str | None
    raw_size: int
    note: str | None


PROCESS_CHUNK = 50  # rows per transaction: bounds how long SQLite's one writer is held
# Processing starts this long after a commit, so deliveries arriving meanwhile share one job.
PROCESS_DELAY = timedelta(milliseconds=200)
# The same during a burst (a commit ended less than BURST_GAP ago): processing then only gets the floor's
# chunks anyway, and a job due later lets more group commits skip the queued-job check.
BURST_PROCESS_DELAY = timedelta(milliseconds=500)
BURST_GAP = 0.1  # seconds
# A delivery skips the queued-job check only if its commit ends at least this long before that job is due
# (room for clock skew between replicas' runners).
JOB_DUE_MARGIN = timedelta(milliseconds=50)


@dataclass
class _Chunk:
    """What one processing transaction shares: who was erased, consent records still to write."""

    erased: set[str]
    records: list[dict[str, Any]] = field(default_factory=list)

    async def flush(self, session: AsyncSession) -> None:
        await store.insert_consent_records(session, self.records)
        self.records = []


async def process_inbox(services: Services, writer: DeliveryWriter, run: JobRun) -> None:
    """Process the given rows, or (no ids) split every pending delivery and process every pending row,
    oldest first, chunk by chunk, each chunk in its own transaction and processing turn."""
    if "ids" in run.payload:
        ids = sorted(int(i) for i in run.payload["ids"])
        for start in range(0, len(ids), PROCESS_CHUNK):
            async with writer.processing_turn():
                await _process_chunk(services, ids[start:start + PROCESS_CHUNK])
    else:
        while True:
            async with writer.processing_turn() as scale:
                split, wanted = await split_deliveries(services, SPLIT_CHUNK * scale), SPLIT_CHUNK * scale
            while True:
                async with writer.processing_turn() as scale:
                    done, limit = await _process_chunk(services, None, PROCESS_CHUNK * scale), PROCESS_CHUNK * scale
                if done < limit:
                    break
            if split < wanted:
                break  # a delivery committed from here on finds no queued job and enqueues one
    services.jobs.notify()


# ---- splitting deliveries into inbox rows ----------------------------------------------------------------

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
        split.append((delivery_id, intake.inbox_rows(bytes(body), services.hash_key, received_at)))
        await asyncio.sleep(0)
    async with unit_of_work(services.sessions) as session:
        await _store_split(session, split)
    return len(found)


async def split_all_pending(session: AsyncSession, *, hash_key: str) -> int:
    """Split every pending delivery in the caller's transaction (erasure), waiting for a concurrent split
    of the same deliveries to commit; returns how many deliveries this call split."""
    total = 0
    while found := await store.read_deliveries(session, limit=100, lock=True):
        total += await _store_split(session, [
            (delivery_id, intake.inbox_rows(bytes(body), hash_key, received_at))
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


async def _process_chunk(services: Services, ids: list[int] | None, limit: int = PROCESS_CHUNK) -> int:
    """One transaction over up to ``limit`` pending rows; returns how many were claimed."""
    async with unit_of_work(services.sessions) as session:
        claimed = await store.claim_pending(session, ids, limit=limit)
        rows = [
            _Row(row_id, event_type, dict(payload or {}), occurred_at, contact_id, subject, int(raw_size), note)
            for row_id, event_type, payload, occurred_at, contact_id, subject, note, raw_size in claimed
        ]
        if not rows:
            return 0
        # Mautic groups a delivery by type, losing the order between types; time order restores it.
        rows.sort(key=lambda r: (r.occurred_at is None, r.occurred_at or datetime.min.replace(tzinfo=UTC), r.id))
        erased = await store.erased_among(session, {r.subject for r in rows if r.subject})
        now = services.clock()
        outcomes: list[dict[str, Any]] = []
        try:
            # Fast path: the whole chunk in one savepoint, effects flushed together.
            async with session.begin_nested():
                chunk = _Chunk(erased)
                for row in rows:
                    state, kept = await _apply(session, services, row, chunk)
                    outcomes.append({"id": row.id, "state": state, "payload": kept, "processed_at": now})
                await chunk.flush(session)
                await session.flush()
        except Exception:
            log.warning("intake: a chunk of %d events failed together; processing them one by one", len(rows))
            outcomes = [await _apply_alone(session, services, row, erased, now) for row in rows]
        await session.exec(update(InboxEvent), params=outcomes)  # type: ignore[call-overload]
    return len(rows)


async def _apply_alone(session: AsyncSession, services: Services, row: _Row, erased: set[str],
                       now: datetime) -> dict[str, Any]:
    try:
        async with session.begin_nested():
            chunk = _Chunk(erased)
            state, kept = await _apply(session, services, row, chunk)
            await chunk.flush(session)
            await session.flush()
        return {"id": row.id, "state": state, "payload": kept, "processed_at": now}
    except Exception as exc:
        # One poisonous event must not hold back the rest of the delivery.
        log.exception("intake: processing inbox row %s (%s) failed", row.id, row.type)
        return {"id": row.id, "state": InboxState.FAILED, "payload": row.payload, "processed_at": now,
                "note": type(exc).__name__}


async def _apply(session: AsyncSession, services: Services, row: _Row,
                 chunk: _Chunk) -> tuple[InboxState, dict[str, Any] | None]:
    """Effects of one event; returns the row's final state and what to keep of its payload."""
    if row.type == intake.DEAD_LETTER:
        await _dead_letter(session, services, row)
        return InboxState.DEAD, None
    event = intake.InboundEvent(row.type, row.payload, row.occurred_at, row.contact_id,
                                _email_of(row), "", intake.Disposition.ACT)
    if row.type == intake.FORM_SUBMIT:
        await _form_submitted(session, services, row, event, chunk)
    elif row.type == intake.SUBSCRIPTION_CHANGED:
        await chunk.flush(session)  # a consent given earlier in this chunk must count for a re-subscription
        await _subscription_changed(session, services, row, event)
    elif row.type == intake.EMAIL_SEND:
        await _email_sent(session, services, row, event)
    elif row.type == intake.CONTACT_DELETED:
        # Also fires for the losing side of a merge: recorded, never treated as an erasure.
        await ledger.record(session, actor=ACTOR, action="mautic.contact_deleted", subject=_contact_ref(row),
                            details={"inbox": row.id, "note": "deleted or merged in Mautic; not an erasure"})
    elif row.type == intake.CONTACT_IDENTIFIED:
        await _check_erased(session, services, row, event, chunk.erased, via="contact identified in Mautic")
    elif row.type not in intake.KNOWN_TYPES:
        return InboxState.DONE, row.payload  # stored as received, for whoever adds support for it
    # Once processed, keep ids and types only: the payload's personal data is not needed any more.
    return InboxState.DONE, intake.summary(event)


def _email_of(row: _Row) -> str | None:
    return intake.contact_of(row.type, row.payload)[1]


def _subject_ref(row: _Row) -> str | None:
    if row.subject:
        return f"subject:{row.subject[:16]}"
    return _contact_ref(row)


def _contact_ref(row: _Row) -> str | None:
    return f"contact:{row.contact_id}" if row.contact_id is not None else None


def _display(services: Services, email: str | None) -> str | None:
    if not email:
        return None
    return mask_email(email) if services.settings.mask_emails else email


async def _form_submitted(session: AsyncSession, services: Services, row: _Row, event: intake.InboundEvent,
                          chunk: _Chunk) -> None:
    policy = services.policy.consent
    sub = intake.form_submission(row.payload, fallback_at=row.occurred_at)
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
    }
    record_id: int | None = None
    if verdict.gap:
        record_id = await store.insert_consent_record(session, record)  # the alert refers to it
    else:
        chunk.records.append(record)  # written with the rest of the chunk
    await _check_erased(session, services, row, event, chunk.erased, via=f"form {sub.form_name}")
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


async def _check_erased(session: AsyncSession, services: Services, row: _Row, event: intake.InboundEvent,
                        erased: set[str], *, via: str) -> None:
    if not row.subject or row.subject not in erased:
        return
    await raise_alert(
        session, services, row, kind=AlertKind.ERASED_REENTERED, burst_key=f"erased:{row.subject[:16]}",
        dedupe_key=f"erased:{row.id}", contact_id=row.contact_id, email=event.email, title=via,
        details={"via": via}, ledger_action="consent.erased_subject_reentered", ledger_details={"via_type": row.type},
    )


async def _subscription_changed(session: AsyncSession, services: Services, row: _Row,
                                event: intake.InboundEvent) -> None:
    change = intake.subscription_change(row.payload)
    now = services.clock()
    at = row.occurred_at or now
    if change.withdrawn:
        withdrawal = Withdrawal(
            inbox_id=row.id, contact_id=change.contact_id, subject_hash=row.subject, channel=change.channel[:32],
            old_status=change.old_status[:32], new_status=change.new_status[:32], withdrawn_at=at, recorded_at=now,
        )
        session.add(withdrawal)
        await session.flush()
        await ledger.record(session, actor=ACTOR, action="consent.withdrawn", subject=_subject_ref(row),
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
    await ledger.record(session, actor=ACTOR, action="consent.resubscribed", subject=_subject_ref(row),
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


async def _email_sent(session: AsyncSession, services: Services, row: _Row, event: intake.InboundEvent) -> None:
    at = row.occurred_at or services.clock()
    withdrawal = await store.open_withdrawal(session, subject=row.subject, contact_id=row.contact_id,
                                             channel="email", before=at)
    if withdrawal is not None:
        await _flag_send(session, services, row, event, withdrawal, at, row.payload, dedupe=f"sent:{row.id}")


async def _flag_send(session: AsyncSession, services: Services, row: _Row, event: intake.InboundEvent,
                     withdrawal: Withdrawal, sent_at: datetime, send_payload: dict[str, Any], *, dedupe: str) -> None:
    email = intake.email_send(send_payload) if "email" in send_payload else None
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


async def _dead_letter(session: AsyncSession, services: Services, row: _Row) -> None:
    await ledger.record(session, actor=ACTOR, action="intake.dead_letter", subject=f"inbox:{row.id}",
                        details={"bytes": row.raw_size, "problem": row.note})
    await raise_alert(
        session, services, row, kind=AlertKind.DEAD_LETTER, burst_key="dead_letter", dedupe_key=f"dead:{row.id}",
        contact_id=None, email=None, title="dead letter", state=AlertState.INFO,
        details={"problem": row.note, "bytes": row.raw_size, "inbox_id": row.id},
    )


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


async def raise_alert(
    session: AsyncSession, services: Services, row: _Row, *, kind: AlertKind, burst_key: str, dedupe_key: str,
    contact_id: int | None, email: str | None, title: str, details: dict[str, Any],
    missing: list[str] | None = None, consent_record_id: int | None = None, state: AlertState = AlertState.OPEN,
    ledger_action: str | None = None, ledger_details: dict[str, Any] | None = None,
) -> ConsentAlert:
    """Store a finding; the first of a burst is posted, the rest fold into it (count on its message)."""
    now = services.clock()
    await _lock_burst(session, burst_key)
    lead = await store.find_burst_lead(session, burst_key, now - services.settings.consent_burst_window)
    alert = ConsentAlert(
        kind=kind, state=state, dedupe_key=dedupe_key[:120], burst_key=burst_key[:120],
        burst_of=lead.id if lead else None, contact_id=contact_id, subject_hash=row.subject,
        email_display=_display(services, email), form_id=details.get("form_id"), title=title[:255],
        missing=missing or [], details=details, inbox_id=row.id, consent_record_id=consent_record_id,
        created_at=now,
    )
    session.add(alert)
    await session.flush()
    if ledger_action:
        await ledger.record(session, actor=ACTOR, action=ledger_action, subject=_subject_ref(row),
                            details={"alert": alert.id, "folded_into": lead.id if lead else None,
                                     **(ledger_details or {})})
    if lead is None:
        await job_queue.enqueue(session, POST_ALERT, {"alert_id": alert.id}, dedupe_key=f"{POST_ALERT}:{alert.id}",
                                max_attempts=8)
    else:
        assert lead.id is not None
        await store.bump_folded(session, lead.id)
        # Debounce: every fold within one bucket shares one chat.update that runs after the bucket ends.
        due = math.ceil(now.timestamp() / REFRESH_BUCKET_SECONDS) * REFRESH_BUCKET_SECONDS + 1
        await job_queue.enqueue(
            session, REFRESH_ALERT, {"alert_id": lead.id}, dedupe_key=f"{REFRESH_ALERT}:{lead.id}:{due}",
            run_after=datetime.fromtimestamp(due, tz=now.tzinfo), max_attempts=8,
        )
    return alert


async def _lock_burst(session: AsyncSession, burst_key: str) -> None:
    # Two replicas processing the same burst must agree on one lead (SQLite has one writer anyway).
    if session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        await connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": "burst:" + burst_key})


async def sweep_inbox(services: Services, run: JobRun) -> None:
    """Rows or deliveries left pending with no live job (their job failed for good) get a fresh process job."""
    stale = services.clock() - timedelta(minutes=10)
    async with unit_of_work(services.sessions) as session:
        ids = await store.pending_ids(session, older_than=stale)
        if ids:
            await job_queue.enqueue(session, PROCESS, {"ids": ids}, max_attempts=process_max_attempts(services))
        oldest = await store.oldest_delivery(session)
        unsplit = oldest is not None and oldest < stale and await store.queued_job(session, PROCESS) is None
        if unsplit:
            await job_queue.enqueue(session, PROCESS, {}, max_attempts=process_max_attempts(services))
    if ids or unsplit:
        services.jobs.notify()


# ---- Slack side: posting and refreshing alerts ---------------------------------------------------------


def alert_view(alert: ConsentAlert, services: Services) -> AlertView:
    settings = services.settings
    url = (f"{settings.mautic_base_url}/s/contacts/view/{alert.contact_id}"
           if settings.mautic_base_url and alert.contact_id is not None else None)
    assert alert.id is not None
    return AlertView(
        id=alert.id, kind=alert.kind, state=alert.state, title=alert.title, email_display=alert.email_display,
        contact_url=url, contact_id=alert.contact_id, created_at=alert.created_at,
        missing_text=str(alert.details.get("missing_text", "")), details=dict(alert.details),
        folded_count=alert.folded_count,
        reconsent_available=settings.reconsent_segment_id is not None and alert.contact_id is not None,
        decision=alert.decision, decided_by=alert.decided_by, decided_at=alert.decided_at, reason=alert.reason,
        outcome=alert.outcome,
    )


async def slack_call(method: Any, **kwargs: Any) -> Any:
    """One Web API call; a 429 that outlasted the client's own retries waits Retry-After once more,
    then hands the job back to the runner's backoff."""
    for attempt in range(2):
        try:
            return await method(**kwargs)
        except SlackApiError as exc:
            status = getattr(exc.response, "status_code", None)
            if status == 429 and attempt == 0:
                retry_after = float((exc.response.headers or {}).get("Retry-After", 1) or 1)
                await asyncio.sleep(min(retry_after, RETRY_AFTER_CAP_SECONDS))
                continue
            if status == 429 or (status or 0) >= 500:
                raise RetryableJobError(f"Slack {status}") from exc
            raise
    raise RetryableJobError("Slack rate limit")


async def post_alert(services: Services, run: JobRun) -> None:
    alert_id = int(run.payload["alert_id"])
    async with unit_of_work(services.sessions) as session:
        alert = await store.get_alert(session, alert_id)
    if alert is None or alert.message_ts is not None:
        return
    channel = services.settings.privacy_channel
    message = alert_message(alert_view(alert, services))
    response = await slack_call(services.slack.chat_postMessage, channel=channel, text=message["text"],
                                blocks=message["blocks"], unfurl_links=False, unfurl_media=False)
    async with unit_of_work(services.sessions) as session:
        await store.set_message(session, alert_id, str(response["channel"]), str(response["ts"]))
        fresh = await store.get_alert(session, alert_id)
    if fresh is not None and fresh.folded_count != alert.folded_count:
        # Folds that landed while we posted: show the count now rather than wait for their refresh.
        await _update_message(services, fresh)


async def refresh_alert(services: Services, run: JobRun) -> None:
    async with unit_of_work(services.sessions) as session:
        alert = await store.get_alert(session, int(run.payload["alert_id"]))
    if alert is not None and alert.message_ts is not None:
        await _update_message(services, alert)


async def _update_message(services: Services, alert: ConsentAlert) -> None:
    message = alert_message(alert_view(alert, services))
    await slack_call(services.slack.chat_update, channel=alert.channel_id, ts=alert.message_ts,
                     text=message["text"], blocks=message["blocks"])


# ---- applying a decision ------------------------------------------------------------------------------


async def apply_decision(services: Services, run: JobRun) -> None:
    alert_id = int(run.payload["alert_id"])
    async with unit_of_work(services.sessions) as session:
        lead = await store.get_alert(session, alert_id)
        members = [m for m in await store.burst_members(session, alert_id)
                   if lead is not None and m.decision == lead.decision and m.decided_at == lead.decided_at]
    if lead is None or lead.state != AlertState.DECIDED:
        raise PermanentJobError(f"alert {alert_id} is not decided")
    progress = dict(run.progress)
    if lead.outcome is None:
        outcome, counts = await _run_in_mautic(services, run, lead, members, progress)
        async with unit_of_work(services.sessions) as session:
            if await store.set_outcome(session, alert_id, outcome, services.clock()):
                await ledger.record(session, actor="privacy-bot", action="consent.decision_applied",
                                    subject=f"alert:{alert_id}", details={"decision": lead.decision, **counts})
            lead = await store.get_alert(session, alert_id) or lead
    await _tell_thread_and_update(services, run, lead, len(members), progress)


async def _run_in_mautic(services: Services, run: JobRun, lead: ConsentAlert, members: list[ConsentAlert],
                         progress: dict[str, Any]) -> tuple[str, dict[str, int]]:
    contacts = sorted({m.contact_id for m in members if m.contact_id is not None})
    done: list[int] = list(progress.get("done", []))
    missing: list[int] = list(progress.get("missing", []))
    failed: list[int] = list(progress.get("failed", []))
    if lead.decision == "dismiss":
        return "No change in Mautic (dismissed).", {"contacts": len(contacts)}
    segment = services.settings.reconsent_segment_id
    if lead.decision == "reconsent" and segment is None:
        raise PermanentJobError("RECONSENT_SEGMENT_ID is not set")
    for contact_id in contacts:
        if contact_id in done or contact_id in missing or contact_id in failed:
            continue
        try:
            if lead.decision == "dnc":
                await services.mautic.add_dnc(
                    contact_id, "email", reason=3,
                    comments=f"privacy-bot: consent alert #{lead.id} ({lead.kind}) decided by Slack user "
                             f"{lead.decided_by}",
                )
            else:
                assert segment is not None
                await services.mautic.add_to_segment(segment, contact_id)
            done.append(contact_id)
        except MauticNotFound:
            missing.append(contact_id)  # deleted or merged away since the alert
        except MauticAuthError:
            raise
        except MauticError as exc:
            log.warning("intake: Mautic refused %s for a contact of alert %s: %s", lead.decision, lead.id,
                        type(exc).__name__)
            failed.append(contact_id)
        progress.update(done=done, missing=missing, failed=failed)
        await run.checkpoint(progress)
    what = "Do-Not-Contact (email, reason manual) added" if lead.decision == "dnc" else \
        f"added to re-consent segment #{segment}"
    outcome = f"Mautic: {what} for {len(done)} contact{'s' if len(done) != 1 else ''}"
    if missing:
        outcome += f"; {len(missing)} no longer in Mautic (deleted or merged)"
    if failed:
        outcome += f"; {len(failed)} refused by Mautic"
    return outcome + ".", {"contacts": len(contacts), "done": len(done), "not_found": len(missing),
                           "refused": len(failed)}


async def _tell_thread_and_update(services: Services, run: JobRun, lead: ConsentAlert, members: int,
                                  progress: dict[str, Any]) -> None:
    view = alert_view(lead, services)
    if not progress.get("thread") and lead.message_ts:
        await slack_call(services.slack.chat_postMessage, channel=lead.channel_id, thread_ts=lead.message_ts,
                         text=decision_thread_text(view, members))
        progress["thread"] = True
        await run.checkpoint(progress)
    if lead.message_ts:
        await _update_message(services, lead)


async def decision_failed(services: Services, run: JobRun, error: str) -> None:
    alert_id = int(run.payload["alert_id"])
    outcome = f"Failed in Mautic after {run.attempt} attempts ({error.split(':', 1)[0]}); retry from Mautic."
    async with unit_of_work(services.sessions) as session:
        if await store.set_outcome(session, alert_id, outcome, services.clock()):
            await ledger.record(session, actor="privacy-bot", action="consent.decision_failed",
                                subject=f"alert:{alert_id}", details={"error": error.split(":", 1)[0]})
        lead = await store.get_alert(session, alert_id)
        members = len(await store.burst_members(session, alert_id))
    if lead is not None:
        await _tell_thread_and_update(services, run, lead, members, dict(run.progress))
