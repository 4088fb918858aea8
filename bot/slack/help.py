"""Help and refusal texts of the ``/privacy`` command."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from bot.slack.blocks import context, escape, header, section


class _Documented(Protocol):
    @property
    def usage(self) -> str: ...
    @property
    def example(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def approvers_only(self) -> bool: ...
    @property
    def members_only(self) -> bool: ...


def help_message(subcommands: Sequence[_Documented]) -> dict[str, Any]:
    lines = ["`/privacy help` — this list"]
    for sub in subcommands:
        who = " _(approvers)_" if sub.approvers_only else " _(requesters and approvers)_" if sub.members_only else ""
        lines.append(f"`/privacy {escape(sub.usage)}` — {escape(sub.summary)}{who}\n      e.g. `{escape(sub.example)}`")
    return {
        "text": "Privacy bot commands:\n" + "\n".join(lines),
        "blocks": [
            header("Privacy bot commands"),
            section("\n".join(lines)),
            context("Emails you type are never shown in the channel unmasked. Decisions are audited."),
        ],
    }


def unknown_subcommand_message(name: str, subcommands: Sequence[_Documented]) -> dict[str, Any]:
    message = help_message(subcommands)
    intro = f"I don't know `/privacy {escape(name)}`. Here is what I can do:"
    return {"text": intro + "\n" + message["text"], "blocks": [section(intro), *message["blocks"]]}


def wrong_channel_text(channel_id: str) -> str:
    return (
        f"`/privacy` works only in <#{channel_id}>, so that requests and decisions stay where "
        "the privacy team can see and audit them."
    )
