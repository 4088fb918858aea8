"""The durable job runner: works off the ``jobs`` table after the HTTP answer has gone out.

Handlers are registered by kind, already bound to what they need (a feature binds its dependencies when
it registers), so the runner itself knows only the database and the clock. A handler raising
:class:`RetryableJobError` (or any error it does
not classify) is retried with exponential backoff until ``max_attempts``; :class:`PermanentJobError`
fails at once. ``on_failed`` hooks let a feature react to a final failure (a Retry button, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.clock import Clock, system_clock
from storage import jobs as queue
from storage.db import SessionFactory, unit_of_work

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
# Told when a job settles: (job id, kind, outcome), outcome one of "done", "retry", "failed".
SettleObserver = Callable[[int, str, str], None]


@dataclass
class JobRunner:
    sessions: SessionFactory
    clock: Clock = system_clock
    lease: timedelta = timedelta(seconds=60)
    poll_interval: float = 2.0
    concurrency: int = 4
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    handlers: dict[str, JobHandler] = field(default_factory=dict)
    failure_hooks: dict[str, FailureHook] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _running: set[asyncio.Task[None]] = field(default_factory=set)
    _stopping: bool = False
    _observers: list[SettleObserver] = field(default_factory=list)

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
            # Unfinished jobs keep their lease; another start picks them up after it expires.
            _done, pending = await asyncio.wait(self._running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            self._wake.clear()

    async def run_due(self) -> int:
        """Claim and start what is due; returns how many jobs were started."""
        free = self.concurrency - len(self._running)
        if free <= 0 or not self.handlers or self._stopping:
            return 0
        async with unit_of_work(self.sessions) as session:
            claimed = await queue.claim(session, kinds=list(self.handlers), limit=free, lease=self.lease)
            runs = [(job.id, job.kind, job.attempts, job.max_attempts, dict(job.payload), dict(job.progress))
                    for job in claimed]
        for job_id, kind, attempt, max_attempts, payload, progress in runs:
            assert job_id is not None
            run = JobRun(job_id, kind, attempt, max_attempts, payload, progress, self.sessions)
            task = asyncio.create_task(self._execute(run), name=f"job-{kind}-{job_id}")
            self._running.add(task)
            task.add_done_callback(self._job_done)
        return len(runs)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        # A slot came free: look for more work without waiting for the poll.
        self._wake.set()

    async def _execute(self, run: JobRun) -> None:
        finished = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(run, finished))
        try:
            await self.handlers[run.kind](run)
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
                await queue.finish(session, run.id, run.attempt)
            self._settle(run, "done")
        finally:
            finished.set()
            await heartbeat

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

    async def _heartbeat(self, run: JobRun, finished: asyncio.Event) -> None:
        """Extend the lease while the job runs; ends when the job does, never mid-transaction."""
        while True:
            try:
                await asyncio.wait_for(finished.wait(), timeout=self.lease.total_seconds() / 3)
                return
            except TimeoutError:
                pass
            async with unit_of_work(self.sessions) as session:
                await queue.extend_lease(session, run.id, run.attempt, self.clock() + self.lease)
