"""Bulk purge of stale contacts: filing, the four-eyes decision, and the resumable batch execution.

The rules are those of single erasures, from the one approvals policy (:mod:`bot.approvals`): anyone who
may file requests may file a purge from a retention digest; only a privacy approver who is not the filer
may approve, reject or resume it (four eyes); an approval must come within ``APPROVAL_TTL``. Every decision,
and every state change of the execution, is a guarded state transition written with its ledger entry.

Slack is told after the fact, through the messenger: from a listener best effort (the decision is
committed), from the job not (the job is retried and shows the recorded state).

Execution re-checks everything: it counts the stale contacts again with the digest's cutoff, pages the
contacts that still match by id, checks each one against the rule once more, and deletes chunks of at most
200 with Mautic's batch delete. A contact that became active since the digest no longer matches and is
spared. Each chunk is planned (committed) before it is sent and recorded (with a ledger entry) after, so a
restarted job reconciles an interrupted chunk instead of guessing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import approvals
from bot.digests import blocks
from bot.digests.retention import is_stale, stale_filter
from bot.errors import Conflict, UserFacingError
from bot.intake.split import split_all_pending
from bot.mautic import BATCH_DELETE_CHUNK, Where
from bot.privacy import subject_hash
from storage import digests as store
from storage import erasures, ledger
from storage import jobs as queue
from storage import requests as requests_store
from storage.db import unit_of_work
from storage.forget import forget_subjects

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.services import Services

log = logging.getLogger(__name__)

JOB_KIND = "digest.purge"
MAX_FAILED_CHUNKS = 3  # consecutive chunks Mautic refused entirely: stop rather than hammer on
PROGRESS_EVERY_SECONDS = 2.0  # Slack's chat.update allows roughly one edit per second per message


async def file_purge(
    services: Services, *, run_id: int, user_id: str, channel: str, digest_ts: str | None = None
) -> store.PurgeRequest:
    """File a purge from a retention digest (committed, with its ledger entry); the filer may not approve it.

    Storage only, so the click can be acknowledged once this returns; :func:`announce` posts the message.
    """
    if channel != services.settings.privacy_channel:
        raise UserFacingError("Purges can only be filed in the privacy channel.")
    await services.approvals.require_filer(
        user_id, refusal="You are not on the list of people who may file privacy requests.")
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        run = await store.get_run(session, run_id)
        if run is None or run.kind != "retention" or not run.summary.get("total"):
            raise UserFacingError("That digest has no stale contacts to purge.")
        existing = await store.purge_for_run(session, run_id)
        if existing is not None:
            raise Conflict(f"A purge from this digest was already filed (purge request #{existing.id}, "
                           f"{existing.state}).")
        purge = store.PurgeRequest(
            digest_run_id=run_id, filed_by=user_id, filed_at=now,
            cutoff=datetime.fromisoformat(str(run.summary["cutoff"])),
            retention_days=int(run.summary.get("retention_days") or services.settings.retention_days),
            approved_count=int(run.summary["total"]), channel=channel, thread_ts=run.message_ts or digest_ts,
        )
        filed = await store.file_purge(session, purge)
        if filed is None:
            raise Conflict("A purge from this digest was already filed.")
        await ledger.record(session, actor=user_id, action="purge.filed", subject=_subject(filed.id),
                            details={"digest": run_id, "count": filed.approved_count,
                                     "cutoff": filed.cutoff.isoformat()})
    return filed


async def announce(services: Services, purge: store.PurgeRequest) -> None:
    """Post the request message (in the digest's thread, broadcast to the channel) with Approve / Reject.

    Runs after the click was acknowledged: the filing is committed, so Slack being down does not undo it.
    """
    assert purge.id is not None
    message = blocks.purge_request(purge_id=purge.id, count=purge.approved_count, cutoff=purge.cutoff,
                                   filed_by=purge.filed_by, state="pending")
    posted = await services.messenger.post(
        purge.channel, text=message["text"], blocks=message["blocks"], thread_ts=purge.thread_ts,
        reply_broadcast=purge.thread_ts is not None, best_effort=True, once=f"purge:{purge.id}")
    if posted is None:
        log.warning("purge #%s filed, but its request message could not be posted", purge.id)
        return
    async with unit_of_work(services.sessions) as session:
        await store.update_purge(session, purge.id, message_ts=posted.ts)
    purge.message_ts = posted.ts


async def _pending(services: Services, purge_id: int) -> store.PurgeRequest:
    async with unit_of_work(services.sessions) as session:
        purge = await store.get_purge(session, purge_id)
    if purge is None:
        raise UserFacingError(f"There is no purge request #{purge_id}.")
    if purge.state != store.PurgeState.PENDING:
        raise Conflict(f"Purge request #{purge_id} was already decided ({purge.state}).")
    return purge


async def decide(services: Services, *, purge_id: int, user_id: str, approve: bool) -> store.PurgeRequest:
    """Approve (queueing the batch job in the same transaction) or reject a pending purge.

    Guarded against double decisions; storage only, so the click can be acknowledged once this returns.
    A purge older than APPROVAL_TTL lapses instead of being approved (see :func:`after_decision`).
    """
    approvals = services.approvals
    # Approvers only, before anything about the purge is said; four eyes once we know who filed it.
    await approvals.require_decider(user_id, filed_by=None, doing="decide", what="a purge")
    purge = await _pending(services, purge_id)
    await approvals.require_decider(user_id, filed_by=purge.filed_by, doing="approve" if approve else "reject",
                                    what="this purge")
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        if approve and approvals.lapsed(purge.filed_at, now):
            await _move(session, purge_id, (store.PurgeState.PENDING,), store.PurgeState.LAPSED,
                        actor="system", action="purge.lapsed", decided_at=now)
        else:
            to_state = store.PurgeState.APPROVED if approve else store.PurgeState.REJECTED
            if not await _move(session, purge_id, (store.PurgeState.PENDING,), to_state, actor=user_id,
                               action="purge.approved" if approve else "purge.rejected",
                               details={"count": purge.approved_count}, decided_by=user_id, decided_at=now):
                raise Conflict(f"Purge request #{purge_id} was decided by someone else a moment ago.")
            if approve:
                job = await queue.enqueue(session, JOB_KIND, {"purge_id": purge_id}, dedupe_key=f"purge:{purge_id}",
                                          max_attempts=services.settings.job_max_attempts)
                await store.update_purge(session, purge_id, job_id=job.id if job else None)
        decided = await store.get_purge(session, purge_id)
    assert decided is not None
    return decided


async def after_decision(services: Services, purge: store.PurgeRequest) -> None:
    """After the ack: update the request message, start the job, or explain a lapse."""
    await refresh_request_message(services, purge, best_effort=True)
    if purge.state == store.PurgeState.APPROVED:
        services.jobs.notify()
    if purge.state == store.PurgeState.LAPSED:
        raise Conflict(f"Purge request #{purge.id} lapsed: it was not approved within "
                       f"{services.approvals.ttl.days} days. File a new one from a fresh digest.")


async def resume(services: Services, *, purge_id: int, user_id: str) -> None:
    """Continue a stopped purge after the last finished chunk (approvers only, not the filer); the job is
    queued with the decision and the runner woken once it is committed."""
    approvals = services.approvals
    await approvals.require_decider(user_id, filed_by=None, doing="resume", what="a purge")
    async with unit_of_work(services.sessions) as session:
        purge = await store.get_purge(session, purge_id)
    if purge is None or purge.state != store.PurgeState.STOPPED or purge.recheck_count is None:
        raise Conflict(f"Purge #{purge_id} is not a stopped purge that can be resumed.")
    await approvals.require_decider(user_id, filed_by=purge.filed_by, doing="resume", what="this purge")
    async with unit_of_work(services.sessions) as session:
        if not await _move(session, purge_id, (store.PurgeState.STOPPED,), store.PurgeState.RUNNING,
                           actor=user_id, action="purge.resumed", details={"deleted_so_far": purge.deleted},
                           failed_chunks=0, stop_reason=None, finished_at=None):
            raise Conflict(f"Purge #{purge_id} was resumed by someone else a moment ago.")
        job = await queue.enqueue(session, JOB_KIND, {"purge_id": purge_id},
                                  dedupe_key=f"purge:{purge_id}:resume:{services.clock().isoformat()}",
                                  max_attempts=services.settings.job_max_attempts)
        await store.update_purge(session, purge_id, job_id=job.id if job else None)
    services.jobs.notify()


async def refresh_request_message(services: Services, purge: store.PurgeRequest, *, best_effort: bool = False) -> None:
    """Show the purge's state on its request message.

    The listener (after a decision) and the job (start, stop, finish) both edit this message; one at a time,
    each showing the row as it is then, so a late edit never puts back an older state.
    """
    if purge.id is None:
        return
    async with services.messenger.one_at_a_time(f"purge:{purge.id}:request"):
        async with unit_of_work(services.sessions) as session:
            latest = await store.get_purge(session, purge.id)
        if latest is None or latest.message_ts is None:
            return
        message = blocks.purge_request(purge_id=purge.id, count=latest.approved_count, cutoff=latest.cutoff,
                                       filed_by=latest.filed_by, state=latest.state, decided_by=latest.decided_by,
                                       reason=latest.stop_reason)
        await services.messenger.update(latest.channel, latest.message_ts, text=message["text"],
                                        blocks=message["blocks"], best_effort=best_effort)


def _subject(purge_id: int | None) -> str:
    return f"purge:{purge_id}"


async def _move(
    session: AsyncSession, purge_id: int, from_states: tuple[str, ...], to_state: str, *, actor: str, action: str,
    details: dict[str, Any] | None = None, **values: Any,
) -> bool:
    """A guarded state change of one purge, written with its ledger entry; False if another click or
    replica moved it first (then nothing is written)."""
    return await approvals.decide(session, store.PurgeRequest, purge_id, from_states=from_states,
                                  values={"state": to_state, **values}, actor=actor, action=action,
                                  subject=_subject(purge_id), details=details)


# ---- execution --------------------------------------------------------------------------------------


class PurgeExecution:
    """One attempt of the batch job; everything it needs to resume lives in the purge row and its chunks."""

    def __init__(self, services: Services, purge_id: int) -> None:
        self.services = services
        self.purge_id = purge_id
        self._last_progress = 0.0

    async def _load(self) -> store.PurgeRequest:
        async with unit_of_work(self.services.sessions) as session:
            purge = await store.get_purge(session, self.purge_id)
        if purge is None:
            raise LookupError(f"purge {self.purge_id} is gone")
        return purge

    async def run(self) -> None:
        purge = await self._load()
        if purge.state in (store.PurgeState.DONE, store.PurgeState.STOPPED):
            # A retry after Slack was unavailable at the very end: the work is recorded, show it.
            await self._show(purge)
            return
        if purge.state == store.PurgeState.APPROVED:
            if not await self._start(purge):
                return
            purge = await self._load()
        if purge.state != store.PurgeState.RUNNING:
            return  # decided otherwise, finished or stopped meanwhile: nothing to do
        where = stale_filter(purge.cutoff)
        async with unit_of_work(self.services.sessions) as session:
            interrupted = await store.open_chunk(session, self.purge_id)
        if interrupted is not None:
            await self._delete_chunk(interrupted, resumed=True)
        while True:
            purge = await self._load()
            if purge.state != store.PurgeState.RUNNING:
                return
            budget = purge.approved_count - purge.deleted - purge.refused
            if budget <= 0:
                break
            limit = min(BATCH_DELETE_CHUNK, budget)
            page = []
            async for contact in self.services.mautic.iter_contacts(
                [*where, Where("id", "gt", purge.last_id)], page_size=limit, minimal=False
            ):
                page.append(contact)
                if len(page) >= limit:
                    break
            if not page:
                break
            # The filter already matched; check each contact again so nothing that stopped matching is deleted.
            stale = [c for c in page if is_stale(c.last_active, c.date_added, purge.cutoff)]
            # A bulk purge is a bulk erasure: each contact's keyed hash (and whether it had Do-Not-Contact) is
            # taken now, to forget the bot's own records of it and remember it as erased after the delete.
            subjects: dict[str, dict[str, Any]] = {str(c.id): {"hash": subject_hash(self.services.hash_key, c.email),
                                    "dnc": c.dnc_reason("email") is not None} for c in stale if c.email}
            async with unit_of_work(self.services.sessions) as session:
                busy = await requests_store.subjects_with_open_requests(
                    session, [s["hash"] for s in subjects.values()])
                # Someone with an open data-subject request is left to that request (reported as skipped).
                skipped = [c.id for c in stale if str(c.id) in subjects and subjects[str(c.id)]["hash"] in busy]
                ids = [c.id for c in stale if c.id not in skipped]
                await store.update_purge(session, self.purge_id, last_id=page[-1].id,
                                         spared=purge.spared + len(page) - len(stale),
                                         skipped=purge.skipped + len(skipped))
                chunk = await store.plan_chunk(
                    session, self.purge_id, purge.chunks_done + 1, ids, now=self.services.clock(),
                    subjects={k: v for k, v in subjects.items() if int(k) in ids}) if ids else None
            if chunk is not None:
                if not await self._delete_chunk(chunk, resumed=False):
                    return
        await self._finish()

    async def _start(self, purge: store.PurgeRequest) -> bool:
        """Re-count at execution time; refuse if more contacts match than were approved."""
        recount = await self.services.mautic.count_contacts(stale_filter(purge.cutoff))
        async with unit_of_work(self.services.sessions) as session:
            if recount > purge.approved_count:
                reason = (f"{recount:,} contacts match now, more than the {purge.approved_count:,} approved; "
                          "nothing was deleted. File a new purge from a fresh digest")
                await _move(session, self.purge_id, (store.PurgeState.APPROVED,), store.PurgeState.STOPPED,
                            actor="system", action="purge.stopped",
                            details={"recount": recount, "approved": purge.approved_count},
                            stop_reason=reason[:500], recheck_count=None, finished_at=self.services.clock())
                started = False
            else:
                started = await _move(session, self.purge_id, (store.PurgeState.APPROVED,), store.PurgeState.RUNNING,
                                      actor="system", action="purge.started",
                                      details={"recount": recount, "approved": purge.approved_count},
                                      recheck_count=recount, spared=purge.approved_count - recount)
        await self._show(await self._load())
        return started

    async def _delete_chunk(self, chunk: store.PurgeChunk, *, resumed: bool) -> bool:
        """Delete one planned chunk and record it; False when the purge had to stop."""
        assert chunk.id is not None
        purge = await self._load()
        ids = list(chunk.ids)
        gone = 0
        if resumed:
            # The last attempt stopped mid-chunk: delete only what is still there and still stale.
            still = [c.id async for c in self.services.mautic.iter_contacts(
                [*stale_filter(purge.cutoff), Where("id", "in", ids)], page_size=BATCH_DELETE_CHUNK, minimal=False)
                if is_stale(c.last_active, c.date_added, purge.cutoff)]
            already = len(ids) - len(still)
            ids = still
        else:
            already = 0
        deleted: list[int] = []
        refused_ids: set[int] = set()
        if ids:
            # Ids Mautic did not report (already gone, e.g. deleted by a first attempt that timed out)
            # are checked by the client and counted as gone, never as refused.
            result = await self.services.mautic.batch_delete(ids)
            deleted, gone, refused = result.deleted, len(result.gone), len(result.refused)
            refused_ids = set(result.refused)
        else:
            refused = 0
        entirely_refused = bool(ids) and refused == len(ids)
        now = self.services.clock()
        async with unit_of_work(self.services.sessions) as session:
            if not await store.finish_chunk(session, chunk.id, deleted=len(deleted) + already, gone=gone,
                                            refused=refused, now=now):
                return True  # another attempt recorded it
            forgotten = await self._forget(session, chunk, purge, refused_ids, now)
            failed_chunks = purge.failed_chunks + 1 if entirely_refused else 0
            await store.update_purge(
                session, self.purge_id, deleted=purge.deleted + len(deleted) + already,
                refused=purge.refused + refused, spared=purge.spared + gone, chunks_done=purge.chunks_done + 1,
                failed_chunks=failed_chunks,
            )
            await ledger.record(session, actor="system", action="purge.chunk", subject=_subject(self.purge_id),
                                details={"chunk": chunk.seq, "deleted": len(deleted) + already, "refused": refused,
                                         "gone": gone, "first_id": min(chunk.ids, default=None),
                                         "last_id": max(chunk.ids, default=None), "resumed": resumed,
                                         "erased_in_bot": forgotten})
            stop = failed_chunks >= MAX_FAILED_CHUNKS
            if stop:
                await self._stop(session, f"Mautic refused {MAX_FAILED_CHUNKS} chunks in a row")
        purge = await self._load()
        if stop:
            await self._show(purge)
        else:
            await self._progress(purge)
        return not stop

    async def _forget(self, session: AsyncSession, chunk: store.PurgeChunk, purge: store.PurgeRequest,
                      refused: set[int], now: datetime) -> int:
        """The chunk's contacts no longer in Mautic are erased in the bot too (the same transaction that records
        the chunk): their own records forgotten, their keyed hash kept (flagged suppressed if they had DNC)."""
        gone = [s for cid, s in (chunk.subjects or {}).items() if int(cid) not in refused]
        if not gone:
            return 0
        # Events still inside unsplit deliveries would escape the purge: split them first, here.
        await split_all_pending(session, hash_key=self.services.hash_key)
        forgotten = await forget_subjects(session, [s["hash"] for s in gone], now=now)
        for subject in gone:
            await erasures.record_erasure(
                session, subject_hash=subject["hash"], request_id=self.purge_id, received_at=purge.filed_at,
                erased_at=now, kind=erasures.ErasureKind.PURGE, suppressed=bool(subject.get("dnc")),
                decided_by=purge.decided_by)
        for name in forgotten.files:
            await asyncio.to_thread(Path(name).unlink, missing_ok=True)
        return len(gone)

    async def _stop(self, session: AsyncSession, reason: str) -> None:
        await _move(session, self.purge_id, (store.PurgeState.RUNNING, store.PurgeState.APPROVED),
                    store.PurgeState.STOPPED, actor="system", action="purge.stopped", details={"why": reason[:200]},
                    stop_reason=reason[:500], finished_at=self.services.clock())

    async def _finish(self) -> None:
        purge = await self._load()
        async with unit_of_work(self.services.sessions) as session:
            spared = max(0, purge.approved_count - purge.deleted - purge.refused - purge.skipped)
            await _move(session, self.purge_id, (store.PurgeState.RUNNING,), store.PurgeState.DONE,
                        actor="system", action="purge.finished",
                        details={"deleted": purge.deleted, "spared": spared, "refused": purge.refused,
                                 "skipped_open_request": purge.skipped, "approved": purge.approved_count},
                        spared=spared, finished_at=self.services.clock())
        await self._show(await self._load())

    async def stop_after_failure(self, error: str) -> None:
        """The job failed for good (Mautic kept failing): stop the purge and offer a resume."""
        async with unit_of_work(self.services.sessions) as session:
            await self._stop(session, f"Mautic kept failing ({error[:120]})")
        # Nothing retries a failure hook: show what Slack lets us show, and go on.
        await self._show(await self._load(), best_effort=True)

    async def _show(self, purge: store.PurgeRequest, *, best_effort: bool = False) -> None:
        """A state change: the request message and the progress message both show it.

        Not best effort inside the job: if Slack stays unavailable the job is retried, and the retry shows
        the recorded state (see :meth:`run`).
        """
        await refresh_request_message(self.services, purge, best_effort=best_effort)
        await self._progress(purge, force=True, best_effort=best_effort)

    async def _progress(self, purge: store.PurgeRequest, *, force: bool = False, best_effort: bool = False) -> None:
        """Keep one progress message in the digest's thread up to date (throttled for Slack's rate limits).

        A routine tick is best effort: the chunk is recorded already, and the next tick shows it anyway.
        """
        if not force and time.monotonic() - self._last_progress < PROGRESS_EVERY_SECONDS:
            return
        best_effort = best_effort or not force
        self._last_progress = time.monotonic()
        message = blocks.purge_progress(
            purge_id=self.purge_id, state=purge.state, approved=purge.approved_count, recheck=purge.recheck_count,
            deleted=purge.deleted, spared=purge.spared, refused=purge.refused, chunks=purge.chunks_done,
            reason=purge.stop_reason, skipped=purge.skipped,
            can_resume=purge.state == store.PurgeState.STOPPED and purge.recheck_count is not None,
        )
        messenger = self.services.messenger
        if purge.progress_ts is None:
            posted = await messenger.post(purge.channel, text=message["text"], blocks=message["blocks"],
                                          thread_ts=purge.thread_ts, best_effort=best_effort,
                                          once=f"purge:{self.purge_id}:progress")
            if posted is not None:
                async with unit_of_work(self.services.sessions) as session:
                    await store.update_purge(session, self.purge_id, progress_ts=posted.ts)
        else:
            await messenger.update(purge.channel, purge.progress_ts, text=message["text"], blocks=message["blocks"],
                                   best_effort=best_effort)
