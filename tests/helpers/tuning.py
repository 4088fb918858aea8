"""The tuning every test service runs with."""

from __future__ import annotations

from bot.app import Tuning
from bot.clock import Clock, system_clock


def test_tuning(clock: Clock = system_clock, *, start_scheduler: bool = False) -> Tuning:
    """Fast polling and backoff so tests wait milliseconds, not seconds, for durable jobs."""
    return Tuning(clock=clock, job_poll_interval=0.2, job_backoff_base=0.02, start_scheduler=start_scheduler,
                  migrate_on_start=True)


test_tuning.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test, when imported by name
