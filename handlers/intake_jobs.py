"""Durable job kinds and the scheduled sweep of the intake feature, bound to their dependencies.

What each job does lives in ``bot.intake``: ``process`` (split deliveries, apply pending rows, sweep),
``alerts`` (post and refresh alert messages) and ``decisions`` (apply a decision in Mautic).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from bot.intake import alerts, decisions, process
from bot.intake.ids import IntakeJob

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.intake.writer import DeliveryWriter
    from bot.jobs import JobRunner
    from bot.services import Services


def register(runner: JobRunner, services: Services, writer: DeliveryWriter) -> None:
    """Register this feature's job kinds, bound to the services and the process's delivery writer."""
    runner.register(IntakeJob.PROCESS, partial(process.process_inbox, services, writer))
    runner.register(IntakeJob.POST_ALERT, partial(alerts.post_alert, services))
    runner.register(IntakeJob.REFRESH_ALERT, partial(alerts.refresh_alert, services))
    runner.register(IntakeJob.APPLY_DECISION, partial(decisions.apply_decision, services),
                    on_failed=partial(decisions.decision_failed, services))
    runner.register(IntakeJob.SWEEP, partial(process.sweep_inbox, services))


def schedule(scheduler: AsyncIOScheduler, services: Services) -> None:
    """Every few minutes, give rows or deliveries whose process job failed for good another job."""
    scheduler.add_job(process.enqueue_sweep, "interval", args=[services], seconds=process.SWEEP_EVERY.total_seconds(),
                      id="intake-sweep", replace_existing=True, coalesce=True, max_instances=1)
