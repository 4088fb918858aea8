"""``app_home_opened``: someone opened the bot's Home tab; their dashboard is published by a job."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.home import service as home
from bot.services import Services


def register(bolt: AsyncApp, services: Services) -> None:
    @bolt.event("app_home_opened")
    async def home_opened(event: dict[str, Any]) -> None:
        # Bolt acknowledges events itself. The Messages tab fires this event too; only Home shows a dashboard.
        if event.get("tab", "home") == "home" and isinstance(event.get("user"), str):
            await home.opened(services, event["user"])
