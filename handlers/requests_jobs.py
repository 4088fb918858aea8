"""Durable job kinds and cron entries of the requests feature.

``requests.announce`` posts a filed request and looks up its Mautic contacts; ``requests.execute`` runs
an approved request (access package, erasure, rectification), retried with backoff while Mautic answers
5xx/429 or times out, and marked failed with a Retry button after JOB_MAX_ATTEMPTS; ``requests.release``
delivers an access package an approver released (the link, or the upload); ``requests.daily``
lapses stale approvals, re-announces due-soon/overdue requests and removes expired package files.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from apscheduler.triggers.cron import CronTrigger

from bot.requests import execution
from bot.requests.service import ANNOUNCE_JOB, DAILY_JOB, EXECUTE_JOB, LIFT_JOB, RELEASE_JOB, enqueue_daily

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.jobs import JobRunner
    from bot.services import Services

log = logging.getLogger(__name__)


def register(runner: JobRunner, services: Services) -> None:
    runner.register(ANNOUNCE_JOB, partial(execution.announce, services),
                    on_failed=partial(execution.announce_failed, services))
    runner.register(EXECUTE_JOB, partial(execution.execute, services),
                    on_failed=partial(execution.execute_failed, services))
    runner.register(DAILY_JOB, partial(execution.daily, services))
    runner.register(LIFT_JOB, partial(execution.lift, services))
    runner.register(RELEASE_JOB, partial(execution.release, services),
                    on_failed=partial(execution.release_failed, services))


def schedule(scheduler: AsyncIOScheduler, services: Services) -> None:
    async def tick() -> None:
        try:
            await enqueue_daily(services)
        except Exception:
            log.exception("could not queue the daily requests sweep")

    scheduler.add_job(
        tick,
        CronTrigger.from_crontab(services.settings.requests_reminder_cron, timezone=services.settings.digest_timezone),
        id="requests-daily",
        replace_existing=True,
        coalesce=True,
        misfire_grace_time=3600,
    )
