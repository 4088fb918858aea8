"""Durable jobs of the digests feature: their kinds, how they are queued, and their bodies.

``digest.post`` builds and posts one digest (a claimed schedule slot, or `/privacy digest` on demand);
``digest.forms`` posts the form audit; ``digest.purge`` runs an approved bulk purge. The bodies take
:class:`Services` first so the edge binds them with ``functools.partial`` at registration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.digests import purge as purges
from bot.digests import schedule
from bot.digests.service import post_digest, post_form_audit, post_ropa
from bot.jobs import JobRun, PermanentJobError
from bot.mautic import MauticAuthError, MauticRefused
from storage import jobs as queue
from storage.db import unit_of_work

if TYPE_CHECKING:
    from bot.services import Services

POST_KIND = "digest.post"
FORMS_KIND = "digest.forms"
ROPA_KIND = "digest.ropa"
PURGE_KIND = purges.JOB_KIND


async def enqueue_digest(services: Services, kind: str, *, requested_by: str) -> None:
    """`/privacy digest <kind>`: post one now, after the command has been answered."""
    async with unit_of_work(services.sessions) as session:
        await queue.enqueue(session, POST_KIND, {"kind": kind, "requested_by": requested_by},
                            max_attempts=services.settings.job_max_attempts)
    services.jobs.notify()


async def enqueue_form_audit(services: Services, *, requested_by: str) -> None:
    """`/privacy forms`: audit the Mautic forms now, after the command has been answered."""
    async with unit_of_work(services.sessions) as session:
        await queue.enqueue(session, FORMS_KIND, {"requested_by": requested_by}, max_attempts=3)
    services.jobs.notify()


async def enqueue_ropa(services: Services, *, requested_by: str) -> None:
    """`/privacy ropa`: build and post the record of processing, after the command has been answered."""
    async with unit_of_work(services.sessions) as session:
        await queue.enqueue(session, ROPA_KIND, {"requested_by": requested_by}, max_attempts=3)
    services.jobs.notify()


async def ropa_job(services: Services, run: JobRun) -> None:
    await post_ropa(services, job_id=run.id, requested_by=run.payload.get("requested_by"))


async def post_job(services: Services, run: JobRun) -> None:
    payload = run.payload
    slot_text = payload.get("slot_at")
    try:
        await post_digest(
            services, str(payload["kind"]), job_id=run.id,
            slot_at=schedule.parse_slot(slot_text) if slot_text else None,
            generation=payload.get("generation"), requested_by=payload.get("requested_by"),
        )
    except (MauticAuthError, ValueError) as exc:
        raise PermanentJobError(f"digest cannot be built: {type(exc).__name__}") from exc


async def forms_job(services: Services, run: JobRun) -> None:
    try:
        await post_form_audit(services)
    except MauticAuthError as exc:
        raise PermanentJobError("Mautic refused the credentials") from exc


async def purge_job(services: Services, run: JobRun) -> None:
    try:
        await purges.PurgeExecution(services, int(run.payload["purge_id"])).run()
    except MauticRefused as exc:  # a 4xx: retrying the same request cannot help
        raise PermanentJobError(str(exc)) from exc


async def purge_failed(services: Services, run: JobRun, error: str) -> None:
    await purges.PurgeExecution(services, int(run.payload["purge_id"])).stop_after_failure(error)
