"""The ``/privacy`` slash command: one dispatcher, sub-commands registered by each feature."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import UserFacingError
from bot.services import Services
from bot.slack.help import help_message, unknown_subcommand_message, wrong_channel_text
from handlers.slack.answers import answer_user

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandCall:
    """One invocation of a sub-command, already routed and permission-checked."""

    services: Services
    user_id: str
    channel_id: str
    args: str
    body: dict[str, Any]
    ack: AsyncAck
    respond: AsyncRespond
    client: AsyncWebClient


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str  # e.g. "dsar <email> [note]"
    example: str  # e.g. "/privacy dsar jane@example.com ticket 4411"
    summary: str
    run: Callable[[CommandCall], Awaitable[None]]
    approvers_only: bool = False
    # Only requesters and approvers (Permissions.may_file): what lists requests or forms.
    members_only: bool = False
    aliases: tuple[str, ...] = ()


def split_command(text: str) -> tuple[str, str]:
    """``"dsar  a@b.c note"`` → ``("dsar", "a@b.c note")``; sub-command names are case-insensitive."""
    parts = (text or "").strip().split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0].lower(), parts[1].strip() if len(parts) > 1 else ""


def register_privacy_command(bolt: AsyncApp, services: Services, subcommands: Sequence[Subcommand]) -> None:
    table: dict[str, Subcommand] = {}
    for sub in subcommands:
        for name in (sub.name, *sub.aliases):
            if name in table:
                raise ValueError(f"sub-command {name!r} registered twice")
            table[name] = sub

    async def privacy(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        name, args = split_command(command.get("text", ""))
        channel_id = command.get("channel_id", "")
        if channel_id != services.settings.privacy_channel:
            await ack(wrong_channel_text(services.settings.privacy_channel or ""))
            return
        if name in ("", "help"):
            await ack(**help_message(subcommands))
            return
        sub = table.get(name)
        if sub is None:
            await ack(**unknown_subcommand_message(name, subcommands))
            return
        user_id = command.get("user_id", "")
        if sub.approvers_only and not await services.permissions.is_approver(user_id):
            await ack(f"Only privacy approvers may use `/privacy {sub.name}`.")
            return
        if sub.members_only and not await services.permissions.may_file(user_id):
            await ack(f"Only privacy requesters and approvers may use `/privacy {sub.name}`.")
            return
        call = CommandCall(services, user_id, channel_id, args, command, ack, respond, client)
        try:
            await sub.run(call)
        except UserFacingError as exc:
            await answer_user(ack, respond, exc.message)

    bolt.command("/privacy")(privacy)
