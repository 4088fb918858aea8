"""Slack listeners of the requests feature: `/privacy dsar|erase|rectify|requests|status`, the
request message's buttons, and the reject/extend modals.

Thin edges: parse, call ``bot.requests.service`` (which commits the decision and its audit entry),
then answer. Decisions are durable before the ack; Slack updates follow it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import UserFacingError
from bot.requests import blocks, cleanup, forms, notify, service
from bot.requests.commands import USAGE, parse_request_id
from bot.requests.ids import IdentityInput, ReasonInput, RequestButton, RequestModal
from bot.requests.model import Action, RequestKind
from bot.requests.view import RequestInfo
from bot.services import Services
from bot.slack.blocks import escape
from bot.slack.buttons import Click, Submission
from handlers.slack.answers import tell_user
from handlers.slack.commands import CommandCall, Subcommand
from storage.erasure_cleanup import LineState


def _filer(kind: RequestKind) -> Callable[[CommandCall], Awaitable[None]]:
    async def run(call: CommandCall) -> None:
        info = await service.file_request(call.services, user_id=call.user_id, channel_id=call.channel_id,
                                          kind=kind, args=call.args)
        await call.ack(
            f"Filed {info.kind.heading.lower()} #{info.id} for {escape(info.subject_masked)} "
            f"({info.regime.upper()}), "
            f"received {info.received_day.isoformat()}; legal due date {info.due_date.isoformat()}"
            f"{f' ({info.due_note})' if info.due_note else ''}. "
            "I'm posting it in this channel with the Mautic contacts I find."
        )

    return run


async def _list(call: CommandCall) -> None:
    infos = await service.open_requests(call.services)
    await call.ack(**blocks.requests_list(infos, today=service.today(call.services)))


async def _status(call: CommandCall) -> None:
    request_id = parse_request_id(call.args, usage="status <id>")
    info = await service.load(call.services, request_id)
    if info is None:
        raise UserFacingError(f"There is no request #{request_id}. `/privacy requests` lists the open ones.")
    rows = await service.history(call.services, request_id)
    await call.ack(**blocks.request_status(info, rows, today=service.today(call.services)))


SUBCOMMANDS: list[Subcommand] = [
    Subcommand("dsar", USAGE[RequestKind.ACCESS].usage, USAGE[RequestKind.ACCESS].example,
               "file an access request (Art. 15/20): a data package an approver releases to the person; "
               "received= is the day it reached you (default today), regime= gdpr or ccpa",
               _filer(RequestKind.ACCESS)),
    Subcommand("erase", USAGE[RequestKind.ERASURE].usage, USAGE[RequestKind.ERASURE].example,
               "file an erasure request (Art. 17): delete the person in Mautic and in the bot; done once an "
               "approver has ticked its clean-up checklist",
               _filer(RequestKind.ERASURE)),
    Subcommand("rectify", USAGE[RequestKind.RECTIFICATION].usage, USAGE[RequestKind.RECTIFICATION].example,
               "file a rectification request (Art. 16): correct contact fields in Mautic",
               _filer(RequestKind.RECTIFICATION)),
    Subcommand("restrict", USAGE[RequestKind.RESTRICTION].usage, USAGE[RequestKind.RESTRICTION].example,
               "file a restriction (Art. 18): on approval Do-Not-Contact and the tag restricted in Mautic, "
               "listed until an approver lifts it", _filer(RequestKind.RESTRICTION)),
    Subcommand("optout", USAGE[RequestKind.OPT_OUT].usage, USAGE[RequestKind.OPT_OUT].example,
               "file a CCPA opt-out of sale/sharing: 15 business days, no identity step; on approval "
               "Do-Not-Contact and the tag do-not-sell-share in Mautic", _filer(RequestKind.OPT_OUT)),
    Subcommand("object", USAGE[RequestKind.OBJECTION].usage, USAGE[RequestKind.OBJECTION].example,
               "file an objection to direct marketing (Art. 21(2)-(3)): no identity step; on approval "
               "Do-Not-Contact for email, removal from the policy file's marketing segments, and later form "
               "submissions without new consent flagged", _filer(RequestKind.OBJECTION)),
    Subcommand("requests", "requests", "/privacy requests",
               "list open data-subject requests with days left", _list, members_only=True),
    Subcommand("status", "status <id>", "/privacy status 12", "show one request and its history", _status,
               members_only=True),
]


def register(bolt: AsyncApp, services: Services) -> None:
    def click(action: Action, modal: Callable[[RequestInfo], dict[str, Any]] | None = None,
              ) -> Callable[..., Awaitable[None]]:
        """A button: decided at once, or (with ``modal``) checked and then asked for a reason in a modal."""

        async def on_click(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                           client: AsyncWebClient) -> None:
            clicked = Click.from_body(body)
            if clicked.ref is None:
                await ack()
                return
            # Committed before the ack: the decision, or the refusal it records.
            if modal is None:
                outcome = await service.decide(services, clicked.ref, clicked.user_id, action)
            else:
                outcome = await service.check_or_refuse(services, clicked.ref, clicked.user_id, action)
            await ack()
            if not outcome.accepted or outcome.info is None:
                await tell_user(body, respond, client, outcome.message)
            elif modal is None:
                await notify.show_decision(services, outcome.info, action, clicked.user_id)
            elif clicked.trigger_id:  # Slack sends one with every click; a modal cannot open without it
                await client.views_open(trigger_id=clicked.trigger_id, view=modal(outcome.info))

        return on_click

    def submission(action: Action, read: Callable[[Submission], dict[str, Any]],
                   refusal_block: str) -> Callable[..., Awaitable[None]]:
        """A modal's submit: ``read`` its inputs (a problem is shown next to its input), then decide; a
        refusal is shown next to ``refusal_block``."""

        async def on_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
            submitted = Submission.from_body(body)
            try:
                inputs = read(submitted)
            except forms.InvalidInput as exc:
                await ack(response_action="errors", errors={exc.block: exc.message[:150]})
                return
            if submitted.ref is None:
                await ack()
                return
            outcome = await service.decide(services, submitted.ref, submitted.user_id, action, **inputs)
            if not outcome.accepted or outcome.info is None:
                await ack(response_action="errors", errors={refusal_block: outcome.message[:150]})
                return
            await ack()
            await notify.show_decision(services, outcome.info, action, submitted.user_id, inputs.get("reason"))

        return on_submit

    def cleanup_click(state: LineState) -> Callable[..., Awaitable[None]]:
        """A clean-up checklist line's Done / Not applicable: recorded before the ack, the checklist after."""

        async def on_click(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                           client: AsyncWebClient) -> None:
            clicked = Click.from_body(body)
            if clicked.ref is None:
                await ack()
                return
            try:
                ticked = await cleanup.tick(services, clicked.ref, clicked.user_id, state)
            except UserFacingError as exc:
                await ack()
                await tell_user(body, respond, client, exc.message)
                return
            await ack()
            await cleanup.after_tick(services, ticked)

        return on_click

    bolt.action(RequestButton.CLEANUP_DONE)(cleanup_click(LineState.DONE))
    bolt.action(RequestButton.CLEANUP_NOT_APPLICABLE)(cleanup_click(LineState.NOT_APPLICABLE))
    bolt.action(RequestButton.VERIFY)(click(Action.VERIFY, blocks.identity_modal))
    bolt.view(RequestModal.VERIFY)(submission(Action.VERIFY, forms.identity, IdentityInput.METHOD_BLOCK))
    bolt.action(RequestButton.APPROVE)(click(Action.APPROVE))
    bolt.action(RequestButton.RETRY)(click(Action.RETRY))
    bolt.action(RequestButton.ACKNOWLEDGE)(click(Action.ACKNOWLEDGE))
    bolt.action(RequestButton.RESPOND)(click(Action.RESPOND))
    bolt.action(RequestButton.LIFT)(click(Action.LIFT))
    bolt.action(RequestButton.RELEASE)(click(Action.RELEASE))
    bolt.action(RequestButton.REJECT)(click(Action.REJECT,
                                            lambda info: blocks.reject_modal(info, service.today(services))))
    bolt.action(RequestButton.EXTEND)(click(
        Action.EXTEND, lambda info: blocks.extend_modal(info, service.extended_deadline(services, info),
                                                        service.today(services))))
    bolt.view(RequestModal.REJECT)(submission(Action.REJECT, forms.reason, ReasonInput.BLOCK))
    bolt.view(RequestModal.EXTEND)(submission(Action.EXTEND, forms.reason_and_notice, ReasonInput.BLOCK))
