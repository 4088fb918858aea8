"""The durable job runner: works off the ``jobs`` table after the HTTP answer has gone out.

Handlers are registered by kind, already bound to what they need (a feature binds its dependencies when
it registers), so the runner itself knows only the database and the clock. A handler raising
:class:`RetryableJobError` (or any error it does
not classify) is retried with exponential backoff until ``max_attempts``; :class:`PermanentJobError`
fails at once. ``on_failed`` hooks let a feature react to a final failure (a Retry button, say).

Leases are short (``lease``, 8 s) and renewed every ``lease / 3`` while the handler runs, so work held by a
process that died is taken over within seconds, not minutes. A runner that cannot renew in time (the row
was taken over, or the database did not answer before the lease ran out) stops the handler by cancelling
it: its open transaction rolls back, and it neither commits nor finishes while another runner may hold the
job. Handlers stay idempotent all the same: a takeover re-runs whatever the lost attempt had already done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock, system_clock
from storage import jobs as queue
from storage.db import SessionFactory, unit_of_work
from storage.types import utcnow

log = logging.getLogger(__name__)


class RetryableJobError(Exception):
    """A transient failure (Mautic 5xx/429, a timeout): try again later."""


class PermanentJobError(Exception):
    """Retrying cannot help (a 4xx from Mautic, missing data): fail now."""


@dataclass(frozen=True)
class JobRun:
    """What a handler gets: the job's identity and payload, and a way to checkpoint progress."""

    id: int
    kind: str
    attempt: int
    max_attempts: int
    payload: dict[str, Any]
    progress: dict[str, Any]
    sessions: SessionFactory

    async def checkpoint(self, progress: dict[str, Any]) -> None:
        async with unit_of_work(self.sessions) as session:
            await queue.save_progress(session, self.id, progress)


JobHandler = Callable[[JobRun], Awaitable[None]]
FailureHook = Callable[[JobRun, str], Awaitable[None]]
# Told when a job settles: (job id, kind, outcome), outcome one of "done", "retry", "failed", or "lost" (the
# lease ran out under this runner: the handler was stopped and another runner takes the job over).
SettleObserver = Callable[[int, str, str], None]


@dataclass
class JobRunner:
    sessions: SessionFactory
    clock: Clock = system_clock
    lease: timedelta = timedelta(seconds=8)
    # The handler is stopped this long before its lease runs out unrenewed, so another runner (whose clock
    # may be a little ahead) cannot take the job over while this one still commits.
    lease_margin: timedelta = timedelta(seconds=1)
    poll_interval: float = 2.0
    concurrency: int = 4
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    handlers: dict[str, JobHandler] = field(default_factory=dict)
    failure_hooks: dict[str, FailureHook] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _running: dict[asyncio.Task[None], JobRun] = field(default_factory=dict)
    _stopping: bool = False
    _observers: list[SettleObserver] = field(default_factory=list)
    _next_due: datetime | None = None  # when the next job becomes claimable, as last looked up

    def register(self, kind: str, handler: JobHandler, *, on_failed: FailureHook | None = None) -> None:
        self.handlers[kind] = handler
        if on_failed is not None:
            self.failure_hooks[kind] = on_failed

    def observe(self, observer: SettleObserver) -> Callable[[], None]:
        """Call ``observer`` whenever a job settles here (the demo, tests and benchmarks wait on this
        instead of polling the table); returns the function that stops observing. Nothing is kept
        once nobody observes."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def _settle(self, run: JobRun, outcome: str) -> None:
        for observer in list(self._observers):
            observer(run.id, run.kind, outcome)

    def notify(self) -> None:
        """Wake the loop now: a job was just enqueued in this process."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="job-runner")

    async def stop(self, *, grace: float = 10.0) -> None:
        # Ask the loop to finish its iteration rather than cancelling it: a task cancelled inside a
        # unit of work can leave SQLite's write lock with an orphaned connection.
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._running:
            _done, pending = await asyncio.wait(set(self._running), timeout=grace)
            cut_off = [self._running[task] for task in pending if task in self._running]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            # Jobs cut off here are given up at once, so the next start (or another replica) takes them over
            # without waiting for their leases to run out.
            if cut_off:
                with contextlib.suppress(Exception):
                    async with unit_of_work(self.sessions) as session:
                        for run in cut_off:
                            await queue.release(session, run.id, run.attempt)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job loop iteration failed")
            if self._stopping:
                break
            # Wake at the next poll, or sooner when a job becomes due (a retry's backoff ends, or the lease of
            # a job held by a process that died runs out): a takeover then waits for the lease alone.
            wait = self.poll_interval
            if self._next_due is not None:
                # Not sooner than 50 ms: a due row another replica is claiming right now must not spin this loop.
                wait = min(wait, max(0.05, (self._next_due - utcnow()).total_seconds() + 0.01))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            self._wake.clear()

    async def run_due(self) -> int:
        """Claim and start what is due; returns how many jobs were started."""
        free = self.concurrency - len(self._running)
        if free <= 0 or not self.handlers or self._stopping:
            self._next_due = None  # a slot coming free wakes the loop anyway
            return 0
        # A job this runner still works on is never claimed again here, even if its lease ran out.
        mine = [run.id for run in self._running.values()]
        async with unit_of_work(self.sessions) as session:
            claimed = await queue.claim(session, kinds=list(self.handlers), limit=free, lease=self.lease,
                                        exclude=mine)
            runs = [(job.id, job.kind, job.attempts, job.max_attempts, dict(job.payload), dict(job.progress))
                    for job in claimed]
            self._next_due = await queue.next_due(session, kinds=list(self.handlers),
                                                  exclude=[*mine, *(job.id for job in claimed if job.id)])
        for job_id, kind, attempt, max_attempts, payload, progress in runs:
            assert job_id is not None
            run = JobRun(job_id, kind, attempt, max_attempts, payload, progress, self.sessions)
            task = asyncio.create_task(self._execute(run), name=f"job-{kind}-{job_id}")
            self._running[task] = run
            task.add_done_callback(self._job_done)
        return len(runs)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        # A slot came free: look for more work without waiting for the poll.
        self._wake.set()

    async def _execute(self, run: JobRun) -> None:
        # The row's lease counts from the claim a moment ago; counting from now is that moment late, which
        # lease_margin (stopping the handler a second early) more than covers.
        held_until = asyncio.get_running_loop().time() + self.lease.total_seconds()
        work: asyncio.Future[None] = asyncio.ensure_future(self.handlers[run.kind](run))
        try:
            lost = await self._hold_lease(run, work, held_until)
        except asyncio.CancelledError:  # the runner is stopping: so does the handler
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            raise
        if lost:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            log.warning("job %s #%s lost its lease and was stopped; another runner takes it over", run.kind, run.id)
            self._settle(run, "lost")
            return
        try:
            await work  # done by now: this hands over its outcome
        except asyncio.CancelledError:
            raise
        except PermanentJobError as exc:
            await self._fail(run, str(exc) or type(exc).__name__)
            self._settle(run, "failed")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if run.attempt >= run.max_attempts:
                await self._fail(run, error)
                self._settle(run, "failed")
            else:
                delay = min(self.backoff_cap, self.backoff_base * 2 ** (run.attempt - 1))
                delay *= 0.5 + random.random() / 2  # noqa: S311 - jitter, not security
                log.warning("job %s #%s attempt %s failed, retrying in %.1fs: %s",
                            run.kind, run.id, run.attempt, delay, type(exc).__name__)
                async with unit_of_work(self.sessions) as session:
                    await queue.retry_later(
                        session, run.id, run.attempt, error=error,
                        at=self.clock() + timedelta(seconds=delay),
                    )
                self._settle(run, "retry")
        else:
            async with unit_of_work(self.sessions) as session:
                finished = await queue.finish(session, run.id, run.attempt)
            self._settle(run, "done" if finished else "lost")

    async def _hold_lease(self, run: JobRun, work: asyncio.Future[None], held_until: float) -> bool:
        """Renew the lease every ``lease / 3`` until ``work`` ends; True if ``work`` was stopped for a lost lease.

        A renewal runs as its own task and is never cancelled (a unit of work cut off mid-statement can leave
        SQLite's write lock behind). If the lease is not confirmed by ``lease_margin`` before it runs out (the
        database does not answer), or the row says another runner has the job, the handler is cancelled.
        """
        loop = asyncio.get_running_loop()
        lease = self.lease.total_seconds()
        interval = lease / 3
        margin = self.lease_margin.total_seconds()
        renewal: asyncio.Task[bool] | None = None
        started = next_at = loop.time() + interval
        while True:
            if renewal is None and loop.time() >= next_at:
                started = loop.time()
                renewal = asyncio.create_task(self._renew(run), name=f"job-{run.kind}-{run.id}-lease")
                renewal.add_done_callback(_consume)
            deadline = held_until - margin
            wake = deadline if renewal is not None else min(next_at, deadline)
            waits: set[asyncio.Future[Any]] = {work} if renewal is None else {work, renewal}
            await asyncio.wait(waits, timeout=max(0.0, wake - loop.time()), return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                return False
            if renewal is not None and renewal.done():
                failed = renewal.cancelled() or renewal.exception() is not None
                held = not failed and renewal.result()
                renewal = None
                if held:
                    held_until, next_at = started + lease, started + interval
                    continue
                if not failed:  # taken over by another runner (or settled) meanwhile
                    work.cancel()
                    return True
                next_at = loop.time() + min(1.0, interval / 3)  # the database did not answer: try again soon
            if loop.time() >= deadline:
                work.cancel()
                return True

    async def _renew(self, run: JobRun) -> bool:
        try:
            async with unit_of_work(self.sessions) as session:
                return await queue.extend_lease(session, run.id, run.attempt, self.clock() + self.lease)
        except Exception as exc:
            log.warning("job %s #%s: lease not renewed (%s)", run.kind, run.id, type(exc).__name__)
            raise

    async def _fail(self, run: JobRun, error: str) -> None:
        log.error("job %s #%s failed for good after %s attempts", run.kind, run.id, run.attempt)
        async with unit_of_work(self.sessions) as session:
            failed = await queue.fail(session, run.id, run.attempt, error=error)
        hook = self.failure_hooks.get(run.kind)
        if failed and hook is not None:
            try:
                await hook(run, error)
            except Exception:
                log.exception("failure hook of job %s #%s raised", run.kind, run.id)


def _consume(task: asyncio.Task[Any]) -> None:
    """Mark a renewal's failure as seen (it was logged); a renewal outliving its job is not awaited."""
    if not task.cancelled():
        task.exception()
