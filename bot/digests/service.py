"""Gathering and posting digests: Mautic counts, the bot's own tables, then one Slack message.

Called by the durable ``digest.post`` job (scheduled or on demand) and by the ``digest.forms`` job.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.clock import local_day
from bot.digests import blocks, evidence, ropa
from bot.digests.compliance import (
    ComplianceDigest,
    PurgeFigures,
    RequestFigures,
    WeekShare,
    forms_from_counts,
    median,
    period_since,
    week_starts,
)
from bot.digests.forms import FormAudit, FormPolicy, FormRule, audit_forms, consent_aliases
from bot.digests.retention import (
    SAMPLE_SIZE,
    SEGMENT_LOOKUP_CAP,
    RetentionSnapshot,
    never_active_filter,
    retention_cutoff,
    stale_filter,
    tally_segments,
)
from bot.mautic import MauticClient, MauticError, MauticUnavailable
from bot.policy import ConsentPolicy
from bot.privacy import mask_email
from bot.requests.deadlines import DUE_SOON_DAYS
from bot.values import as_int
from storage import digests as store
from storage import forms as form_store
from storage import ledger
from storage import retention as retention_store
from storage.db import SessionFactory, unit_of_work

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

KINDS = ("retention", "compliance")


@dataclass
class CallCounter:
    calls: int = 0


async def retention_snapshot(
    mautic: MauticClient, *, now: datetime, retention_days: int,
    sample_size: int = SAMPLE_SIZE, segment_cap: int = SEGMENT_LOOKUP_CAP,
) -> RetentionSnapshot:
    """Count stale contacts with server-side filters; fetch only a bounded sample, never the whole table."""
    cutoff = retention_cutoff(now, retention_days)
    where = stale_filter(cutoff)
    calls = 1
    total = await mautic.count_contacts(where)
    if total == 0:
        return RetentionSnapshot(cutoff, retention_days, 0, 0, api_calls=calls)
    never_active = await mautic.count_contacts(never_active_filter(cutoff))
    calls += 1
    look = min(total, max(sample_size, segment_cap))
    sample: list[str] = []
    ids: list[int] = []
    calls += 1
    async for contact in mautic.iter_contacts(where, page_size=look, minimal=True):
        if len(sample) < sample_size:
            sample.append(mask_email(contact.email))
        ids.append(contact.id)
        if len(ids) >= look:
            break
    ids = ids[:segment_cap]
    gate = asyncio.Semaphore(8)

    async def names(contact_id: int) -> list[str]:
        async with gate:
            return [str(s.get("name") or s.get("alias") or s.get("id")) for s in await mautic.get_segments(contact_id)]

    memberships = await asyncio.gather(*(names(i) for i in ids))
    calls += len(ids)
    return RetentionSnapshot(
        cutoff=cutoff, retention_days=retention_days, total=total, never_active=never_active, sample=sample,
        segments=tally_segments(memberships), segments_from=len(ids), api_calls=calls,
    )


async def form_audit(services: Services) -> FormAudit:
    forms = await services.mautic.list_forms()
    # Mautic's form list may abbreviate fields; the audit needs them, so fetch any form that lacks them.
    full = []
    for form in forms:
        if "fields" not in form and form.get("id") is not None:
            form = await services.mautic.get_form(int(form["id"])) or form
        full.append(form)
    settings = services.settings
    audit = audit_forms(full, consent_aliases(settings.consent_fields), rule_for=_policy_rules(services.policy.consent))
    # Every revision read is stored; consent given under one with a pre-ticked box is marked invalid.
    return replace(audit, invalidated=await evidence.judge_revisions(services, full))


def _policy_rules(policy: ConsentPolicy) -> FormRule:
    """The per-form consent rules of the policy file, as the form audit asks for them."""

    def rule_for(form_id: int | None, alias: str | None) -> FormPolicy:
        rule = policy.rule_for(form_id, alias)
        return FormPolicy(rule.fields, rule.exempt, rule.purpose)

    return rule_for


async def compliance_digest(services: Services, *, since: datetime, until: datetime) -> ComplianceDigest:
    """Everything since the last digest; parts another feature has not built yet show as zeros."""
    missing: list[str] = []
    async with unit_of_work(services.sessions) as session:
        counts, weeks = await _intake_counts(session, since, until, missing)
        # Overdue on the controller's calendar (DEADLINE_TIMEZONE), as the due dates themselves are counted.
        requests = await store.request_figures(session, since, until,
                                               today=local_day(until, services.settings.deadline_timezone),
                                               due_soon_days=DUE_SOON_DAYS)
        purges = await store.purge_figures(session, since, until)
        own_retention = await retention_store.figures(session, since, until)
        verdict = await ledger.verify(session)
    if requests is None:
        missing.append("data-subject requests")
    audit: FormAudit | None = None
    audit_error: str | None = None
    try:
        audit = await form_audit(services)
    except MauticError as exc:
        audit_error = "Mautic unavailable" if isinstance(exc, MauticUnavailable) else f"Mautic said {exc}"
    async with unit_of_work(services.sessions) as session:  # after the audit: it may have just invalidated some
        invalidated, invalid_total = await form_store.invalidated_counts(session, since)
    r = requests or {}
    return ComplianceDigest(
        since=since, until=until, forms=forms_from_counts(counts),
        gaps_open=as_int(counts.get("gaps_open"), 0), gaps_resolved=as_int(counts.get("gaps_resolved"), 0),
        unsubscribes=as_int(counts.get("unsubscribes"), 0), withdrawals=as_int(counts.get("withdrawals"), 0),
        sends_after_withdrawal=as_int(counts.get("sends_after_withdrawal"), 0),
        erased_reentries=as_int(counts.get("erased_subjects_reentered", counts.get("erased_reentries")), 0),
        consent_invalidated=invalidated, consent_invalid_total=invalid_total,
        requests=RequestFigures(
            opened=as_int(r.get("opened"), 0), closed=as_int(r.get("closed"), 0),
            due_soon=as_int(r.get("due_soon"), 0),
            overdue=as_int(r.get("overdue"), 0), awaiting_cleanup=as_int(r.get("awaiting_cleanup"), 0),
            median_days_to_close=median(r.get("days_to_close") or []),
        ),
        purges=PurgeFigures(**purges),
        ledger_ok=verdict.ok, ledger_text=verdict.describe(), weeks=weeks,
        form_audit=audit, form_audit_error=audit_error, own_retention=own_retention, missing=missing,
    )


async def _intake_counts(
    session: Any, since: datetime, until: datetime, missing: list[str]
) -> tuple[dict[str, Any], list[WeekShare]]:
    try:
        from storage.intake import compliance_counts
    except ImportError:  # the webhook intake feature is not in this build yet
        missing.append("consent intake (forms, gaps, withdrawals)")
        return {}, []
    counts = await compliance_counts(session, since, until)
    weeks = []
    for start in week_starts(until):
        week = forms_from_counts(await compliance_counts(session, start, start + timedelta(days=7)))
        weeks.append(WeekShare(start, sum(f.submissions for f in week), sum(f.with_consent for f in week),
                               sum(f.exempt for f in week)))
    return counts, weeks


# ---- posting ----------------------------------------------------------------------------------------


async def post_digest(
    services: Services, kind: str, *, job_id: int, slot_at: datetime | None = None, generation: int | None = None,
    requested_by: str | None = None,
) -> int | None:
    """Build and post one digest; returns the digest run id (None if its slot was already posted).

    Retries of the same job reuse its run row, so a retry after a successful post does not post again.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown digest kind {kind!r}")
    settings = services.settings
    channel = settings.privacy_channel
    assert channel is not None
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        if slot_at is not None:
            slot = await store.get_slot(session, kind, slot_at)
            if slot is None or slot.state != store.SlotState.CLAIMED or slot.generation != generation:
                return None  # posted by another generation, or taken over: nothing left to do here
        run = await store.run_for_job(session, job_id)
        if run is not None and run.message_ts is not None:
            if slot_at is not None and generation is not None:
                await store.finish_slot(session, kind, slot_at, generation, now=now)
            return run.id
        previous = await store.last_posted_run(session, kind)
        since = period_since(previous.period_end if previous else None, now)
        if run is None:
            run = store.DigestRun(kind=kind, slot_at=slot_at, period_start=since, period_end=now,
                                  requested_by=requested_by, job_id=job_id, channel=channel, created_at=now)
            session.add(run)
            await session.flush()
        run_id = run.id
        since = run.period_start
    assert run_id is not None
    summary: dict[str, Any]
    if kind == "retention":
        snapshot = await retention_snapshot(services.mautic, now=now, retention_days=settings.retention_days)
        message = blocks.retention_digest(snapshot, run_id=run_id)
        summary = snapshot.summary()
    else:
        digest = await compliance_digest(services, since=since, until=now)
        message = blocks.compliance_digest(digest, run_id=run_id)
        summary = digest.summary()
    async with unit_of_work(services.sessions) as session:
        # Saved before posting: a click on the message's button may arrive before the post returns.
        await store.update_run(session, run_id, summary=summary)
    # Not best effort: if Slack stays unavailable the job is retried, and the retry reuses this run.
    posted = await services.messenger.post(channel, text=message["text"], blocks=message["blocks"],
                                           once=f"digest:{run_id}")
    assert posted is not None
    ts = posted.ts
    async with unit_of_work(services.sessions) as session:
        await store.update_run(session, run_id, message_ts=ts, posted_at=services.clock())
        if slot_at is not None and generation is not None:
            await store.finish_slot(session, kind, slot_at, generation, now=services.clock())
        await ledger.record(session, actor=requested_by or "scheduler", action=f"digest.{kind}",
                            subject=f"digest:{run_id}", details=_ledger_details(kind, summary, slot_at))
    log.info("posted %s digest #%s", kind, run_id)
    return run_id


def _ledger_details(kind: str, summary: dict[str, Any], slot_at: datetime | None) -> dict[str, Any]:
    keep = ("total", "never_active", "cutoff") if kind == "retention" else (
        "submissions", "with_consent", "ledger_ok", "form_findings")
    details = {k: summary.get(k) for k in keep}
    details["slot"] = slot_at.isoformat() if slot_at else None
    return details


async def post_form_audit(services: Services) -> None:
    channel = services.settings.privacy_channel
    assert channel is not None
    message = blocks.form_audit(await form_audit(services))
    await services.messenger.post(channel, text=message["text"], blocks=message["blocks"])


ROPA_FILES = (("record-of-processing.md", "Record of processing (Markdown)", ropa.to_markdown),
              ("record-of-processing.csv", "Record of processing (CSV)", ropa.to_csv))


async def post_ropa(services: Services, *, job_id: int, requested_by: str | None) -> int:
    """`/privacy ropa`: the summary message, then the register as Markdown and CSV files in its thread.

    A digest run row (kind ``ropa``) remembers what went out, so a retried job neither posts the message nor
    uploads a file twice."""
    channel = services.settings.privacy_channel
    assert channel is not None
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        run = await store.run_for_job(session, job_id)
        if run is None:
            run = store.DigestRun(kind="ropa", period_start=now, period_end=now, requested_by=requested_by,
                                  job_id=job_id, channel=channel, created_at=now)
            session.add(run)
            await session.flush()
        run_id, ts, done = run.id, run.message_ts, list(run.summary.get("uploaded") or [])
    assert run_id is not None
    record = ropa.build(await ropa.gather(services.mautic, services.sessions, services.settings, services.policy, now))
    if ts is None:
        message = blocks.ropa_summary(record)
        posted = await services.messenger.post(channel, text=message["text"], blocks=message["blocks"])
        assert posted is not None
        ts = posted.ts
        async with unit_of_work(services.sessions) as session:
            await store.update_run(session, run_id, message_ts=ts, posted_at=services.clock(),
                                   summary={"forms": len(record.forms), "gaps": len(record.gaps), "uploaded": done})
    for filename, title, write in ROPA_FILES:
        if filename in done:
            continue
        await services.messenger.upload(channel, filename=filename, title=title, content=write(record).encode(),
                                        thread_ts=ts)
        done.append(filename)
        async with unit_of_work(services.sessions) as session:
            await store.update_run(session, run_id, summary={"forms": len(record.forms), "gaps": len(record.gaps),
                                                             "uploaded": done})
    async with unit_of_work(services.sessions) as session:
        await ledger.record(session, actor=requested_by or "scheduler", action="ropa.posted",
                            subject=f"digest:{run_id}",
                            details={"forms": len(record.forms), "purposes": len(record.purposes),
                                     "gaps": len(record.gaps), "dpia_criteria_met": record.criteria_met})
    return run_id


async def runs_posted(sessions: SessionFactory, kind: str | None = None) -> list[store.DigestRun]:
    async with unit_of_work(sessions) as session:
        return await store.posted_runs(session, kind)
