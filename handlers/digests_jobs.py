"""Registration and scheduling of the digests feature's jobs; the work lives in :mod:`bot.digests`.

Cron entries claim schedule slots (:mod:`bot.digests.slots`); a sweep right at start and every few
minutes catches up slots missed while every replica was down, or whose claim went stale.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from apscheduler.triggers.interval import IntervalTrigger

from bot.digests import evidence, jobs, slots
from bot.digests.service import KINDS

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.jobs import JobRunner
    from bot.services import Services

SWEEP_INTERVAL = timedelta(minutes=10)


def register(runner: JobRunner, services: Services) -> None:
    runner.register(jobs.POST_KIND, partial(jobs.post_job, services))
    runner.register(jobs.FORMS_KIND, partial(jobs.forms_job, services))
    runner.register(jobs.ROPA_KIND, partial(jobs.ropa_job, services))
    runner.register(evidence.EVIDENCE_KIND, partial(evidence.attach_form_evidence, services))
    runner.register(jobs.PURGE_KIND, partial(jobs.purge_job, services),
                    on_failed=partial(jobs.purge_failed, services))


def schedule(scheduler: AsyncIOScheduler, services: Services) -> None:
    for kind in KINDS:
        scheduler.add_job(
            partial(slots.tick, services, kind), slots.trigger_for(services.settings, kind), id=f"digest:{kind}",
            name=f"{kind} digest", replace_existing=True, coalesce=True, max_instances=1, misfire_grace_time=3600,
        )
    # Fires once right away (the start-up catch-up), then sweeps for slots whose claim went stale.
    scheduler.add_job(
        partial(slots.sweep, services), IntervalTrigger(seconds=SWEEP_INTERVAL.total_seconds()),
        id="digest:sweep", name="digest catch-up", replace_existing=True, coalesce=True, max_instances=1,
        next_run_time=datetime.now(UTC),
    )
