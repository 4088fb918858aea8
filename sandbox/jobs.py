"""Waiting for durable jobs to settle, for tests, the demo and benchmarks (never by polling or sleeping).

A :class:`JobWatcher` is an observer for :class:`~bot.jobs.JobRunner` (``runner.observe(watcher)``, or
``Tuning(job_observers=(watcher,))`` so it sees every job from the runner's start) and remembers each
job's outcomes ("done", "retry", "failed") for its own lifetime only.
"""

from __future__ import annotations

import asyncio


class JobWatcher:
    def __init__(self) -> None:
        self.outcomes: dict[int, list[str]] = {}
        self._waiters: list[tuple[int, str, asyncio.Future[None]]] = []

    def __call__(self, job_id: int, kind: str, outcome: str) -> None:
        self.outcomes.setdefault(job_id, []).append(outcome)
        for waiter in [w for w in self._waiters if w[0] == job_id and w[1] == outcome]:
            self._waiters.remove(waiter)
            if not waiter[2].done():
                waiter[2].set_result(None)

    async def wait_for(self, job_id: int, outcome: str = "done", *, timeout: float = 10.0) -> None:
        """Wait until job ``job_id`` has reached ``outcome`` (at once if it already has)."""
        if outcome in self.outcomes.get(job_id, []):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (job_id, outcome, future)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
