"""Slack listeners of the consent feature: ``/privacy consent <email>``, the alert buttons, the dismiss modal.

A decision is a guarded state transition written with its ledger entry and the job that applies it,
in one transaction, before the ack; the Mautic call, the thread note and the message update run in
that job. Whoever clicks second (or on a decided alert) is told who decided, and nothing changes.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import BadCommand
from bot.intake.blocks import (
    ACTION_DISMISS,
    ACTION_DNC,
    ACTION_RECONSENT,
    DISMISS_VIEW,
    REASON_ACTION,
    REASON_BLOCK,
    HistoryAlert,
    HistoryRecord,
    HistoryWithdrawal,
    already_decided_text,
    consent_history_message,
    dismiss_modal,
    fallback_text,
)
from bot.privacy import is_valid_email, mask_email, normalise_email, subject_hash
from bot.services import Services
from handlers.intake_jobs import APPLY_DECISION, alert_view
from handlers.slack.answers import tell_user
from handlers.slack.commands import CommandCall, Subcommand
from storage import intake as store
from storage import jobs as job_queue
from storage import ledger
from storage.db import unit_of_work
from storage.intake import AlertState

log = logging.getLogger(__name__)

_MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")
NOT_APPROVER = "Only privacy approvers may decide consent alerts."


def _email_arg(args: str) -> str:
    text = args.strip()
    match = _MAILTO.match(text)  # Slack may send a typed address as <mailto:a@b.c|a@b.c>
    return match.group(1) if match else text


async def consent_command(call: CommandCall) -> None:
    email = _email_arg(call.args)
    if not email or " " in email or not is_valid_email(email):
        raise BadCommand("Usage: `/privacy consent <email>`, e.g. `/privacy consent jane@example.com`")
    services = call.services
    subject = subject_hash(services.hash_key, email)
    async with unit_of_work(services.sessions) as session:
        history = await store.consent_history(session, subject)
        await ledger.record(session, actor=call.user_id, action="consent.history_viewed",
                            subject=f"subject:{subject[:16]}",
                            details={"records": len(history["records"]), "alerts": len(history["alerts"])})
    message = consent_history_message(
        mask_email(normalise_email(email)),
        [HistoryRecord(r.submitted_at, r.form_name, r.given, r.exempt, dict(r.values)) for r in history["records"]],
        [HistoryWithdrawal(w.withdrawn_at, w.channel, w.new_status, w.restored_at) for w in history["withdrawals"]],
        [HistoryAlert(a.id or 0, a.kind, a.state, a.created_at, a.decision) for a in history["alerts"]],
    )
    await call.ack(text=message["text"], blocks=message["blocks"], response_type="ephemeral")


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        name="consent",
        usage="consent <email>",
        example="/privacy consent jane@example.com",
        summary="consent history of one address: form submissions, withdrawals, alerts",
        run=consent_command,
        approvers_only=True,
    ),
]


def register(bolt: AsyncApp, services: Services) -> None:
    """Register this feature's action and view listeners."""

    async def decide(decision: str, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                     client: AsyncWebClient, reason: str | None = None) -> None:
        user = body["user"]["id"]
        alert_id = _alert_id(body)
        if alert_id is None or not await services.permissions.is_approver(user):
            await ack()
            await tell_user(body, respond, client, NOT_APPROVER if alert_id is not None else "Unknown alert.")
            return
        winner = await _decide(services, alert_id, decision, user, reason)
        await ack()
        if winner:
            services.jobs.notify()
            return
        await _tell_already_decided(services, body, respond, client, alert_id, user)

    async def on_dnc(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        await decide("dnc", ack, body, respond, client)

    async def on_reconsent(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                           client: AsyncWebClient) -> None:
        if services.settings.reconsent_segment_id is None:
            await ack()
            await tell_user(body, respond, client, "No re-consent segment is configured (RECONSENT_SEGMENT_ID).")
            return
        await decide("reconsent", ack, body, respond, client)

    async def on_dismiss(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        # Dismissing needs a reason: open the modal now (trigger ids live 3 s), decide on submit.
        await ack()
        user = body["user"]["id"]
        alert_id = _alert_id(body)
        if alert_id is None or not await services.permissions.is_approver(user):
            await tell_user(body, respond, client, NOT_APPROVER)
            return
        async with unit_of_work(services.sessions) as session:
            alert = await store.get_alert(session, alert_id)
        if alert is None:
            await tell_user(body, respond, client, "Unknown alert.")
            return
        if alert.state != AlertState.OPEN:
            await tell_user(body, respond, client, already_decided_text(alert_view(alert, services)))
            return
        await client.views_open(trigger_id=body["trigger_id"],
                                view=dismiss_modal(alert_id, fallback_text(alert_view(alert, services))))

    async def on_dismiss_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        user = body["user"]["id"]
        values = (view.get("state") or {}).get("values") or {}
        reason = str(((values.get(REASON_BLOCK) or {}).get(REASON_ACTION) or {}).get("value") or "").strip()
        if len(reason) < 3:
            await ack(response_action="errors", errors={REASON_BLOCK: "Please say why (at least 3 characters)."})
            return
        try:
            alert_id = int(view.get("private_metadata", ""))
        except ValueError:
            await ack()
            return
        if not await services.permissions.is_approver(user):
            await ack(response_action="errors", errors={REASON_BLOCK: NOT_APPROVER})
            return
        winner = await _decide(services, alert_id, "dismiss", user, reason[:500])
        await ack()
        if winner:
            services.jobs.notify()
            return
        async with unit_of_work(services.sessions) as session:
            alert = await store.get_alert(session, alert_id)
        if alert is not None and services.settings.privacy_channel:
            await client.chat_postEphemeral(channel=services.settings.privacy_channel, user=user,
                                            text=already_decided_text(alert_view(alert, services)))

    bolt.action(ACTION_DNC)(on_dnc)
    bolt.action(ACTION_RECONSENT)(on_reconsent)
    bolt.action(ACTION_DISMISS)(on_dismiss)
    bolt.view(DISMISS_VIEW)(on_dismiss_submit)


def _alert_id(body: dict[str, Any]) -> int | None:
    try:
        return int((body.get("actions") or [{}])[0].get("value", ""))
    except (TypeError, ValueError):
        return None


async def _decide(services: Services, alert_id: int, decision: str, user: str, reason: str | None) -> bool:
    """The guarded transition, its ledger entry and the job that applies it: one transaction."""
    async with unit_of_work(services.sessions) as session:
        changed = await store.decide(session, alert_id, decision=decision, user_id=user, at=services.clock(),
                                     reason=reason)
        if not changed:
            return False
        await ledger.record(session, actor=user, action="consent.decided", subject=f"alert:{alert_id}",
                            details={"decision": decision, "alerts": changed, "reason_given": bool(reason)})
        await job_queue.enqueue(session, APPLY_DECISION, {"alert_id": alert_id},
                                dedupe_key=f"{APPLY_DECISION}:{alert_id}",
                                max_attempts=services.settings.job_max_attempts)
    return True


async def _tell_already_decided(services: Services, body: dict[str, Any], respond: AsyncRespond,
                                client: AsyncWebClient, alert_id: int, user: str) -> None:
    async with unit_of_work(services.sessions) as session:
        alert = await store.get_alert(session, alert_id)
    if alert is None:
        text = "Unknown alert."
    elif alert.state == AlertState.DECIDED:
        text = already_decided_text(alert_view(alert, services))
    else:
        text = f"Alert #{alert_id} is for information only; there is nothing to decide."
    await tell_user(body, respond, client, text)
