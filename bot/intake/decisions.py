"""Deciding a consent alert, and carrying the decision out in Mautic.

A decision is the guarded transition open → decided of the alert and of the findings folded into it,
its ledger entry and the job that applies it: one transaction, committed before the listener acks.
Whoever decides second (or clicks a stale button) changes nothing and is told who decided. The Mautic
calls, the thread note and the message update run in the ``intake.apply_decision`` job, which
checkpoints each contact so a retried attempt does not apply anything twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot import approvals
from bot.errors import Conflict, UserFacingError
from bot.intake.alerts import alert_view, load_alert, update_message
from bot.intake.blocks import already_decided_text, decision_thread_text, dismiss_modal, summary_text
from bot.intake.ids import Decision, IntakeJob
from bot.jobs import PermanentJobError
from bot.mautic import ContactMerged, MauticAuthError, MauticNotFound, MauticRefused
from storage import intake as store
from storage import jobs as job_queue
from storage import ledger
from storage.db import unit_of_work
from storage.intake import AlertState, ConsentAlert

if TYPE_CHECKING:
    from bot.jobs import JobRun
    from bot.services import Services

log = logging.getLogger(__name__)

BOT_ACTOR = "privacy-bot"  # the ledger actor for what the bot did on its own after a decision
UNKNOWN_ALERT = "Unknown alert."
NO_SEGMENT = "No re-consent segment is configured (RECONSENT_SEGMENT_ID)."


async def require_decider(services: Services, user_id: str) -> None:
    """Raise :class:`~bot.errors.NotPermitted` unless the user may decide consent alerts."""
    # Alerts have no filer, so the four-eyes half of the rule never applies here.
    await services.approvals.require_decider(user_id, filed_by=None, doing="decide", what="consent alerts")


async def decide(services: Services, alert_id: int | None, decision: Decision, user_id: str, *,
                 reason: str | None = None) -> str | None:
    """Decide the alert (and everything folded into it) for ``user_id``.

    Returns None when this call decided it (the job applying it is queued and committed), otherwise
    what to tell the user about why nothing changed. Raises :class:`~bot.errors.UserFacingError` when
    the user may not decide, or the decision cannot be made here.
    """
    if decision == Decision.RECONSENT and services.settings.reconsent_segment_id is None:
        raise Conflict(NO_SEGMENT)
    if alert_id is None:
        raise UserFacingError(UNKNOWN_ALERT)
    await require_decider(services, user_id)
    values = {"state": AlertState.DECIDED, "decision": decision, "decided_by": user_id, "decided_at": services.clock(),
              "reason": reason}
    async with unit_of_work(services.sessions) as session:
        await store.lock_alert(session, alert_id)  # the count below must match what decide_folded moves
        folded = await store.count_open_folded(session, alert_id)
        won = await approvals.decide(
            session, ConsentAlert, alert_id, from_states=[AlertState.OPEN], values=values, actor=user_id,
            action="consent.decided", subject=f"alert:{alert_id}",
            details={"decision": decision, "alerts": 1 + folded,
                     **ledger.reason_fields(services.hash_key, reason)},
        )
        if won:
            await store.decide_folded(session, alert_id, values)
            await job_queue.enqueue(session, IntakeJob.APPLY_DECISION, {"alert_id": alert_id},
                                    dedupe_key=f"{IntakeJob.APPLY_DECISION}:{alert_id}",
                                    max_attempts=services.settings.job_max_attempts)
    if won:
        services.jobs.notify()
        return None
    return _unchanged(services, alert_id, await load_alert(services, alert_id))


async def dismiss_form(services: Services, alert_id: int | None, user_id: str) -> dict[str, Any]:
    """The modal that asks why an open alert needs no action (dismissing takes a reason).

    Raises :class:`~bot.errors.UserFacingError` when the user may not decide or the alert is not open.
    """
    if alert_id is None:
        raise UserFacingError(UNKNOWN_ALERT)
    await require_decider(services, user_id)
    alert = await load_alert(services, alert_id)
    if alert is None or alert.state != AlertState.OPEN:
        raise Conflict(_unchanged(services, alert_id, alert))
    return dismiss_modal(alert_id, summary_text(alert_view(alert, services)))


def _unchanged(services: Services, alert_id: int, alert: ConsentAlert | None) -> str:
    if alert is None:
        return UNKNOWN_ALERT
    if alert.state == AlertState.DECIDED:
        return already_decided_text(alert_view(alert, services))
    return f"Alert #{alert_id} is for information only; there is nothing to decide."


# ---- the job that applies a decision ---------------------------------------------------------------------


async def apply_decision(services: Services, run: JobRun) -> None:
    """Job: apply the decision to every contact of the burst in Mautic, then note it in the thread."""
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
                await ledger.record(session, actor=BOT_ACTOR, action="consent.decision_applied",
                                    subject=f"alert:{alert_id}", details={"decision": lead.decision, **counts})
            lead = await store.get_alert(session, alert_id) or lead
    await _tell_thread_and_update(services, run, lead, len(members), progress)


async def _run_in_mautic(services: Services, run: JobRun, lead: ConsentAlert, members: list[ConsentAlert],
                         progress: dict[str, Any]) -> tuple[str, dict[str, int]]:
    contacts = sorted({m.contact_id for m in members if m.contact_id is not None})
    done: list[int] = list(progress.get("done", []))
    missing: list[int] = list(progress.get("missing", []))
    failed: list[int] = list(progress.get("failed", []))
    if lead.decision == Decision.DISMISS:
        return "No change in Mautic (dismissed).", {"contacts": len(contacts)}
    segment = services.settings.reconsent_segment_id
    if lead.decision == Decision.RECONSENT and segment is None:
        raise PermanentJobError("RECONSENT_SEGMENT_ID is not set")
    for contact_id in contacts:
        if contact_id in done or contact_id in missing or contact_id in failed:
            continue
        try:
            if lead.decision == Decision.DNC:
                await services.mautic.add_dnc(
                    contact_id, "email", reason=3,
                    comments=f"privacy-bot: consent alert #{lead.id} ({lead.kind}) decided by Slack user "
                             f"{lead.decided_by}",
                )
            else:
                assert segment is not None
                await services.mautic.add_to_segment(segment, contact_id)
            done.append(contact_id)
        except (MauticNotFound, ContactMerged):
            missing.append(contact_id)  # deleted or merged away since the alert; never act on the survivor
        except MauticAuthError:
            raise
        except MauticRefused as exc:
            log.warning("intake: Mautic refused %s for a contact of alert %s: %s", lead.decision, lead.id,
                        type(exc).__name__)
            failed.append(contact_id)
        progress.update(done=done, missing=missing, failed=failed)
        await run.checkpoint(progress)
    what = "Do-Not-Contact (email, reason manual) added" if lead.decision == Decision.DNC else \
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
    if not progress.get("thread") and lead.channel_id and lead.message_ts:
        posted = await services.messenger.post(lead.channel_id, thread_ts=lead.message_ts,
                                               text=decision_thread_text(alert_view(lead, services), members),
                                               once=f"job:{run.id}:decision-note")
        if posted is not None and lead.id is not None:
            async with unit_of_work(services.sessions) as session:
                await store.remember_reply(session, lead.id, posted.ts)
        progress["thread"] = True
        await run.checkpoint(progress)  # a retried attempt must not post the note twice
    if lead.message_ts:
        await update_message(services, lead)


async def decision_failed(services: Services, run: JobRun, error: str) -> None:
    """Failure hook: the decision could not be applied; say so on the alert and in its thread."""
    alert_id = int(run.payload["alert_id"])
    outcome = f"Failed in Mautic after {run.attempt} attempts ({error.split(':', 1)[0]}); retry from Mautic."
    async with unit_of_work(services.sessions) as session:
        if await store.set_outcome(session, alert_id, outcome, services.clock()):
            await ledger.record(session, actor=BOT_ACTOR, action="consent.decision_failed",
                                subject=f"alert:{alert_id}", details={"error": error.split(":", 1)[0]})
        lead = await store.get_alert(session, alert_id)
        members = len(await store.burst_members(session, alert_id))
    if lead is not None:
        await _tell_thread_and_update(services, run, lead, members, dict(run.progress))
