"""What the edges need to do their work, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock, system_clock
from bot.settings import Settings
from storage.db import SessionFactory

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.jobs import JobRunner
    from bot.mautic import MauticClient
    from bot.permissions import Permissions


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    http: aiohttp.ClientSession
    slack: AsyncWebClient
    mautic: MauticClient
    jobs: JobRunner
    permissions: Permissions
    scheduler: AsyncIOScheduler | None = None
    clock: Clock = system_clock
    # Feature modules may hang their own long-lived helpers here (keyed by feature name).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def hash_key(self) -> str:
        key = self.settings.bot_secret_key
        if key is None:
            raise RuntimeError("BOT_SECRET_KEY is required")
        return "subject-hash:" + key.get_secret_value()
