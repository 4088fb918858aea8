"""Durable job queue primitives: enqueue, claim with a lease, finish, retry.

A job row is claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single writer under
``BEGIN IMMEDIATE``), worked, and marked done. A crashed worker's lease expires and the row becomes
claimable again, which gives restart safety and exactly-once execution across replicas as long as
handlers commit their effects together with :func:`finish` or are idempotent.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, UniqueConstraint, and_, func, or_, true, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import insert_unless_duplicate
from storage.types import JSONType, UTCDateTime, utcnow


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("dedupe_key", name="uq_jobs_dedupe_key"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64, index=True)
    dedupe_key: str | None = Field(default=None, max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    state: str = Field(default=JobState.QUEUED, max_length=16, index=True)
    attempts: int = 0
    max_attempts: int = 5
    run_after: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    last_error: str | None = Field(default=None, max_length=2000)
    progress: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
    max_attempts: int = 5,
    run_after: datetime | None = None,
) -> Job | None:
    """Add a job in the caller's transaction. With a dedupe key, a second enqueue is a no-op (None)."""
    now = utcnow()
    if dedupe_key is not None:
        existing = (await session.exec(select(Job).where(Job.dedupe_key == dedupe_key))).first()
        if existing is not None:
            return None
    job = Job(
        kind=kind,
        dedupe_key=dedupe_key,
        payload=payload or {},
        max_attempts=max_attempts,
        run_after=run_after or now,
        created_at=now,
    )
    if dedupe_key is None:
        session.add(job)
        await session.flush()
        return job
    # A concurrent replica may insert the same key between our check and our insert.
    return job if await insert_unless_duplicate(session, job) else None


async def claim(
    session: AsyncSession, *, kinds: list[str], limit: int, lease: timedelta, now: datetime | None = None,
    exclude: Collection[int] = (),
) -> list[Job]:
    """Lease up to ``limit`` due jobs: queued ones whose time has come, or running ones whose lease expired
    (but not those in ``exclude``: the caller's own, still running)."""
    now = now or utcnow()
    due = or_(
        and_(col(Job.state) == JobState.QUEUED, col(Job.run_after) <= now),
        and_(col(Job.state) == JobState.RUNNING, col(Job.lease_until) < now),
    )
    query = (
        select(Job)
        .where(due, col(Job.kind).in_(kinds), col(Job.id).not_in(list(exclude)) if exclude else true())
        .order_by(col(Job.run_after), col(Job.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    jobs = list((await session.exec(query)).all())
    for job in jobs:
        job.state = JobState.RUNNING
        job.attempts += 1
        job.lease_until = now + lease
        session.add(job)
    await session.flush()
    return jobs


async def extend_lease(session: AsyncSession, job_id: int, attempts: int, until: datetime) -> bool:
    """Keep a long job's lease alive; False if the job was taken over or finished meanwhile."""
    result = await session.exec(  # type: ignore[call-overload]
        update(Job)
        .where(col(Job.id) == job_id, col(Job.state) == JobState.RUNNING, col(Job.attempts) == attempts)
        .values(lease_until=until)
    )
    return bool(result.rowcount)


async def next_due(session: AsyncSession, *, kinds: list[str], exclude: Collection[int] = ()) -> datetime | None:
    """When the next job becomes claimable: the earliest ``run_after`` of a queued job, or ``lease_until`` of a
    running one (not in ``exclude``), so a runner can wake then instead of at its next poll."""
    mine = col(Job.id).not_in(list(exclude)) if exclude else true()
    queued = select(func.min(Job.run_after)).where(col(Job.state) == JobState.QUEUED, col(Job.kind).in_(kinds))
    leased = select(func.min(Job.lease_until)).where(col(Job.state) == JobState.RUNNING, col(Job.kind).in_(kinds),
                                                     mine)
    times = [(await session.exec(query)).one() for query in (queued, leased)]
    found = [t for t in times if t is not None]
    return min(found) if found else None


async def release(session: AsyncSession, job_id: int, attempts: int) -> bool:
    """Give up a running job's lease at once (its runner stopped it), so the next claim takes it over."""
    result = await session.exec(  # type: ignore[call-overload]
        update(Job)
        .where(col(Job.id) == job_id, col(Job.state) == JobState.RUNNING, col(Job.attempts) == attempts)
        .values(lease_until=utcnow() - timedelta(microseconds=1))
    )
    return bool(result.rowcount)


async def finish(session: AsyncSession, job_id: int, attempts: int, *, progress: dict[str, Any] | None = None) -> bool:
    """Mark done, guarded by the attempt number so a worker whose lease was lost cannot finish twice."""
    values: dict[str, Any] = {"state": JobState.DONE, "finished_at": utcnow(), "lease_until": None}
    if progress is not None:
        values["progress"] = progress
    result = await session.exec(  # type: ignore[call-overload]
        update(Job)
        .where(col(Job.id) == job_id, col(Job.state) == JobState.RUNNING, col(Job.attempts) == attempts)
        .values(**values)
    )
    return bool(result.rowcount)


async def retry_later(session: AsyncSession, job_id: int, attempts: int, *, error: str, at: datetime) -> bool:
    result = await session.exec(  # type: ignore[call-overload]
        update(Job)
        .where(col(Job.id) == job_id, col(Job.state) == JobState.RUNNING, col(Job.attempts) == attempts)
        .values(state=JobState.QUEUED, run_after=at, lease_until=None, last_error=error[:2000])
    )
    return bool(result.rowcount)


async def fail(session: AsyncSession, job_id: int, attempts: int, *, error: str) -> bool:
    result = await session.exec(  # type: ignore[call-overload]
        update(Job)
        .where(col(Job.id) == job_id, col(Job.state) == JobState.RUNNING, col(Job.attempts) == attempts)
        .values(state=JobState.FAILED, finished_at=utcnow(), lease_until=None, last_error=error[:2000])
    )
    return bool(result.rowcount)


async def requeue(session: AsyncSession, job_id: int) -> bool:
    """Give a failed job a fresh set of attempts (the Retry button)."""
    result = await session.exec(  # type: ignore[call-overload]
        update(Job)
        .where(col(Job.id) == job_id, col(Job.state) == JobState.FAILED)
        .values(state=JobState.QUEUED, attempts=0, run_after=utcnow(), finished_at=None)
    )
    return bool(result.rowcount)


async def save_progress(session: AsyncSession, job_id: int, progress: dict[str, Any]) -> None:
    """Checkpoint a long job so a resumed attempt continues where the last one stopped."""
    await session.exec(update(Job).where(col(Job.id) == job_id).values(progress=progress))  # type: ignore[call-overload]
