"""Slack listeners of the digests feature: `/privacy digest`, `/privacy forms`, and the purge buttons.

Thin edge: parse, check, call :mod:`bot.digests`, answer. Every button is acknowledged first; the work
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
from bot.digests.service import KINDS
from bot.errors import BadCommand, UserFacingError
from bot.services import Services
from handlers.slack.answers import tell_user
from handlers.slack.commands import CommandCall, Subcommand
from storage import digests as store

T = TypeVar("T")


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
        summary="audit Mautic forms: email collected without a required, unticked consent box",
        run=forms_command,
    ),
]


def _opaque_id(body: dict[str, Any]) -> int:
    try:
        return int(body["actions"][0]["value"])
    except (KeyError, IndexError, TypeError, ValueError):
        raise UserFacingError("That button is out of date; please use the latest digest.") from None


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


def _channel(body: dict[str, Any]) -> str:
    return str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")


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
        await _tell(body, respond, client, exc.message)
        return None
    await ack()
    return result


async def _after_ack(body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient,
                     work: Callable[[], Awaitable[None]]) -> None:
    try:
        await work()
    except UserFacingError as exc:
        await _tell(body, respond, client, exc.message)


async def _tell(body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, text: str) -> None:

    await tell_user(body, respond, client, text)


def register(bolt: AsyncApp, services: Services) -> None:
    @bolt.action(blocks.ACTION_PURGE_FILE)
    async def file_purge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        channel = _channel(body)

        async def work() -> store.PurgeRequest:
            if channel != services.settings.privacy_channel:
                raise UserFacingError("Purges can only be filed in the privacy channel.")
            return await purges.file_purge(services, run_id=_opaque_id(body), user_id=_user(body), channel=channel,
                                           digest_ts=(body.get("container") or {}).get("message_ts"))

        purge = await _decide_then_ack(ack, body, respond, client, work)
        if purge is not None:
            await purges.announce(services, purge)

    async def decide(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient,
                     approve: bool) -> None:
        purge = await _decide_then_ack(ack, body, respond, client, lambda: purges.decide(
            services, purge_id=_opaque_id(body), user_id=_user(body), approve=approve))
        if purge is not None:
            await _after_ack(body, respond, client, lambda: purges.after_decision(services, purge))

    @bolt.action(blocks.ACTION_PURGE_APPROVE)
    async def approve_purge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                            client: AsyncWebClient) -> None:
        await decide(ack, body, respond, client, approve=True)

    @bolt.action(blocks.ACTION_PURGE_REJECT)
    async def reject_purge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                           client: AsyncWebClient) -> None:
        await decide(ack, body, respond, client, approve=False)

    @bolt.action(blocks.ACTION_PURGE_RESUME)
    async def resume_purge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                           client: AsyncWebClient) -> None:
        done = await _decide_then_ack(ack, body, respond, client, lambda: purges.resume(
            services, purge_id=_opaque_id(body), user_id=_user(body)))
        if done is not None:
            services.jobs.notify()
