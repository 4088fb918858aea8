"""Durable job kinds and scheduled entry points of every feature, registered in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers import digests_jobs, intake_jobs, requests_jobs

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.jobs import JobRunner
    from bot.services import Services

_FEATURES = (intake_jobs, requests_jobs, digests_jobs)


def register_jobs(runner: JobRunner, services: Services) -> None:
    for feature in _FEATURES:
        feature.register(runner, services)


def schedule_jobs(scheduler: AsyncIOScheduler, services: Services) -> None:
    for feature in _FEATURES:
        feature.schedule(scheduler, services)
