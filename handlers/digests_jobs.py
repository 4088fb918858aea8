"""Durable job kinds and cron entries of the digests feature."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.jobs import JobRunner
    from bot.services import Services


def register(runner: JobRunner, services: Services) -> None:
    """Register this feature's job kinds: runner.register(kind, handler, on_failed=...)."""


def schedule(scheduler: AsyncIOScheduler, services: Services) -> None:
    """Add this feature's cron entries (stable ids, replace_existing, coalesce)."""
