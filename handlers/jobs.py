"""Durable job kinds and scheduled entry points of every feature, registered in one place."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from handlers import digests_jobs, home_jobs, intake_jobs, requests_jobs, retention_jobs

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.intake.writer import DeliveryWriter
    from bot.jobs import JobRunner
    from bot.services import Services

_FEATURES = (intake_jobs, requests_jobs, digests_jobs, retention_jobs)


def register_jobs(runner: JobRunner, services: Services, writer: DeliveryWriter) -> None:
    intake_jobs.register(runner, services, writer)
    requests_jobs.register(runner, services)
    digests_jobs.register(runner, services)
    home_jobs.register(runner, services)
    retention_jobs.register(runner, services)


def schedule_jobs(scheduler: AsyncIOScheduler, services: Services) -> ScheduledRuns:
    for feature in _FEATURES:
        feature.schedule(scheduler, services)
    runs = ScheduledRuns()
    for job in scheduler.get_jobs():
        job.modify(func=runs.tracked(job.func))
    return runs


class ScheduledRuns:
    """Tracks scheduled entries while they run, so shutdown can let them finish.

    APScheduler's asyncio executor cancels running entries on shutdown; one cancelled inside a unit of
    work could leave SQLite's write lock behind, and one still running after the engine is disposed
    fails. Entries are short (they claim a slot and enqueue a durable job), so waiting is cheap.
    """

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    def tracked(self, func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(func)
        async def run(*args: Any, **kwargs: Any) -> Any:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                return await func(*args, **kwargs)
            finally:
                self._running.discard(task)

        return run

    async def drain(self, *, timeout: float = 10.0) -> None:
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)
