"""Slack listeners of the intake feature: ``/privacy consent <email>``, the alert buttons, the dismiss modal.

Thin edge: read the click or submission, call ``bot.intake`` (which commits a decision, its ledger entry
and the job that applies it before we ack), answer the one user privately.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import UserFacingError
from bot.intake import decisions, history
from bot.intake.blocks import REASON_MAX, REASON_MIN
from bot.intake.ids import DECISION_OF, AlertAction, Decision, DismissModal
from bot.services import Services
from bot.slack.buttons import Click, Submission
from handlers.slack.answers import tell_user
from handlers.slack.commands import CommandCall, Subcommand


async def consent_command(call: CommandCall) -> None:
    message = await history.consent_history(call.services, call.user_id, call.args)
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

    async def on_decision(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                          client: AsyncWebClient) -> None:
        click = Click.from_body(body)
        try:
            answer = await decisions.decide(services, click.ref, DECISION_OF[AlertAction(click.action_id)],
                                            click.user_id)  # committed before the ack
        except UserFacingError as exc:
            answer = exc.message
        await ack()
        if answer is not None:
            await tell_user(body, respond, client, answer)

    async def on_dismiss(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        # Dismissing needs a reason: open the modal now (trigger ids live 3 s), decide on submit.
        await ack()
        click = Click.from_body(body)
        try:
            modal = await decisions.dismiss_form(services, click.ref, click.user_id)
        except UserFacingError as exc:
            await tell_user(body, respond, client, exc.message)
            return
        await client.views_open(trigger_id=click.trigger_id, view=modal)

    async def on_dismiss_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        form = Submission.from_body(body)
        reason = form.text(DismissModal.REASON_BLOCK, DismissModal.REASON_INPUT)
        if len(reason) < REASON_MIN:
            await ack(response_action="errors",
                      errors={DismissModal.REASON_BLOCK: f"Please say why (at least {REASON_MIN} characters)."})
            return
        if form.ref is None:  # not a modal of ours: nothing to decide
            await ack()
            return
        try:
            answer = await decisions.decide(services, form.ref, Decision.DISMISS, form.user_id,
                                            reason=reason[:REASON_MAX])  # committed before the ack
        except UserFacingError as exc:
            await ack(response_action="errors", errors={DismissModal.REASON_BLOCK: exc.message})
            return
        await ack()
        if answer is not None and services.settings.privacy_channel:
            # A modal has no response_url: whoever lost the race is told in the channel, privately.
            await services.messenger.post_ephemeral(services.settings.privacy_channel, form.user_id, text=answer,
                                                    best_effort=True)

    bolt.action(AlertAction.DNC)(on_decision)
    bolt.action(AlertAction.RECONSENT)(on_decision)
    bolt.action(AlertAction.DISMISS)(on_dismiss)
    bolt.view(DismissModal.CALLBACK)(on_dismiss_submit)
