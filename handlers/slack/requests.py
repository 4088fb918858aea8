"""Slack listeners of the requests feature: `/privacy dsar|erase|rectify|requests|status`, the
request message's buttons, and the reject/extend modals.

Thin edges: parse, call ``bot.requests.service`` (which commits the decision and its audit entry),
then answer. Decisions are durable before the ack; Slack updates follow it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import Conflict, NotPermitted, UserFacingError
from bot.requests import blocks, notify, service
from bot.requests.commands import USAGE, parse_request_id
from bot.requests.ids import ReasonInput, RequestButton, RequestModal
from bot.requests.model import Action, RequestKind
from bot.services import Services
from handlers.slack.commands import CommandCall, Subcommand

log = logging.getLogger(__name__)


def _filer(kind: RequestKind) -> Callable[[CommandCall], Awaitable[None]]:
    async def run(call: CommandCall) -> None:
        info = await service.file_request(call.services, user_id=call.user_id, channel_id=call.channel_id,
                                          kind=kind, args=call.args)
        await call.ack(
            f"Filed {info.kind.heading.lower()} #{info.id} for {info.subject_masked}; legal due date "
            f"{info.due_date.isoformat()}. I'm posting it in this channel with the Mautic contacts I find."
        )

    return run


async def _list(call: CommandCall) -> None:
    infos = await service.open_requests(call.services)
    await call.ack(**blocks.requests_list(infos, today=call.services.clock().date()))


async def _status(call: CommandCall) -> None:
    request_id = parse_request_id(call.args, usage="status <id>")
    info = await service.load(call.services, request_id)
    if info is None:
        raise UserFacingError(f"There is no request #{request_id}. `/privacy requests` lists the open ones.")
    rows = await service.history(call.services, request_id)
    await call.ack(**blocks.request_status(info, rows, today=call.services.clock().date()))


SUBCOMMANDS: list[Subcommand] = [
    Subcommand("dsar", USAGE[RequestKind.ACCESS].usage, USAGE[RequestKind.ACCESS].example,
               "file an access request (Art. 15/20): a complete data package for the person",
               _filer(RequestKind.ACCESS)),
    Subcommand("erase", USAGE[RequestKind.ERASURE].usage, USAGE[RequestKind.ERASURE].example,
               "file an erasure request (Art. 17): delete the person in Mautic and in the bot",
               _filer(RequestKind.ERASURE)),
    Subcommand("rectify", USAGE[RequestKind.RECTIFICATION].usage, USAGE[RequestKind.RECTIFICATION].example,
               "file a rectification request (Art. 16): correct contact fields in Mautic",
               _filer(RequestKind.RECTIFICATION)),
    Subcommand("requests", "requests", "/privacy requests",
               "list open data-subject requests with days left", _list),
    Subcommand("status", "status <id>", "/privacy status 12", "show one request and its history", _status),
]


def _clicked(body: dict[str, Any]) -> tuple[str, int | None]:
    """Who clicked a request button, and the request id its value carries (None if it is not one)."""
    payload = (body.get("actions") or [{}])[0]
    return (body.get("user") or {}).get("id", ""), _request_id(payload.get("value"))


def _request_id(value: Any) -> int | None:
    text = str(value or "")
    return int(text) if text.isdigit() else None


async def _after_decision(services: Services, outcome: service.Outcome, action: Action, actor: str,
                          reason: str | None = None) -> None:
    assert outcome.info is not None
    info = await notify.safely("refreshing", notify.refresh_message(services, outcome.info.id)) or outcome.info
    await notify.safely("posting decision", notify.post_in_thread(
        services, info, blocks.decision_reply(info, action.value, actor, reason=reason)))


async def _ephemeral(respond: AsyncRespond, text: str) -> None:
    await notify.safely("answering", respond(text=text, response_type="ephemeral", replace_original=False))


def register(bolt: AsyncApp, services: Services) -> None:
    def direct(action: Action) -> Callable[..., Awaitable[None]]:
        async def on_click(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
            user, request_id = _clicked(body)
            if request_id is None:
                await ack()
                return
            outcome = await service.decide(services, request_id, user, action)  # committed before the ack
            await ack()
            if outcome.accepted:
                await _after_decision(services, outcome, action, user)
            else:
                await _ephemeral(respond, outcome.message)

        return on_click

    def with_modal(action: Action, build: Callable[[Any], dict[str, Any]]) -> Callable[..., Awaitable[None]]:
        async def on_click(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                           respond: AsyncRespond) -> None:
            user, request_id = _clicked(body)
            if request_id is None:
                await ack()
                return
            try:
                info = await service.check_may_act(services, request_id, user, action)
            except (NotPermitted, Conflict) as exc:
                await service.record_refusal(services, request_id, user, action, exc.message)
                await ack()
                await _ephemeral(respond, exc.message)
                return
            await ack()
            await client.views_open(trigger_id=body["trigger_id"], view=build(info))

        return on_click

    def submission(action: Action) -> Callable[..., Awaitable[None]]:
        async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
            user = (body.get("user") or {}).get("id", "")
            values = ((view.get("state") or {}).get("values") or {}).get(ReasonInput.BLOCK) or {}
            reason = str((values.get(ReasonInput.ACTION) or {}).get("value") or "").strip()
            if len(reason) < 3:
                await ack(response_action="errors",
                          errors={ReasonInput.BLOCK: "A reason is required (at least a few words)."})
                return
            request_id = _request_id(view.get("private_metadata"))
            if request_id is None:
                await ack()
                return
            outcome = await service.decide(services, request_id, user, action, reason=reason[:blocks.REASON_MAX])
            if not outcome.accepted:
                await ack(response_action="errors", errors={ReasonInput.BLOCK: outcome.message[:150]})
                return
            await ack()
            await _after_decision(services, outcome, action, user, reason)

        return on_submit

    bolt.action(RequestButton.VERIFY)(direct(Action.VERIFY))
    bolt.action(RequestButton.APPROVE)(direct(Action.APPROVE))
    bolt.action(RequestButton.RETRY)(direct(Action.RETRY))
    bolt.action(RequestButton.REJECT)(with_modal(Action.REJECT, blocks.reject_modal))
    bolt.action(RequestButton.EXTEND)(with_modal(Action.EXTEND, blocks.extend_modal))
    bolt.view(RequestModal.REJECT)(submission(Action.REJECT))
    bolt.view(RequestModal.EXTEND)(submission(Action.EXTEND))
