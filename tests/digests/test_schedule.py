"""Scheduled digests: one post per slot across replicas, one catch-up run for missed slots, stale claims."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from sqlmodel import select

from bot.app import create_app
from bot.digests import slots
from bot.digests.jobs import POST_KIND
from handlers.appkeys import SERVICES
from sandbox.harness import Sandbox, sandbox
from storage import digests as store
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.jobs import Job
from storage.migrate import migrate
from tests.digests.helpers import MONDAY, Clock, seed_contacts
from tests.helpers import test_tuning


async def _digest_jobs(box: Sandbox) -> list[Job]:
    async with unit_of_work(box.services.sessions) as session:
        return list((await session.exec(select(Job).where(Job.kind == POST_KIND))).all())


async def _slot_times(box: Sandbox, kind: str) -> list[tuple[datetime, str]]:
    async with unit_of_work(box.services.sessions) as session:
        return [(s.slot_at, s.state) for s in await store.slots(session, kind)]


async def _all_posted(box: Sandbox, count: int) -> None:
    await box.slack.wait_for("chat.postMessage", count, timeout=15)


async def test_slot_runners_racing_in_one_process_claim_each_slot_once(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        seed_contacts(box.mautic, clock(), stale=1)
        slot = datetime(2026, 3, 2, 9, tzinfo=UTC)
        results = await asyncio.gather(*(slots.run_slot(box.services, "retention", slot) for _ in range(6)))
        assert results.count(True) == 1
        await _all_posted(box, 1)
        assert len(await _digest_jobs(box)) == 1
    assert len(box.slack.calls_to("chat.postMessage")) == 1


@pytest.mark.postgres  # `-m "not postgres"` (make mutate) must leave it out too
async def test_two_replicas_post_one_digest_per_slot(postgres_url: str, tmp_path: Path) -> None:
    """Several replicas share one PostgreSQL (SQLite deployments run a single replica)."""
    clock = Clock()
    async with sandbox(postgres_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        seed_contacts(box.mautic, clock(), stale=3)
        # A second replica: its own app, engine, job runner and scheduler entry points, on the same database.
        other = web.AppRunner(create_app(box.settings, box.tuning), handle_signals=False)
        await other.setup()
        try:
            replicas = [box.services, other.app[SERVICES]]
            for week in range(2):
                clock.now = MONDAY + timedelta(days=7 * week)
                results = await asyncio.gather(*(
                    slots.tick(services, kind)
                    for kind in ("retention", "compliance") for services in replicas for _ in range(2)
                ))
                assert results.count(True) == 2, results  # one winner per digest kind
            await _all_posted(box, 4)
        finally:
            await other.cleanup()
        assert len(await _digest_jobs(box)) == 4  # one job per claimed slot, and a job posts once
        assert [t for t, _ in await _slot_times(box, "retention")] == [
            datetime(2026, 3, 2, 9, tzinfo=UTC), datetime(2026, 3, 9, 9, tzinfo=UTC)]
    # Everything has stopped (job runners drained): the count is final.
    posts = box.slack.calls_to("chat.postMessage")
    assert len(posts) == 4
    assert sum("Retention digest" in p.params["text"] for p in posts) == 2
    assert sum("Compliance digest" in p.params["text"] for p in posts) == 2


async def test_missed_slots_run_once_at_the_next_start(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        seed_contacts(box.mautic, clock(), stale=2)
        assert await slots.tick(box.services, "retention")
        assert await slots.tick(box.services, "compliance")
        await _all_posted(box, 2)

        await box.stop_bot()  # every replica down for three Mondays
        clock.advance(days=23)
        box.tuning = test_tuning(clock, start_scheduler=True)  # the real start-up path: APScheduler's catch-up sweep
        await box.start_bot()
        await _all_posted(box, 4)
        assert [t for t, _ in await _slot_times(box, "retention")] == [
            datetime(2026, 3, 2, 9, tzinfo=UTC), datetime(2026, 3, 23, 9, tzinfo=UTC)]
        assert [t for t, _ in await _slot_times(box, "compliance")] == [
            datetime(2026, 3, 2, 9, tzinfo=UTC), datetime(2026, 3, 23, 9, tzinfo=UTC)]
        # A second sweep (or another replica starting) finds the slot taken.
        assert not await slots.catch_up(box.services, "retention")
        assert len(await _digest_jobs(box)) == 4
        # The compliance digest after the gap covers the whole gap: since the previous digest.
        async with unit_of_work(box.services.sessions) as session:
            query = select(store.DigestRun).where(store.DigestRun.kind == "compliance").order_by(store.DigestRun.id)  # type: ignore[arg-type]
            runs = list((await session.exec(query)).all())
        assert len(runs) == 2 and runs[1].period_start == runs[0].period_end
    assert len(box.slack.calls_to("chat.postMessage")) == 4


async def test_fresh_install_starts_its_schedule_without_posting(sqlite_url: str, tmp_path: Path) -> None:
    clock = Clock(MONDAY + timedelta(days=2))
    async with sandbox(sqlite_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        assert not await slots.catch_up(box.services, "retention")
        assert await _slot_times(box, "retention") == [(datetime(2026, 3, 2, 9, tzinfo=UTC), "baseline")]
        assert await _digest_jobs(box) == []
        clock.advance(days=7)  # the next Monday was missed: now it is a real missed slot
        assert await slots.catch_up(box.services, "retention")
        await _all_posted(box, 1)


async def test_a_stale_claim_is_taken_over_and_a_live_one_is_not(db_url: str) -> None:
    engine = make_engine(db_url)
    await migrate(engine)
    sessions = make_session_factory(engine)
    slot = datetime(2026, 3, 2, 9, tzinfo=UTC)
    lease = timedelta(hours=1)
    try:
        async with unit_of_work(sessions) as session:
            first = await store.claim_slot(session, "retention", slot, owner="a", now=MONDAY, lease=lease)
        assert first is not None and first.generation == 1
        async with unit_of_work(sessions) as session:
            assert await store.claim_slot(session, "retention", slot, owner="b", now=MONDAY + timedelta(minutes=30),
                                          lease=lease) is None
        # Replica "a" died mid-run: after its lease another replica takes the slot over.
        async with unit_of_work(sessions) as session:
            second = await store.claim_slot(session, "retention", slot, owner="b",
                                            now=MONDAY + timedelta(minutes=61), lease=lease)
        assert second is not None and (second.owner, second.generation) == ("b", 2)
        async with unit_of_work(sessions) as session:
            assert not await store.finish_slot(session, "retention", slot, 1, now=MONDAY)  # "a" lost it
            assert await store.finish_slot(session, "retention", slot, 2, now=MONDAY)
        async with unit_of_work(sessions) as session:
            assert await store.claim_slot(session, "retention", slot, owner="c",
                                          now=MONDAY + timedelta(hours=5), lease=lease) is None
    finally:
        await engine.dispose()
