"""The durable job and cron entry of the bot's own retention (``bot.retention``)."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from bot import retention
from bot.digests.schedule import cron_trigger

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.jobs import JobRunner
    from bot.services import Services

log = logging.getLogger(__name__)


def register(runner: JobRunner, services: Services) -> None:
    runner.register(retention.JOB_KIND, partial(retention.run, services))


def schedule(scheduler: AsyncIOScheduler, services: Services) -> None:
    async def tick() -> None:
        try:
            await retention.enqueue(services)
        except Exception:
            log.exception("could not queue the own-retention run")

    settings = services.settings
    scheduler.add_job(tick, cron_trigger(settings.own_retention_cron, settings.digest_timezone),
                      id="own-retention", replace_existing=True, coalesce=True, misfire_grace_time=3600)
