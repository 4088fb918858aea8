"""A database outage loses no webhook delivery: verified deliveries go to a local, fsync'd, bounded spool file
while the database does not answer (cut here by a loopback TCP proxy in front of PostgreSQL), /healthz says
so, and they are moved into the inbox, once each, when it answers again, even if a crash cuts the move short."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.intake.spool import DeliverySpool, SpoolFull, SpoolingIntake
from handlers.appkeys import INTAKE, INTAKE_WRITER
from sandbox.harness import Sandbox, sandbox
from sandbox.tcp_proxy import TcpProxy
from tests.helpers import test_tuning
from tests.intake.helpers import deliveries, inbox, processed
from tests.intake.test_webhook import gap

NOON = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_the_spool_is_private_durable_and_skips_a_torn_last_line(tmp_path: Path) -> None:
    import asyncio

    async def run() -> None:
        spool = DeliverySpool(tmp_path / "spool", 64 * 1024)
        keys = [await spool.append(b'{"n": %d}' % n, NOON) for n in range(3)]
        await spool.close()
        assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
        assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
        with spool.path.open("ab") as file:  # a crash in the middle of a fourth append (never answered)
            file.write(b'{"key":"torn","received_at":"2026-12')
        rows = DeliverySpool.read(spool.path)
        assert [row["key"] for row in rows] == keys
        assert [row["body"] for row in rows] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
        assert rows[0]["received_at"] == NOON

    asyncio.run(run())


async def test_a_full_spool_refuses_and_says_so(tmp_path: Path) -> None:
    spool = DeliverySpool(tmp_path / "spool", 64 * 1024)
    await spool.append(b"x" * 30_000, NOON)
    with pytest.raises(SpoolFull):
        await spool.append(b"x" * 30_000, NOON)  # base64 makes it 40 KB: over the 64 KB bound
    await spool.close()


async def test_a_living_processs_file_is_left_alone_a_dead_ones_is_taken(tmp_path: Path) -> None:
    alive, dead, mover = (DeliverySpool(tmp_path, 1 << 20, name=n) for n in ("alive", "dead", "mover"))
    await alive.append(b"a", NOON)
    await dead.append(b"d", NOON)
    await dead.close()  # its process died: the lock on its file is gone with it
    taken = await mover.take()
    assert [row["body"] for path in taken for row in DeliverySpool.read(path)] == [b"d"]
    assert alive.path.exists()
    for path in taken:
        await mover.remove(path)
    await alive.close()
    assert not any(path.exists() for path in taken) and alive.path.exists()


async def test_a_move_cut_short_after_its_commit_inserts_nothing_twice(sqlite_url: str, tmp_path: Path) -> None:
    async with sandbox(sqlite_url, tuning=test_tuning(), export_dir=tmp_path / "e",
                       spool_dir=tmp_path / "spool") as box:
        await box.services.jobs.stop()  # keep the deliveries in the inbox, unsplit, to count them
        spool = DeliverySpool(tmp_path / "spool", 1 << 20, name="crashed")
        for n in range(3):
            await spool.append(json.dumps(gap(n, f"s{n}@example.com")).encode(), NOON)
        first = SpoolingIntake(box.services, box.app[INTAKE_WRITER], spool)

        async def crash(path: Path) -> None:
            raise RuntimeError("killed between the commit and the file's removal")

        spool.remove = crash  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await first._move_all()
        await spool.close()  # the process is gone; its taken file stays behind, unlocked
        assert len(await deliveries(box)) == 3
        again = SpoolingIntake(box.services, box.app[INTAKE_WRITER],
                               DeliverySpool(tmp_path / "spool", 1 << 20, name="restarted"))
        again.start()
        await again.drained()
        await again.stop()
        assert len(await deliveries(box)) == 3 and again.moved == 0
        assert list((tmp_path / "spool").iterdir()) == []


@pytest.fixture
async def proxied(postgres_url: str, tmp_path: Path) -> AsyncIterator[tuple[Sandbox, TcpProxy]]:
    url = urlsplit(postgres_url)
    async with TcpProxy(url.hostname or "127.0.0.1", url.port or 5432) as proxy:
        through = urlunsplit(url._replace(netloc=f"{url.username or 'postgres'}@127.0.0.1:{proxy.port}"))
        async with sandbox(through, tuning=test_tuning(), export_dir=tmp_path / "e",
                           spool_dir=tmp_path / "spool") as box:
            yield box, proxy


@pytest.mark.postgres
async def test_deliveries_during_an_outage_are_spooled_then_processed_once(
        proxied: tuple[Sandbox, TcpProxy], tmp_path: Path) -> None:
    box, proxy = proxied
    intake = box.app[INTAKE]
    intake.probe_interval = 0.1
    assert (await box.webhook(gap(1, "before@example.com")))[0] == 200
    await processed(box)
    proxy.cut("refuse")
    payloads = [gap(n, f"during{n}@example.com") for n in range(2, 7)]
    answers = [await box.webhook(payload) for payload in payloads]
    answers.append(await box.webhook(payloads[0]))  # Mautic sends one again
    assert [status for status, _ in answers] == [200] * 6
    assert all("spooled" in json.loads(text) for _, text in answers)
    spooled = list((tmp_path / "spool").iterdir())
    assert len(spooled) == 1 and stat.S_IMODE(spooled[0].stat().st_mode) == 0o600
    async with box.http.get(f"{box.url}/healthz") as response:
        health = await response.json()
    assert response.status == 200
    assert health["status"] == "degraded" and health["database"] == "down" and health["intake"] == "spooling"
    assert "spool" in health["reason"]
    proxy.restore()
    await intake.drained()
    await processed(box)
    events = await inbox(box)
    assert sorted(e.contact_id or 0 for e in events) == [1, 2, 3, 4, 5, 6]  # each once, the repeat too
    assert list((tmp_path / "spool").iterdir()) == []
    async with box.http.get(f"{box.url}/healthz") as response:
        assert (response.status, await response.json()) == (200, {"status": "ok", "database": "ok"})


@pytest.mark.postgres
async def test_a_database_that_hangs_is_given_up_on_and_the_delivery_spooled(
        proxied: tuple[Sandbox, TcpProxy]) -> None:
    box, proxy = proxied
    intake = box.app[INTAKE]
    intake.commit_timeout, intake.probe_interval = 0.5, 0.1
    proxy.cut("hang")  # a partition: nothing answers, nothing fails
    status, text = await box.webhook(gap(7, "hang@example.com"))
    assert status == 200 and "spooled" in json.loads(text)
    proxy.restore()
    proxy.cut("refuse")  # drop the hanging connections so the pool opens fresh ones
    proxy.restore()
    await intake.drained()
    await processed(box)
    assert [e.contact_id for e in await inbox(box)] == [7]
