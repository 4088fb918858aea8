"""Tables and queries of the digests feature: schedule slot claims, digest runs, bulk purge requests.

* ``digest_slots``: one row per (digest kind, slot time). Inserting it is how a replica claims the slot;
  the unique constraint makes exactly one replica win. The claim carries a lease: if its digest has not
  been posted when the lease runs out (the replica died, the job was lost), another replica may take the
  slot over, bumping ``generation`` so the two attempts can tell each other apart.
* ``digest_runs``: every digest posted (scheduled or on demand), with the period it covered and counts
  only — never addresses.
* ``purge_requests`` / ``purge_chunks``: a bulk erasure of stale contacts, its decision, and its progress
  chunk by chunk so a restarted job resumes where it stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, UniqueConstraint, and_, func, or_, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import insert_unless_duplicate
from storage.types import JSONType, UTCDateTime


class SlotState(StrEnum):
    CLAIMED = "claimed"
    DONE = "done"
    BASELINE = "baseline"  # first start of a schedule: marks where it begins, posts nothing


class PurgeState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    REJECTED = "rejected"
    LAPSED = "lapsed"


OPEN_PURGE_STATES = (PurgeState.PENDING, PurgeState.APPROVED, PurgeState.RUNNING)


class DigestSlot(SQLModel, table=True):
    __tablename__ = "digest_slots"
    __table_args__ = (UniqueConstraint("kind", "slot_at", name="uq_digest_slots_kind_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    slot_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    state: str = Field(default=SlotState.CLAIMED, max_length=16)
    owner: str = Field(max_length=64)
    generation: int = 1
    claimed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class DigestRun(SQLModel, table=True):
    __tablename__ = "digest_runs"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)
    slot_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    period_start: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    period_end: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    requested_by: str | None = Field(default=None, max_length=32)
    job_id: int | None = Field(default=None, unique=True)
    channel: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    posted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class PurgeRequest(SQLModel, table=True):
    __tablename__ = "purge_requests"

    id: int | None = Field(default=None, primary_key=True)
    digest_run_id: int = Field(unique=True)  # one purge per retention digest: a double click files once
    state: str = Field(default=PurgeState.PENDING, max_length=16, index=True)
    filed_by: str = Field(max_length=32)
    filed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    cutoff: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    retention_days: int
    approved_count: int  # N on the button: never delete more than this
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    channel: str = Field(max_length=32)
    thread_ts: str | None = Field(default=None, max_length=32)  # the digest message: progress goes there
    message_ts: str | None = Field(default=None, max_length=32)  # the request message with the decision
    progress_ts: str | None = Field(default=None, max_length=32)
    recheck_count: int | None = None  # matching contacts when execution started
    deleted: int = 0
    spared: int = 0
    refused: int = 0
    last_id: int = 0  # paging cursor: every contact id <= this has been dealt with
    chunks_done: int = 0
    failed_chunks: int = 0  # consecutive chunks Mautic refused entirely
    stop_reason: str | None = Field(default=None, max_length=500)
    skipped: int = 0  # contacts spared because a data-subject request about them is open
    job_id: int | None = None
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class PurgeChunk(SQLModel, table=True):
    __tablename__ = "purge_chunks"
    __table_args__ = (UniqueConstraint("purge_id", "seq", name="uq_purge_chunks_purge_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    purge_id: int = Field(index=True)
    seq: int
    ids: list[int] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    # Per contact id (as text): its keyed hash and whether it had Do-Not-Contact, taken when the chunk was
    # planned, so the bot's own records of every deleted contact can be forgotten even on a resumed chunk.
    subjects: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    state: str = Field(default="planned", max_length=16)  # planned (sent or about to be) | done
    deleted: int = 0
    gone: int = 0
    refused: int = 0
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


# ---- slots -----------------------------------------------------------------------------------------


async def claim_slot(
    session: AsyncSession, kind: str, slot_at: datetime, *, owner: str, now: datetime, lease: timedelta
) -> DigestSlot | None:
    """Claim a slot for this replica: insert its row, or take over a claim whose lease ran out.

    Returns the claimed row, or None when another replica holds or finished it.
    """
    slot = DigestSlot(kind=kind, slot_at=slot_at, owner=owner, claimed_at=now, lease_until=now + lease)
    if await insert_unless_duplicate(session, slot):
        return slot
    # The row exists. Take it over only if its claim is stale; the guard in the WHERE makes one winner.
    result = await session.exec(  # type: ignore[call-overload]
        update(DigestSlot)
        .where(
            col(DigestSlot.kind) == kind,
            col(DigestSlot.slot_at) == slot_at,
            col(DigestSlot.state) == SlotState.CLAIMED,
            col(DigestSlot.lease_until) < now,
        )
        .values(owner=owner, claimed_at=now, lease_until=now + lease, generation=DigestSlot.generation + 1)
    )
    if not result.rowcount:
        return None
    return await get_slot(session, kind, slot_at)


async def get_slot(session: AsyncSession, kind: str, slot_at: datetime) -> DigestSlot | None:
    query = select(DigestSlot).where(DigestSlot.kind == kind, DigestSlot.slot_at == slot_at)
    row = (await session.exec(query.execution_options(populate_existing=True))).first()
    return row


async def mark_baseline(session: AsyncSession, kind: str, slot_at: datetime, *, owner: str, now: datetime) -> bool:
    """Record where a schedule starts without posting (the first start of a fresh install)."""
    slot = DigestSlot(kind=kind, slot_at=slot_at, owner=owner, claimed_at=now, state=SlotState.BASELINE,
                      finished_at=now)
    return await insert_unless_duplicate(session, slot)


async def has_slots(session: AsyncSession, kind: str) -> bool:
    row = (await session.exec(select(DigestSlot.id).where(DigestSlot.kind == kind).limit(1))).first()
    return row is not None


async def finish_slot(session: AsyncSession, kind: str, slot_at: datetime, generation: int, *, now: datetime) -> bool:
    """Mark the slot posted; False if a later generation took it over (the caller lost its claim)."""
    result = await session.exec(  # type: ignore[call-overload]
        update(DigestSlot)
        .where(
            col(DigestSlot.kind) == kind,
            col(DigestSlot.slot_at) == slot_at,
            col(DigestSlot.generation) == generation,
            col(DigestSlot.state) == SlotState.CLAIMED,
        )
        .values(state=SlotState.DONE, finished_at=now, lease_until=None)
    )
    return bool(result.rowcount)


async def slots(session: AsyncSession, kind: str) -> list[DigestSlot]:
    return list((await session.exec(select(DigestSlot).where(DigestSlot.kind == kind)
                                    .order_by(col(DigestSlot.slot_at)))).all())


# ---- runs ------------------------------------------------------------------------------------------


async def last_posted_run(session: AsyncSession, kind: str) -> DigestRun | None:
    query = (
        select(DigestRun)
        .where(DigestRun.kind == kind, col(DigestRun.posted_at).is_not(None))
        .order_by(col(DigestRun.period_end).desc(), col(DigestRun.id).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()


async def run_for_job(session: AsyncSession, job_id: int) -> DigestRun | None:
    return (await session.exec(select(DigestRun).where(DigestRun.job_id == job_id))).first()


async def get_run(session: AsyncSession, run_id: int) -> DigestRun | None:
    return await session.get(DigestRun, run_id)


async def posted_runs(session: AsyncSession, kind: str | None = None) -> list[DigestRun]:
    query = select(DigestRun).where(col(DigestRun.posted_at).is_not(None))
    if kind is not None:
        query = query.where(DigestRun.kind == kind)
    return list((await session.exec(query.order_by(col(DigestRun.id)))).all())


# ---- purges ----------------------------------------------------------------------------------------


async def get_purge(session: AsyncSession, purge_id: int, *, for_update: bool = False) -> PurgeRequest | None:
    query = select(PurgeRequest).where(PurgeRequest.id == purge_id).execution_options(populate_existing=True)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def purge_for_run(session: AsyncSession, run_id: int) -> PurgeRequest | None:
    return (await session.exec(select(PurgeRequest).where(PurgeRequest.digest_run_id == run_id))).first()


async def file_purge(session: AsyncSession, purge: PurgeRequest) -> PurgeRequest | None:
    """Insert a purge request; None when one already exists for the same digest (a double click)."""
    return purge if await insert_unless_duplicate(session, purge) else None


async def update_purge(session: AsyncSession, purge_id: int, **values: Any) -> None:
    await session.exec(update(PurgeRequest).where(col(PurgeRequest.id) == purge_id).values(**values))  # type: ignore[call-overload]


async def open_chunk(session: AsyncSession, purge_id: int) -> PurgeChunk | None:
    """A chunk planned but not recorded as done: the previous attempt stopped while deleting it."""
    query = select(PurgeChunk).where(PurgeChunk.purge_id == purge_id, PurgeChunk.state == "planned")
    return (await session.exec(query.order_by(col(PurgeChunk.seq)).limit(1))).first()


async def plan_chunk(session: AsyncSession, purge_id: int, seq: int, ids: list[int], *, now: datetime,
                     subjects: dict[str, Any] | None = None) -> PurgeChunk:
    chunk = PurgeChunk(purge_id=purge_id, seq=seq, ids=ids, created_at=now, subjects=subjects)
    session.add(chunk)
    await session.flush()
    return chunk


async def finish_chunk(
    session: AsyncSession, chunk_id: int, *, deleted: int, gone: int, refused: int, now: datetime
) -> bool:
    result = await session.exec(  # type: ignore[call-overload]
        update(PurgeChunk)
        .where(col(PurgeChunk.id) == chunk_id, col(PurgeChunk.state) == "planned")
        # The contact ids and hashes were needed only until the chunk is done (the hashes now live in
        # erased_subjects); a finished chunk keeps its counts.
        .values(state="done", deleted=deleted, gone=gone, refused=refused, finished_at=now, ids=[], subjects=None)
    )
    return bool(result.rowcount)


async def chunks(session: AsyncSession, purge_id: int) -> list[PurgeChunk]:
    query = select(PurgeChunk).where(PurgeChunk.purge_id == purge_id).order_by(col(PurgeChunk.seq))
    return list((await session.exec(query)).all())


async def purge_figures(session: AsyncSession, since: datetime, until: datetime) -> dict[str, int]:
    """Bulk purges filed, finished and contacts deleted in a period (for the compliance digest)."""
    filed = (await session.exec(
        select(func.count()).select_from(PurgeRequest).where(
            and_(col(PurgeRequest.filed_at) >= since, col(PurgeRequest.filed_at) < until))
    )).one()
    finished = (await session.exec(
        select(func.count(), func.coalesce(func.sum(PurgeRequest.deleted), 0)).select_from(PurgeRequest).where(
            or_(col(PurgeRequest.state) == PurgeState.DONE, col(PurgeRequest.state) == PurgeState.STOPPED),
            col(PurgeRequest.finished_at) >= since, col(PurgeRequest.finished_at) < until,
        )
    )).one()
    return {"filed": int(filed), "completed": int(finished[0]), "contacts_deleted": int(finished[1] or 0)}


async def request_figures(
    session: AsyncSession, since: datetime, until: datetime, *, today: Any, due_soon_days: int
) -> dict[str, Any] | None:
    """Data-subject request figures for the compliance digest, or None while that feature is not built.

    Reads the request feature's table defensively: a missing module or column means "not tracked yet".
    """
    try:
        from storage.requests import PrivacyRequest, awaiting_answer
    except ImportError:
        return None
    try:
        opened = (await session.exec(
            select(func.count()).select_from(PrivacyRequest).where(
                col(PrivacyRequest.received_at) >= since, col(PrivacyRequest.received_at) < until)
        )).one()
        # Closed means the answer went out to the requester, not merely that the bot finished its part.
        closed_rows = (await session.exec(
            select(PrivacyRequest.received_at, PrivacyRequest.responded_at).where(
                col(PrivacyRequest.responded_at) >= since, col(PrivacyRequest.responded_at) < until)
        )).all()
        open_state = awaiting_answer()  # a restriction in force after its answer is no longer due
        overdue = (await session.exec(
            select(func.count()).select_from(PrivacyRequest).where(open_state, col(PrivacyRequest.due_date) < today)
        )).one()
        due_soon = (await session.exec(
            select(func.count()).select_from(PrivacyRequest).where(
                open_state, col(PrivacyRequest.due_date) >= today,
                col(PrivacyRequest.due_date) <= today + timedelta(days=due_soon_days))
        )).one()
        awaiting_cleanup = (await session.exec(
            select(func.count()).select_from(PrivacyRequest).where(col(PrivacyRequest.state) == "cleanup")
        )).one()
    except AttributeError:
        return None
    days = sorted((done - received).total_seconds() / 86400 for received, done in closed_rows if done and received)
    return {"opened": int(opened), "closed": len(closed_rows), "overdue": int(overdue), "due_soon": int(due_soon),
            "awaiting_cleanup": int(awaiting_cleanup),
            "days_to_close": days}


async def update_run(session: AsyncSession, run_id: int, **values: Any) -> None:
    await session.exec(update(DigestRun).where(col(DigestRun.id) == run_id).values(**values))  # type: ignore[call-overload]
