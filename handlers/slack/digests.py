"""Slack listeners of the digests feature: sub-commands, buttons and modals."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from handlers.slack.commands import Subcommand

SUBCOMMANDS: list[Subcommand] = []


def register(bolt: AsyncApp, services: Services) -> None:
    """Register this feature's action and view listeners."""
