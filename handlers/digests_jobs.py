"""Durable job kinds and cron entries of the digests feature.

Scheduling across replicas: every replica runs the same APScheduler cron entries. When one fires, the
replica works out the slot (the latest scheduled time that is due) and tries to claim it in
``digest_slots``; the unique (kind, slot) row lets exactly one replica win, and the winner enqueues the
``digest.post`` job in the same transaction. A sweep at start (and every few minutes) claims the latest
due slot too, so a slot missed while every replica was down runs once at the next start, and a claim whose
lease ran out (its replica died and the job never finished) is taken over.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from apscheduler.triggers.interval import IntervalTrigger

from bot.digests import purge as purges
from bot.digests import schedule as slots
from bot.digests.service import KINDS, post_digest, post_form_audit
from bot.jobs import JobRun, PermanentJobError
from bot.mautic import MauticAuthError, MauticError
from bot.settings import ConfigError
from storage import digests as store
from storage import jobs as queue
from storage.db import unit_of_work

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.jobs import JobRunner
    from bot.services import Services

log = logging.getLogger(__name__)

POST_KIND = "digest.post"
FORMS_KIND = "digest.forms"
SLOT_LEASE = timedelta(hours=1)  # a posted digest takes seconds; an hour covers job retries with backoff
SWEEP_INTERVAL = timedelta(minutes=10)


def register(runner: JobRunner, services: Services) -> None:
    runner.register(POST_KIND, partial(_post_job, services))
    runner.register(FORMS_KIND, partial(_forms_job, services))
    runner.register(purges.JOB_KIND, partial(_purge_job, services), on_failed=partial(_purge_failed, services))


def cron_for(services: Services, kind: str) -> str:
    settings = services.settings
    override = settings.retention_cron if kind == "retention" else settings.compliance_cron
    return override or settings.digest_cron


def schedule(scheduler: AsyncIOScheduler, services: Services) -> None:
    tz = services.settings.digest_timezone
    for kind in KINDS:
        expression = cron_for(services, kind)
        try:
            trigger = slots.cron_trigger(expression, tz)
        except slots.CronError as exc:
            name = {"retention": "RETENTION_CRON", "compliance": "COMPLIANCE_CRON"}[kind]
            source = name if expression != services.settings.digest_cron else "DIGEST_CRON"
            raise ConfigError(f"{source}: {exc}") from None
        scheduler.add_job(
            tick, trigger, args=[services, kind], id=f"digest:{kind}", name=f"{kind} digest",
            replace_existing=True, coalesce=True, max_instances=1, misfire_grace_time=3600,
        )
    # Fires once right away (the start-up catch-up), then sweeps for slots whose claim went stale.
    scheduler.add_job(
        sweep, IntervalTrigger(seconds=SWEEP_INTERVAL.total_seconds()), args=[services], id="digest:sweep",
        name="digest catch-up", replace_existing=True, coalesce=True, max_instances=1,
        next_run_time=datetime.now(UTC),
    )


def replica_id(services: Services) -> str:
    """Who holds a claim (for operators reading the table): host, process and a per-app nonce."""
    return services.instance_id


async def run_slot(services: Services, kind: str, slot_at: datetime) -> bool:
    """Claim one slot and queue its digest; True only for the one caller that won the slot."""
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        claimed = await store.claim_slot(session, kind, slot_at, owner=replica_id(services), now=now,
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
    slot_at = slots.latest_due_slot(cron_for(services, kind), services.settings.digest_timezone, services.clock())
    if slot_at is None:
        return False
    return await run_slot(services, kind, slot_at)


async def catch_up(services: Services, kind: str) -> bool:
    """Run the latest due slot if nobody has (one run however many were missed).

    On a schedule's very first start the latest slot is only recorded as its baseline: a fresh install
    should not post a digest for a Monday that passed before it existed.
    """
    slot_at = slots.latest_due_slot(cron_for(services, kind), services.settings.digest_timezone, services.clock())
    if slot_at is None:
        return False
    async with unit_of_work(services.sessions) as session:
        if not await store.has_slots(session, kind):
            await store.mark_baseline(session, kind, slot_at, owner=replica_id(services), now=services.clock())
            return False
    return await run_slot(services, kind, slot_at)


async def sweep(services: Services) -> None:
    for kind in KINDS:
        try:
            await catch_up(services, kind)
        except Exception:
            log.exception("digest catch-up for %s failed", kind)


async def enqueue_digest(services: Services, kind: str, *, requested_by: str) -> None:
    """`/privacy digest <kind>`: post one now, after the command has been answered."""
    async with unit_of_work(services.sessions) as session:
        await queue.enqueue(session, POST_KIND, {"kind": kind, "requested_by": requested_by},
                            max_attempts=services.settings.job_max_attempts)
    services.jobs.notify()


async def enqueue_form_audit(services: Services, *, requested_by: str) -> None:
    async with unit_of_work(services.sessions) as session:
        await queue.enqueue(session, FORMS_KIND, {"requested_by": requested_by}, max_attempts=3)
    services.jobs.notify()


async def _post_job(services: Services, run: JobRun) -> None:
    payload = run.payload
    slot_text = payload.get("slot_at")
    try:
        await post_digest(
            services, str(payload["kind"]), job_id=run.id,
            slot_at=slots.parse_slot(slot_text) if slot_text else None,
            generation=payload.get("generation"), requested_by=payload.get("requested_by"),
        )
    except (MauticAuthError, ValueError) as exc:
        raise PermanentJobError(f"digest cannot be built: {type(exc).__name__}") from exc


async def _forms_job(services: Services, run: JobRun) -> None:
    try:
        await post_form_audit(services)
    except MauticAuthError as exc:
        raise PermanentJobError("Mautic refused the credentials") from exc


async def _purge_job(services: Services, run: JobRun) -> None:
    try:
        await purges.PurgeExecution(services, int(run.payload["purge_id"])).run()
    except MauticError as exc:  # a 4xx: retrying the same request cannot help
        raise PermanentJobError(str(exc)) from exc


async def _purge_failed(services: Services, run: JobRun, error: str) -> None:
    await purges.PurgeExecution(services, int(run.payload["purge_id"])).stop_after_failure(error)
