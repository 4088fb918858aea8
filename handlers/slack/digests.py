"""Slack listeners of the digests feature: `/privacy digest`, `/privacy forms`, and the purge buttons.

Thin edge: parse, call :mod:`bot.digests`, answer. Every button is acknowledged first; the work
and its errors follow (errors reach the user through the one ``@app.error`` handler).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.digests import blocks, jobs
from bot.digests import purge as purges
from bot.digests.blocks import PurgeAction
from bot.digests.service import KINDS
from bot.errors import BadCommand, UserFacingError
from bot.services import Services
from bot.slack.buttons import Click
from handlers.slack.answers import tell_user
from handlers.slack.commands import CommandCall, Subcommand

T = TypeVar("T")
Listener = Callable[[AsyncAck, dict[str, Any], AsyncRespond, AsyncWebClient], Awaitable[None]]


async def digest_command(call: CommandCall) -> None:
    kind = call.args.strip().lower()
    if kind not in KINDS:
        raise BadCommand("Which digest? Use `/privacy digest retention` or `/privacy digest compliance`.")
    await jobs.enqueue_digest(call.services, kind, requested_by=call.user_id)
    await call.ack(blocks.digest_queued(kind))


async def forms_command(call: CommandCall) -> None:
    if call.args.strip():
        raise BadCommand("`/privacy forms` takes no arguments.")
    await jobs.enqueue_form_audit(call.services, requested_by=call.user_id)
    await call.ack(blocks.forms_queued())


async def ropa_command(call: CommandCall) -> None:
    if call.args.strip():
        raise BadCommand("`/privacy ropa` takes no arguments.")
    await jobs.enqueue_ropa(call.services, requested_by=call.user_id)
    await call.ack(blocks.ropa_queued())


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        name="digest",
        usage="digest retention|compliance",
        example="/privacy digest retention",
        summary="post the retention or compliance digest now",
        run=digest_command,
        approvers_only=True,
    ),
    Subcommand(
        name="forms",
        usage="forms",
        example="/privacy forms",
        summary="audit Mautic forms: no consent box, a pre-ticked one, or consent made a condition",
        run=forms_command,
        members_only=True,
    ),
    Subcommand(
        name="ropa",
        usage="ropa",
        example="/privacy ropa",
        summary="post the record of processing (Art. 30) and a DPIA screening, as Markdown and CSV files",
        run=ropa_command,
        approvers_only=True,
    ),
]


def _ref(click: Click) -> int:
    """The digest or purge number the clicked button carries."""
    if click.ref is None:
        raise UserFacingError("That button is out of date; please use the latest digest.")
    return click.ref


async def _decide_then_ack(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient,
    work: Callable[[], Awaitable[T]],
) -> T | None:
    """Commit the decision, then acknowledge. A refusal is acknowledged too and answered ephemerally here:
    raising after ack() would race Bolt's runner, which then drops the ack it already had."""
    try:
        result = await work()
    except UserFacingError as exc:
        await ack()
        await tell_user(body, respond, client, exc.message)
        return None
    await ack()
    return result


def register(bolt: AsyncApp, services: Services) -> None:
    @bolt.action(PurgeAction.FILE)
    async def file_purge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        click = Click.from_body(body)
        purge = await _decide_then_ack(ack, body, respond, client, lambda: purges.file_purge(
            services, run_id=_ref(click), user_id=click.user_id, channel=click.channel_id,
            digest_ts=click.message_ts))
        if purge is not None:
            await purges.announce(services, purge)

    def decision(approve: bool) -> Listener:
        async def decide(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
            click = Click.from_body(body)
            purge = await _decide_then_ack(ack, body, respond, client, lambda: purges.decide(
                services, purge_id=_ref(click), user_id=click.user_id, approve=approve))
            if purge is None:
                return
            try:
                await purges.after_decision(services, purge)
            except UserFacingError as exc:
                await tell_user(body, respond, client, exc.message)

        return decide

    bolt.action(PurgeAction.APPROVE)(decision(approve=True))
    bolt.action(PurgeAction.REJECT)(decision(approve=False))

    @bolt.action(PurgeAction.RESUME)
    async def resume_purge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                           client: AsyncWebClient) -> None:
        click = Click.from_body(body)
        await _decide_then_ack(ack, body, respond, client, lambda: purges.resume(
            services, purge_id=_ref(click), user_id=click.user_id))
