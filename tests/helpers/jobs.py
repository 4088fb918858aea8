"""Wait for the durable job queue of a running service."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from sandbox.harness import Sandbox
from storage.db import unit_of_work
from storage.jobs import Job, JobState


async def jobs_idle(box: Sandbox, timeout: float = 10.0) -> None:
    """Wait until no job is queued or running (the runner notifies the fake only through its calls)."""

    async def idle() -> bool:
        async with unit_of_work(box.services.sessions) as session:
            busy = (await session.exec(
                select(Job).where(Job.state.in_([JobState.QUEUED, JobState.RUNNING]))  # type: ignore[attr-defined]
            )).all()
            return not busy

    deadline = asyncio.get_running_loop().time() + timeout
    while not await idle():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"jobs still busy after {timeout}s")
        await asyncio.sleep(0.05)


async def job_finished(box: Sandbox, kind: str) -> Job:
    """The runner marks a job done right after its handler returns; wait (bounded) for that write."""
    for _ in range(100):
        async with unit_of_work(box.services.sessions) as session:
            (job,) = (await session.exec(select(Job).where(Job.kind == kind))).all()
        if job.state == "done":
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {kind} is still {job.state}")
