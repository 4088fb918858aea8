"""Forgetting one data subject in the bot's own store, for an erasure request and a bulk purge alike.

Afterwards the store holds about the person only the keyed hash (``erased_subjects``, written by the caller),
the ids, kinds and dates of the requests and who decided them: no address, reasons, notes, contact ids,
field values or job payloads. Runs in the caller's transaction; events still inside unsplit deliveries must be
split first, in the same transaction (the caller does it: splitting needs the keyed hash).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import intake
from storage import requests as store
from storage.jobs import Job


@dataclass
class Forgotten:
    counts: dict[str, int] = field(default_factory=dict)
    request_ids: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # sealed package files to unlink after the commit


async def forget_subject(session: AsyncSession, subject_hash: str, *, email: str | None, now: datetime,
                         keep_job_id: int | None = None) -> Forgotten:
    """Delete or blank every row about the subject. ``keep_job_id``: the running erasure job, whose progress
    it still needs (it blanks its own at the end). ``email``: dead letters mentioning it go too."""
    return await forget_subjects(session, [subject_hash], email=email, now=now, keep_job_id=keep_job_id)


async def forget_subjects(session: AsyncSession, subject_hashes: Sequence[str], *, email: str | None = None,
                          now: datetime, keep_job_id: int | None = None) -> Forgotten:
    """:func:`forget_subject` for many subjects at once (a bulk purge's chunk), in a few statements."""
    out = Forgotten()
    if not subject_hashes:
        return out
    out.counts.update(await intake.purge_subjects(session, subject_hashes))
    if email:
        out.counts["dead_letters"] = await intake.purge_dead_letters(session, email)
    rows = await store.requests_for_subjects(session, subject_hashes)
    out.request_ids = [r.id for r in rows if r.id is not None]
    out.counts["requests"] = len(out.request_ids)
    if out.request_ids:
        ids = out.request_ids
        # Read before the blanking UPDATE below, which also refreshes these loaded rows.
        releases = {r.id: str(r.result["release"])[:16] for r in rows
                    if r.id is not None and (r.result or {}).get("release")}
        await session.exec(update(store.PrivacyRequest).where(col(store.PrivacyRequest.id).in_(ids)).values(  # type: ignore[call-overload]
            subject_email=None, subject_masked=store.ERASED_MASK, note=None, changes={}, extension_reason=None,
            reject_reason=None, verification_note=None, failure=None, contacts_found=None, result={}))
        for request_id, release in releases.items():  # a package's release state is no personal data
            await session.exec(update(store.PrivacyRequest).where(  # type: ignore[call-overload]
                col(store.PrivacyRequest.id) == request_id).values(result={"release": release}))
        await session.exec(update(store.RequestDecision)  # type: ignore[call-overload]
                           .where(col(store.RequestDecision.request_id).in_(ids)).values(reason=None))
        # Request jobs are keyed "request:<id>:…"; their progress holds contact ids and before/after values.
        jobs = or_(*(col(Job.dedupe_key).like(f"request:{request_id}:%") for request_id in ids))
        query = update(Job).where(jobs)
        if keep_job_id is not None:
            query = query.where(col(Job.id) != keep_job_id)
        await session.exec(query.values(progress={}, last_error=None))  # type: ignore[call-overload]
        for link in await store.links_for_requests(session, ids):
            if link.path:
                out.files.append(link.path)
            await store.forget_link_file(session, link.id or 0, revoke_at=now)
    out.counts["access_packages"] = len(out.files)
    return out
