"""Claiming digest slots across replicas: which replica posts the digest of a scheduled time.

Every replica runs the same cron entries. When one fires, the replica works out the slot (the latest
scheduled time that is due, see :mod:`bot.digests.schedule`) and tries to claim it in ``digest_slots``;
the unique (kind, slot) row lets exactly one replica win, and the winner enqueues the ``digest.post`` job
in the same transaction. A sweep at start (and every few minutes) claims the latest due slot too, so a
slot missed while every replica was down runs once at the next start, and a claim whose lease ran out (its
replica died and the job never finished) is taken over.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.digests import schedule
from bot.digests.jobs import POST_KIND
from bot.digests.service import KINDS
from bot.settings import ConfigError, Settings
from storage import digests as store
from storage import jobs as queue
from storage.db import unit_of_work

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

    from bot.services import Services

log = logging.getLogger(__name__)

SLOT_LEASE = timedelta(hours=1)  # a posted digest takes seconds; an hour covers job retries with backoff
_CRON_SETTING = {"retention": "RETENTION_CRON", "compliance": "COMPLIANCE_CRON"}


def cron_for(settings: Settings, kind: str) -> str:
    """The crontab expression of one digest kind: its own override, else ``DIGEST_CRON``."""
    override = settings.retention_cron if kind == "retention" else settings.compliance_cron
    return override or settings.digest_cron


def trigger_for(settings: Settings, kind: str) -> CronTrigger:
    """The cron trigger of one digest kind; a bad expression is a :class:`ConfigError` naming its setting."""
    expression = cron_for(settings, kind)
    try:
        return schedule.cron_trigger(expression, settings.digest_timezone)
    except schedule.CronError as exc:
        source = _CRON_SETTING[kind] if expression != settings.digest_cron else "DIGEST_CRON"
        raise ConfigError(f"{source}: {exc}") from None


def _latest_due(services: Services, kind: str) -> datetime | None:
    settings = services.settings
    return schedule.latest_due_slot(cron_for(settings, kind), settings.digest_timezone, services.clock())


async def run_slot(services: Services, kind: str, slot_at: datetime) -> bool:
    """Claim one slot and queue its digest; True only for the one caller that won the slot."""
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        claimed = await store.claim_slot(session, kind, slot_at, owner=services.instance_id, now=now,
                                         lease=SLOT_LEASE)
        if claimed is None:
            return False
        await queue.enqueue(
            session, POST_KIND, {"kind": kind, "slot_at": slot_at.isoformat(), "generation": claimed.generation},
            dedupe_key=f"digest:{kind}:{slot_at.isoformat()}:{claimed.generation}",
            max_attempts=services.settings.job_max_attempts,
        )
    services.jobs.notify()
    log.info("claimed %s digest slot %s (generation %s)", kind, slot_at.isoformat(), claimed.generation)
    return True


async def tick(services: Services, kind: str) -> bool:
    """The cron entry: the slot that just came due."""
    slot_at = _latest_due(services, kind)
    if slot_at is None:
        return False
    return await run_slot(services, kind, slot_at)


async def catch_up(services: Services, kind: str) -> bool:
    """Run the latest due slot if nobody has (one run however many were missed).

    On a schedule's very first start the latest slot is only recorded as its baseline: a fresh install
    should not post a digest for a Monday that passed before it existed.
    """
    slot_at = _latest_due(services, kind)
    if slot_at is None:
        return False
    async with unit_of_work(services.sessions) as session:
        if not await store.has_slots(session, kind):
            await store.mark_baseline(session, kind, slot_at, owner=services.instance_id, now=services.clock())
            return False
    return await run_slot(services, kind, slot_at)


async def sweep(services: Services) -> None:
    """Catch up every digest kind; one kind failing does not keep the other from running."""
    for kind in KINDS:
        try:
            await catch_up(services, kind)
        except Exception:
            log.exception("digest catch-up for %s failed", kind)
