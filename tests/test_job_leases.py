"""Short job leases kept alive by renewals: a long job stays with its runner, a dead runner's job is taken
over as soon as its lease runs out, and a runner that loses its lease stops the handler before it commits."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlmodel import select

from bot.jobs import JobRun, JobRunner
from sandbox.jobs import JobWatcher
from storage import jobs as queue
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.jobs import Job, JobState
from storage.migrate import migrate
from storage.types import utcnow

SHORT = timedelta(seconds=0.4)


async def _setup(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    await migrate(engine)
    return engine, make_session_factory(engine)


def _runner(sessions: Any, lease: timedelta = SHORT, poll: float = 0.05) -> tuple[JobRunner, JobWatcher]:
    runner = JobRunner(sessions, poll_interval=poll, backoff_base=0.01, lease=lease,
                       lease_margin=lease / 4)
    watcher = JobWatcher()
    runner.observe(watcher)
    return runner, watcher


async def _enqueue(sessions: Any, kind: str) -> int:
    async with unit_of_work(sessions) as session:
        job = await queue.enqueue(session, kind, {})
        assert job is not None and job.id is not None
        return job.id


async def _job(sessions: Any, job_id: int) -> Job:
    async with unit_of_work(sessions) as session:
        return (await session.exec(select(Job).where(Job.id == job_id))).one()


async def test_renewals_keep_a_long_job_with_its_runner(sqlite_url: str) -> None:
    """A job running for several leases is not taken over by a second runner polling the same table. (SQLite
    only: it waits out real leases, and the renewal's UPDATE is the same on both backends.)"""
    engine, sessions = await _setup(sqlite_url)
    engine_b = make_engine(sqlite_url)
    runs: list[int] = []
    started = asyncio.Event()

    async def long(run: JobRun) -> None:
        runs.append(run.attempt)
        started.set()
        await asyncio.sleep(2.5 * lease.total_seconds())  # the work itself: two and a half leases long

    # Longer than SHORT: a renewal must land before the lease runs out. With 1 s, a full suite on a slow
    # 2-core box (xdist, PostgreSQL beside it) once saw a renewal wait out the lease in SQLite's busy handler.
    lease = timedelta(seconds=2)
    runner_a, watcher_a = _runner(sessions, lease=lease)
    runner_b, watcher_b = _runner(make_session_factory(engine_b))
    runner_a.register("long", long)
    job_id = await _enqueue(sessions, "long")
    runner_a.start()
    await asyncio.wait_for(started.wait(), 5)
    runner_b.register("long", long)
    runner_b.start()
    await watcher_a.wait_for(job_id, "done", timeout=20)
    await runner_a.stop()
    await runner_b.stop()
    job = await _job(sessions, job_id)
    await engine_b.dispose()
    await engine.dispose()
    assert runs == [1]
    assert watcher_b.outcomes == {}
    assert (job.state, job.attempts) == (JobState.DONE, 1)


async def test_a_dead_runners_job_is_taken_over_when_its_short_lease_runs_out(db_url: str) -> None:
    """Taken over when the lease ends, not at the next poll: the runner wakes when the lease runs out."""
    engine, sessions = await _setup(db_url)
    job_id = await _enqueue(sessions, "k")
    async with unit_of_work(sessions) as session:  # a runner claims the job, then its process dies
        (dead,) = await queue.claim(session, kinds=["k"], limit=1, lease=SHORT)
    ran: list[int] = []

    async def work(run: JobRun) -> None:
        ran.append(run.attempt)

    runner, watcher = _runner(sessions, poll=60.0)  # a poll would come far too late for the wait below
    runner.register("k", work)
    runner.start()
    await watcher.wait_for(job_id, "done", timeout=10)
    await runner.stop()
    job = await _job(sessions, job_id)
    await engine.dispose()
    assert dead.attempts == 1 and ran == [2]
    assert (job.state, job.attempts) == (JobState.DONE, 2)


async def test_a_runner_whose_job_was_taken_over_stops_the_handler_before_it_commits(db_url: str) -> None:
    engine, sessions = await _setup(db_url)
    started, cancelled = asyncio.Event(), asyncio.Event()
    gate = asyncio.Event()  # never set: the handler would commit only after it
    committed: list[int] = []

    async def slow(run: JobRun) -> None:
        started.set()
        try:
            await gate.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        committed.append(run.attempt)

    runner, watcher = _runner(sessions)
    runner.register("slow", slow)
    job_id = await _enqueue(sessions, "slow")
    runner.start()
    await asyncio.wait_for(started.wait(), 5)
    # Another replica takes the job over (as if this runner had stalled past its lease).
    async with unit_of_work(sessions) as session:
        (other,) = await queue.claim(session, kinds=["slow"], limit=1, lease=timedelta(minutes=5),
                                     now=utcnow() + timedelta(minutes=1))
    await asyncio.wait_for(cancelled.wait(), 5)
    await watcher.wait_for(job_id, "lost", timeout=5)
    await runner.stop()
    job = await _job(sessions, job_id)
    await engine.dispose()
    assert committed == []
    assert (job.state, job.attempts) == (JobState.RUNNING, other.attempts) and other.attempts == 2


async def test_a_runner_that_cannot_renew_stops_the_handler_before_its_lease_runs_out(sqlite_url: str) -> None:
    """The database does not answer the renewal: the handler is stopped ``lease_margin`` before the lease
    ends, so another runner that takes the job over never overlaps with it. (The runner's own timing: one
    backend is enough.)"""
    engine, sessions = await _setup(sqlite_url)
    stopped_at: list[float] = []
    started = asyncio.Event()

    async def slow(run: JobRun) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped_at.append(asyncio.get_running_loop().time())
            raise

    runner, watcher = _runner(sessions)
    hung = asyncio.Event()

    async def renewal_that_never_answers(run: JobRun) -> bool:
        await hung.wait()
        return True

    runner._renew = renewal_that_never_answers  # type: ignore[method-assign]
    runner.register("slow", slow)
    job_id = await _enqueue(sessions, "slow")
    runner.start()
    await asyncio.wait_for(started.wait(), 5)
    await watcher.wait_for(job_id, "lost", timeout=5)
    job = await _job(sessions, job_id)
    hung.set()
    await runner.stop()
    await engine.dispose()
    assert len(stopped_at) == 1
    assert job.lease_until is not None and utcnow() < job.lease_until + SHORT  # stopped within its lease


async def test_stop_gives_up_the_leases_of_jobs_it_cuts_off(db_url: str) -> None:
    engine, sessions = await _setup(db_url)
    started = asyncio.Event()

    async def slow(run: JobRun) -> None:
        started.set()
        await asyncio.Event().wait()

    runner, _watcher = _runner(sessions, lease=timedelta(minutes=5))
    runner.register("slow", slow)
    job_id = await _enqueue(sessions, "slow")
    runner.start()
    await asyncio.wait_for(started.wait(), 5)
    await runner.stop(grace=0.05)
    async with unit_of_work(sessions) as session:  # the next start takes it at once, not in five minutes
        taken = await queue.claim(session, kinds=["slow"], limit=1, lease=SHORT)
    await engine.dispose()
    assert [job.id for job in taken] == [job_id]
