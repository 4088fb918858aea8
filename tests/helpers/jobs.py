"""Wait for the durable job queue of a running service."""

from __future__ import annotations

from sqlmodel import select

from sandbox.harness import Sandbox
from storage.db import unit_of_work
from storage.jobs import Job


async def job_finished(box: Sandbox, kind: str, timeout: float = 10.0) -> Job:
    """The one job of ``kind``, once the runner has marked it done."""
    async with unit_of_work(box.services.sessions) as session:
        (job,) = (await session.exec(select(Job).where(Job.kind == kind))).all()
    assert job.id is not None
    await box.jobs.wait_for(job.id, timeout=timeout)
    async with unit_of_work(box.services.sessions) as session:
        done = await session.get(Job, job.id)
    assert done is not None and done.state == "done"
    return done
