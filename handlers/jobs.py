"""Durable job kinds and scheduled entry points, registered in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.jobs import JobRunner
    from bot.services import Services


def register_jobs(runner: JobRunner, services: Services) -> None:
    """Each feature adds its job kinds here (``runner.register(kind, handler, on_failed=...)``)."""


def schedule_jobs(scheduler: AsyncIOScheduler, services: Services) -> None:
    """Each feature adds its cron entries here."""
