"""Waiting for durable jobs to settle, for tests, the demo and benchmarks (never by polling or sleeping).

A :class:`JobWatcher` is an observer for :class:`~bot.jobs.JobRunner` (``runner.observe(watcher)``, or
``Tuning(job_observers=(watcher,))`` so it sees every job from the runner's start) and remembers each
job's outcomes ("done", "retry", "failed") for its own lifetime only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class JobWatcher:
    def __init__(self) -> None:
        self.outcomes: dict[int, list[str]] = {}
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def __call__(self, job_id: int, kind: str, outcome: str) -> None:
        self.outcomes.setdefault(job_id, []).append(outcome)
        for waiter in [w for w in self._waiters if w[0]()]:
            self._waiters.remove(waiter)
            if not waiter[1].done():
                waiter[1].set_result(None)

    def seen(self, job_id: int) -> int:
        """How many outcomes job ``job_id`` has had so far (a retried job has one per attempt)."""
        return len(self.outcomes.get(job_id, []))

    async def wait_for(self, job_id: int, outcome: str = "done", *, timeout: float = 10.0) -> None:
        """Wait until job ``job_id`` has reached ``outcome`` (at once if it already has)."""
        await self._until(lambda: outcome in self.outcomes.get(job_id, []), timeout)

    async def wait_past(self, job_id: int, seen: int, *, timeout: float = 10.0) -> None:
        """Wait until job ``job_id`` has had more than ``seen`` outcomes (see :meth:`seen`)."""
        await self._until(lambda: self.seen(job_id) > seen, timeout)

    async def _until(self, condition: Callable[[], bool], timeout: float) -> None:
        if condition():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (condition, future)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
