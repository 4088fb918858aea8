"""Alerts: raising a finding (the first of a burst is posted, the rest fold into it), and posting and
refreshing its message in the privacy channel.

A finding is stored with its ledger entry and the Slack job that shows it, in the transaction that
processed its event; the Slack calls run later as jobs, through the messenger, so Slack being slow or
down delays an alert and never loses it.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from bot.intake.blocks import AlertView, alert_message
from bot.intake.ids import IntakeJob
from bot.privacy import mask_email
from storage import intake as store
from storage import jobs as job_queue
from storage import ledger
from storage.db import unit_of_work
from storage.intake import AlertKind, AlertState, ConsentAlert

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.intake.inbox import InboxRow
    from bot.jobs import JobRun
    from bot.services import Services

WEBHOOK_ACTOR = "mautic-webhook"  # the ledger actor for what Mautic's events caused
# Folded findings refresh the lead message at most once per this many seconds (chat.update budget).
REFRESH_BUCKET_SECONDS = 3
ALERT_JOB_ATTEMPTS = 8  # posting is retried through longer Slack outages than most jobs


async def raise_alert(
    session: AsyncSession, services: Services, row: InboxRow, *, kind: AlertKind, burst_key: str, dedupe_key: str,
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
        email_display=display_email(services, email), form_id=details.get("form_id"), title=title[:255],
        missing=missing or [], details=details, inbox_id=row.id, consent_record_id=consent_record_id,
        created_at=now,
    )
    session.add(alert)
    await session.flush()
    if ledger_action:
        await ledger.record(session, actor=WEBHOOK_ACTOR, action=ledger_action, subject=row.subject_ref(),
                            details={"alert": alert.id, "folded_into": lead.id if lead else None,
                                     **(ledger_details or {})})
    if lead is None:
        await job_queue.enqueue(session, IntakeJob.POST_ALERT, {"alert_id": alert.id},
                                dedupe_key=f"{IntakeJob.POST_ALERT}:{alert.id}", max_attempts=ALERT_JOB_ATTEMPTS)
    else:
        assert lead.id is not None
        await store.bump_folded(session, lead.id)
        # Debounce: every fold within one bucket shares one chat.update that runs after the bucket ends.
        due = math.ceil(now.timestamp() / REFRESH_BUCKET_SECONDS) * REFRESH_BUCKET_SECONDS + 1
        await job_queue.enqueue(
            session, IntakeJob.REFRESH_ALERT, {"alert_id": lead.id},
            dedupe_key=f"{IntakeJob.REFRESH_ALERT}:{lead.id}:{due}",
            run_after=datetime.fromtimestamp(due, tz=now.tzinfo), max_attempts=ALERT_JOB_ATTEMPTS,
        )
    return alert


async def _lock_burst(session: AsyncSession, burst_key: str) -> None:
    # Two replicas processing the same burst must agree on one lead (SQLite has one writer anyway).
    if session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        await connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": "burst:" + burst_key})


def display_email(services: Services, email: str | None) -> str | None:
    """The address as alerts show it: masked unless MASK_EMAILS is off."""
    if not email:
        return None
    return mask_email(email) if services.settings.mask_emails else email


def alert_view(alert: ConsentAlert, services: Services) -> AlertView:
    """What the alert's message shows, from the stored alert and the settings."""
    settings = services.settings
    url = (f"{settings.mautic_base_url}/s/contacts/view/{alert.contact_id}"
           if settings.mautic_base_url and alert.contact_id is not None else None)
    assert alert.id is not None
    return AlertView(
        id=alert.id, kind=alert.kind, state=alert.state, title=alert.title, email_display=alert.email_display,
        contact_url=url, contact_id=alert.contact_id, created_at=alert.created_at,
        missing_text=str(alert.details.get("missing_text", "")), details=dict(alert.details),
        folded_count=alert.folded_count,
        # A re-consent campaign is itself direct marketing: never offered for someone who objected to it.
        reconsent_available=(settings.reconsent_segment_id is not None and alert.contact_id is not None
                             and alert.kind != AlertKind.SUBMITTED_AFTER_OBJECTION),
        decision=alert.decision, decided_by=alert.decided_by, decided_at=alert.decided_at, reason=alert.reason,
        outcome=alert.outcome,
    )


async def load_alert(services: Services, alert_id: int) -> ConsentAlert | None:
    async with unit_of_work(services.sessions) as session:
        return await store.get_alert(session, alert_id)


async def post_alert(services: Services, run: JobRun) -> None:
    """Job: post a lead alert to the privacy channel, once."""
    alert_id = int(run.payload["alert_id"])
    alert = await load_alert(services, alert_id)
    if alert is None or alert.message_ts is not None:
        return
    message = alert_message(alert_view(alert, services))
    posted = await services.messenger.post(services.settings.privacy_channel or "", text=message["text"],
                                           blocks=message["blocks"], once=f"alert:{alert_id}")
    assert posted is not None  # not best effort: a failure raises and the runner retries the job
    async with unit_of_work(services.sessions) as session:
        await store.set_message(session, alert_id, posted.channel, posted.ts)
        fresh = await store.get_alert(session, alert_id)
    if fresh is not None and fresh.folded_count != alert.folded_count:
        # Folds that landed while we posted: show the count now rather than wait for their refresh.
        await update_message(services, fresh)


async def refresh_alert(services: Services, run: JobRun) -> None:
    """Job: redraw a lead alert's message (its folded count grew)."""
    alert = await load_alert(services, int(run.payload["alert_id"]))
    if alert is not None and alert.message_ts is not None:
        await update_message(services, alert)


async def update_message(services: Services, alert: ConsentAlert) -> None:
    """Redraw the alert's posted message from its stored state."""
    assert alert.channel_id is not None and alert.message_ts is not None
    message = alert_message(alert_view(alert, services))
    await services.messenger.update(alert.channel_id, alert.message_ts, text=message["text"],
                                    blocks=message["blocks"])
