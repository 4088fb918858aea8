"""The bot's own retention (GDPR Art. 5(1)(e) applied to the bot itself): what it keeps about people is
deleted once it has served its purpose, on a schedule (``OWN_RETENTION_CRON``, daily by default).

- raw inbox rows (processed webhook events, failed ones) and dead letters: ``OWN_RETENTION_DAYS`` after
  they were received (default 400: a year of digests and look-backs, plus a margin);
- finished jobs (their payloads and progress may name contacts): ``OWN_RETENTION_DAYS`` after they ended;
- consent evidence: kept while its contact exists in Mautic, then ``CONSENT_EVIDENCE_DAYS`` (default
  1095, three years: the regular limitation period of claims in Germany, §195 BGB, so consent can be
  proven while a claim about it can still be brought). The bot learns of a deletion from Mautic's
  contact-deleted webhook; because Mautic sends that for the losing side of a merge too, the evidence is
  deleted only after Mautic confirms that neither the id (which follows merges) nor the address leads to
  a contact any more; otherwise it follows the surviving contact and is kept;
- expired access-package files on disk (behind a link, or prepared and never released within
  ``EXPORT_LINK_TTL``), and packages uploaded to Slack (``files.delete``).

The run is one durable job per schedule slot (a dedupe key; replicas' schedulers all fire, one job runs),
deletes in bounded batches, checkpoints its counts so a retried attempt neither repeats nor double-counts,
and ends with one ledger entry of the counts per kind, which the compliance digest reports.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.digests import schedule
from bot.jobs import JobRun, RetryableJobError
from bot.mautic import MauticUnavailable
from bot.requests.execution import expire_files, expire_prepared
from bot.requests.uploads import delete_due_uploads
from storage import jobs as queue
from storage import ledger
from storage import retention as store
from storage.db import unit_of_work

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)
JOB_KIND = "retention.own"
BATCH = 1000  # rows per transaction: short locks, bounded memory
MAX_BATCHES = 200  # per kind and run; the rest waits for the next run rather than hold a lease for long
CONSENT_BATCH = 200  # consent records checked against Mautic per run (one or two API calls per contact)
KINDS = ("inbox_rows", "dead_letters", "finished_jobs", "consent_records")


async def enqueue(services: Services, slot_at: datetime | None = None) -> bool:
    """Queue the run of the slot that came due, once however many replicas' schedulers fire."""
    settings = services.settings
    slot_at = slot_at or schedule.latest_due_slot(settings.own_retention_cron, settings.digest_timezone,
                                                  services.clock())
    if slot_at is None:
        return False
    async with unit_of_work(services.sessions) as session:
        job = await queue.enqueue(session, JOB_KIND, {"slot_at": slot_at.isoformat()},
                                  dedupe_key=f"{JOB_KIND}:{slot_at.isoformat()}",
                                  max_attempts=settings.job_max_attempts)
    services.jobs.notify()
    return job is not None


async def run(services: Services, job: JobRun) -> None:
    """One retention run; counts per kind go to the ledger (and from there to the compliance digest)."""
    settings = services.settings
    now = services.clock()
    raw_before = now - timedelta(days=settings.own_retention_days)
    progress: dict[str, Any] = dict(job.progress)
    counts: dict[str, int] = {kind: int(progress.get("deleted", {}).get(kind, 0)) for kind in KINDS}
    kept = int(progress.get("consent_kept", 0))

    async def checkpoint(step: str) -> None:
        progress.update(deleted=dict(counts), consent_kept=kept, done=[*progress.get("done", []), step])
        await job.checkpoint(dict(progress))

    def done(step: str) -> bool:
        return step in progress.get("done", [])

    if not done("mark"):
        # Before old inbox rows go: their contact-deleted events are how the bot knows a contact left.
        async with unit_of_work(services.sessions) as session:
            await store.mark_deleted_contacts(session)
        await checkpoint("mark")
    for kind, delete in (
        ("inbox_rows", lambda s: store.delete_inbox_rows(s, raw_before, dead=False, limit=BATCH)),
        ("dead_letters", lambda s: store.delete_inbox_rows(s, raw_before, dead=True, limit=BATCH)),
        ("finished_jobs", lambda s: store.delete_finished_jobs(s, raw_before, limit=BATCH)),
    ):
        if done(kind):
            continue
        for _ in range(MAX_BATCHES):
            async with unit_of_work(services.sessions) as session:
                deleted = await delete(session)
            counts[kind] += deleted
            if deleted < BATCH:
                break
        await checkpoint(kind)
    if not done("consent_records"):
        deleted, kept_now = await _consent_evidence(services, now - timedelta(days=settings.consent_evidence_days))
        counts["consent_records"] += deleted
        kept += kept_now
        await checkpoint("consent_records")
    if not done("files"):
        # The daily requests sweep does this too; both record each file in the ledger themselves
        # (export.file_deleted, export.slack_deleted), which is what the digest counts.
        await expire_files(services, now)
        await expire_prepared(services, now)
        await delete_due_uploads(services)
        await checkpoint("files")
    async with unit_of_work(services.sessions) as session:
        # The ledger entry and the "recorded" mark commit together: a retried attempt records nothing twice.
        if done("recorded"):
            return
        await ledger.record(session, actor="bot", action=store.LEDGER_ACTION, at=services.clock(), details={
            "deleted": counts, "consent_kept": kept, "own_retention_days": settings.own_retention_days,
            "consent_evidence_days": settings.consent_evidence_days})
        progress.update(done=[*progress.get("done", []), "recorded"])
        await queue.save_progress(session, job.id, dict(progress))
    log.info("own retention: deleted %s", ", ".join(f"{k} {v}" for k, v in counts.items()))


async def _consent_evidence(services: Services, before: datetime) -> tuple[int, int]:
    """Delete consent records whose contact has been gone since before ``before``; keep (and re-point)
    those whose person Mautic still has. Returns (deleted, kept)."""
    async with unit_of_work(services.sessions) as session:
        records = await store.consent_records_past(session, before, limit=CONSENT_BATCH)
    groups: dict[tuple[int | None, str | None], list[int]] = {}
    for record in records:
        groups.setdefault((record.contact_id, record.email), []).append(record.id or 0)
    deleted = kept = 0
    for (contact_id, email), ids in groups.items():
        try:
            survivor = await _still_in_mautic(services, contact_id, email)
        except MauticUnavailable as exc:
            raise RetryableJobError("Mautic unavailable while checking consent evidence") from exc
        async with unit_of_work(services.sessions) as session:
            if survivor is not None:
                kept += await store.keep_consent_records(session, ids, survivor)
            else:
                deleted += await store.delete_consent_records(session, ids, before)
    return deleted, kept


async def _still_in_mautic(services: Services, contact_id: int | None, email: str | None) -> int | None:
    """The id of the contact the person now has in Mautic, or None when Mautic has none."""
    if contact_id is not None:
        current = await services.mautic.contact_or_survivor(contact_id)  # follows a merge to the survivor
        if current is not None:
            return current.id
    if email:
        found = await services.mautic.find_contacts_by_email(email)
        if found:
            return min(c.id for c in found)
    return None
