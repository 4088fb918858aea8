"""Shared helpers of the digest tests: a controllable clock and a seeded Mautic stand-in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.mautic import FakeMautic

# A Monday, 09:00 UTC plus a little: the default DIGEST_CRON slot has just come due. In the past, so
# the job queue (which compares run_after with the wall clock) never waits for it.
MONDAY = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
RETENTION = 1095


class Clock:
    def __init__(self, now: datetime = MONDAY) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Seeded:
    active: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)  # last active before the cutoff
    never_old: list[int] = field(default_factory=list)  # never active, added before the cutoff: stale
    never_new: list[int] = field(default_factory=list)  # never active, added recently: kept

    @property
    def purgeable(self) -> list[int]:
        return sorted(self.stale + self.never_old)


def seed_contacts(
    mautic: FakeMautic, now: datetime, *, active: int = 4, stale: int = 5, never_old: int = 2, never_new: int = 2,
    segment: dict[str, Any] | None = None,
) -> Seeded:
    cutoff = now - timedelta(days=RETENTION)
    seeded = Seeded()
    for i in range(active):
        seeded.active.append(mautic.add_contact(
            email=f"active{i}@example.com", last_active=now - timedelta(days=10 + i),
            date_added=cutoff - timedelta(days=400)))
    for i in range(stale):
        seeded.stale.append(mautic.add_contact(
            email=f"stale{i}@example.com", last_active=cutoff - timedelta(days=1 + i),
            date_added=cutoff - timedelta(days=900), segments=[1] if i % 2 == 0 else [2]))
    for i in range(never_old):
        seeded.never_old.append(mautic.add_contact(
            email=f"neverold{i}@example.com", date_added=cutoff - timedelta(days=3 + i)))
    for i in range(never_new):
        seeded.never_new.append(mautic.add_contact(
            email=f"nevernew{i}@example.com", date_added=now - timedelta(days=20 + i)))
    return seeded
