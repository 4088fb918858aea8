"""What the core needs to do its work, built once per process by the app factory and never changed.

Every field is typed; a feature that needs a long-lived helper of its own (the intake writer, say) keeps
it in its own object, built by the app factory and bound to the feature's handlers at registration.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.approvals import Approvals
from bot.clock import Clock
from bot.jobs import JobRunner
from bot.mautic import MauticClient
from bot.metrics import Metrics
from bot.permissions import Permissions
from bot.policy import PolicyFile
from bot.settings import Settings
from bot.slack.messenger import SlackMessenger
from storage.db import SessionFactory


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    http: aiohttp.ClientSession
    slack: AsyncWebClient  # for what the messenger does not cover (views.open in a listener)
    messenger: SlackMessenger
    mautic: MauticClient
    jobs: JobRunner
    permissions: Permissions
    approvals: Approvals
    policy: PolicyFile
    clock: Clock
    metrics: Metrics  # this app's own registry: counters told by hooks, gauges read at scrape time
    instance_id: str  # host:pid:nonce, names this process in claims (digest slots) for operators

    @property
    def hash_key(self) -> str:
        key = self.settings.bot_secret_key
        if key is None:
            raise RuntimeError("BOT_SECRET_KEY is required")
        return "subject-hash:" + key.get_secret_value()
