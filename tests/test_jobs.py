"""The durable job runner: retries with backoff, fails for good with a hook, survives a lost
worker through lease expiry, and runs a job once across two runners on one database."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlmodel import select

from bot.jobs import JobRun, JobRunner, PermanentJobError
from sandbox.jobs import JobWatcher
from storage import jobs as queue
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.jobs import Job, JobState
from storage.migrate import migrate


async def _setup(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    await migrate(engine)
    return engine, make_session_factory(engine)


def _runner(sessions: Any, **kwargs: Any) -> tuple[JobRunner, JobWatcher]:
    runner = JobRunner(sessions, poll_interval=0.05, backoff_base=0.01, **kwargs)
    watcher = JobWatcher()
    runner.observe(watcher)
    return runner, watcher


async def _enqueue(sessions: Any, kind: str, payload: dict[str, Any], **kwargs: Any) -> int:
    async with unit_of_work(sessions) as session:
        job = await queue.enqueue(session, kind, payload, **kwargs)
        assert job is not None and job.id is not None
        return job.id


async def _job(sessions: Any, job_id: int) -> Job:
    async with unit_of_work(sessions) as session:
        job = (await session.exec(select(Job).where(Job.id == job_id))).one()
        return job


async def test_retries_then_succeeds(db_url: str) -> None:
    engine, sessions = await _setup(db_url)
    attempts: list[int] = []
    done = asyncio.Event()

    async def flaky(run: JobRun) -> None:
        attempts.append(run.attempt)
        if run.attempt < 3:
            raise ConnectionError("Mautic timed out")
        done.set()

    runner, watcher = _runner(sessions)
    runner.register("flaky", flaky)
    job_id = await _enqueue(sessions, "flaky", {"x": 1}, max_attempts=5)
    runner.start()
    await watcher.wait_for(job_id, "done", timeout=5)
    await runner.stop()
    job = await _job(sessions, job_id)
    await engine.dispose()
    assert done.is_set()
    assert attempts == [1, 2, 3]
    assert watcher.outcomes[job_id] == ["retry", "retry", "done"]
    assert (job.state, job.attempts) == (JobState.DONE, 3)


async def test_exhausted_and_permanent_failures_call_the_hook_once(db_url: str) -> None:
    engine, sessions = await _setup(db_url)
    failures: list[tuple[int, str]] = []
    hooked = asyncio.Event()

    async def always_down(run: JobRun) -> None:
        raise ConnectionError("503 from Mautic")

    async def bad_input(run: JobRun) -> None:
        raise PermanentJobError("contact field does not exist")

    async def on_failed(run: JobRun, error: str) -> None:
        failures.append((run.id, error))
        if len(failures) == 2:
            hooked.set()

    runner, _watcher = _runner(sessions)
    runner.register("down", always_down, on_failed=on_failed)
    runner.register("bad", bad_input, on_failed=on_failed)
    down_id = await _enqueue(sessions, "down", {}, max_attempts=2)
    bad_id = await _enqueue(sessions, "bad", {}, max_attempts=5)
    runner.start()
    await asyncio.wait_for(hooked.wait(), 5)
    await runner.stop()
    down, bad = await _job(sessions, down_id), await _job(sessions, bad_id)
    await engine.dispose()
    assert (down.state, down.attempts) == (JobState.FAILED, 2)
    assert (bad.state, bad.attempts) == (JobState.FAILED, 1)
    assert dict(failures)[bad_id] == "contact field does not exist"
    assert "503 from Mautic" in dict(failures)[down_id]


async def test_requeue_gives_a_failed_job_fresh_attempts(db_url: str) -> None:
    engine, sessions = await _setup(db_url)
    job_id = await _enqueue(sessions, "k", {}, max_attempts=1)
    async with unit_of_work(sessions) as session:
        (job,) = await queue.claim(session, kinds=["k"], limit=1, lease=timedelta(seconds=30))
        assert await queue.fail(session, job_id, job.attempts, error="boom")
    async with unit_of_work(sessions) as session:
        assert await queue.requeue(session, job_id)
        assert not await queue.requeue(session, job_id)  # a second Retry click changes nothing
    job = await _job(sessions, job_id)
    await engine.dispose()
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)


async def test_dedupe_key_enqueues_once(db_url: str) -> None:
    engine, sessions = await _setup(db_url)
    async with unit_of_work(sessions) as session:
        first = await queue.enqueue(session, "k", {}, dedupe_key="erase:request:7")
        second = await queue.enqueue(session, "k", {}, dedupe_key="erase:request:7")
    async with unit_of_work(sessions) as session:
        third = await queue.enqueue(session, "k", {}, dedupe_key="erase:request:7")
        rows = (await session.exec(select(Job))).all()
    await engine.dispose()
    assert first is not None and second is None and third is None
    assert len(rows) == 1


async def test_expired_lease_is_taken_over_and_the_stale_worker_cannot_finish(db_url: str) -> None:
    engine, sessions = await _setup(db_url)
    job_id = await _enqueue(sessions, "k", {})
    async with unit_of_work(sessions) as session:
        (crashed,) = await queue.claim(session, kinds=["k"], limit=1, lease=timedelta(seconds=-1))
    async with unit_of_work(sessions) as session:
        (again,) = await queue.claim(session, kinds=["k"], limit=1, lease=timedelta(seconds=60))
    async with unit_of_work(sessions) as session:
        stale_finish = await queue.finish(session, job_id, crashed.attempts)
        fresh_finish = await queue.finish(session, job_id, again.attempts)
    await engine.dispose()
    assert again.id == job_id and again.attempts == 2
    assert not stale_finish and fresh_finish


async def test_two_runners_on_one_database_run_each_job_once(db_url: str) -> None:
    engine, sessions = await _setup(db_url)
    ran: list[int] = []
    all_done = asyncio.Event()
    n = 30

    async def work(run: JobRun) -> None:
        ran.append(run.payload["n"])
        await asyncio.sleep(0.005)  # simulated I/O so both runners interleave
        if len(ran) >= n:
            all_done.set()

    # Two runners with separate engines stand in for two replicas.
    engine_b = make_engine(db_url)
    sessions_b = make_session_factory(engine_b)
    runner_a, watcher_a = _runner(sessions)
    runner_b, watcher_b = _runner(sessions_b)
    for runner in (runner_a, runner_b):
        runner.register("work", work)
    ids = [await _enqueue(sessions, "work", {"n": i}) for i in range(n)]
    runner_a.start()
    runner_b.start()
    await asyncio.wait_for(all_done.wait(), 10)

    async def settled(job_id: int) -> None:
        # Whichever runner claimed the job reports it; the other never sees it.
        waits = [asyncio.create_task(r.wait_for(job_id, timeout=10)) for r in (watcher_a, watcher_b)]
        finished, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*finished)

    await asyncio.gather(*(settled(job_id) for job_id in ids))
    async with unit_of_work(sessions) as session:
        states = (await session.exec(select(Job.state))).all()
    await runner_a.stop()
    await runner_b.stop()
    await engine_b.dispose()
    await engine.dispose()
    assert sorted(ran) == list(range(n))
    assert set(states) == {JobState.DONE}
    assert len(watcher_a.outcomes) + len(watcher_b.outcomes) == n
