"""Access-package build for a contact with 100,000 timeline events, and `/privacy dsar` ack latency
while Mautic answers slowly.

    .venv/bin/python -m bench.access_package [--events 100000] [--acks 300] [--concurrency 5]
        [--slow 2.0] [--database sqlite|postgresql://postgres@127.0.0.1:5432/test_requests]

The Mautic stand-in runs in its own process, so the figures below are the bot's own: this process runs
the bot's real service (``create_app``: Bolt, job runner, database) and the small Slack stand-in. The
DSAR is filed, verified and approved through signed Slack requests; the durable job gathers the
contact through ``MauticClient`` (200 events per timeline page) and streams the sealed zip to disk.
Reported: wall time from the approval click to "done", the time the same timeline takes to merely
page through the API (so "time dominated by API calls" is a measurement, not a claim), the process's
peak RSS, and the package size. Then the stand-in is restarted with every contact call delayed by
``--slow`` seconds and ``--acks`` slash commands are timed end to end. Loopback only, bounded loops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

SUBJECT = "bench.subject@example.com"


# ---- the Mautic stand-in, in a child process ---------------------------------------------------------


async def serve_mautic(events: int, slow: float) -> None:
    from sandbox.mautic import FakeMautic

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with FakeMautic() as fake:
        fake.add_segment(1, "Newsletter")
        cid = fake.add_contact(email=SUBJECT, firstname="Bench", lastname="Subject", segments=[1])
        fake.add_note(cid, "benchmark contact")
        fake.add_campaign(cid, 2, "Onboarding")
        fake.set_activity_generator(cid, events)
        if slow:
            fake.slow("/api/contacts", slow)
        print(json.dumps({"url": fake.base_url, "contact": cid}), flush=True)
        await stop.wait()


class MauticProcess:
    def __init__(self, events: int, slow: float) -> None:
        self.args = [sys.executable, "-m", "bench.access_package", "--serve-mautic", "--events", str(events),
                     "--slow", str(slow)]
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.contact = 0

    async def __aenter__(self) -> MauticProcess:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)  # noqa: S603, ASYNC220 - once, at start
        assert self.proc.stdout is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        info = json.loads(line)
        self.url, self.contact = info["url"], int(info["contact"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(self.proc.wait, 10)


# ---- the bot, in this process ------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Bot:
    """The real service against the out-of-process Mautic stand-in and an in-process Slack stand-in."""

    def __init__(self, mautic_url: str, database_url: str, export_dir: Path) -> None:
        self.mautic_url, self.database_url, self.export_dir = mautic_url, database_url, export_dir

    async def __aenter__(self) -> Bot:
        import aiohttp
        from aiohttp import web

        from bot.app import Tuning, create_app
        from handlers.appkeys import SERVICES
        from sandbox.harness import sandbox_settings, seed_workspace
        from sandbox.slack import FakeSlack, SlackUserAgent

        self.slack = await FakeSlack().__aenter__()
        seed_workspace(self.slack)
        mautic = SimpleNamespace(base_url=self.mautic_url, username="api", password="secret")  # noqa: S106 - the stand-in's login
        self.settings = sandbox_settings(self.database_url, self.slack, mautic, export_dir=self.export_dir)  # type: ignore[arg-type]
        tuning = Tuning(job_poll_interval=0.2, start_scheduler=False, migrate_on_start=True)
        self.runner = web.AppRunner(create_app(self.settings, tuning), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.http = aiohttp.ClientSession()
        secret = self.settings.slack_signing_secret.get_secret_value()  # type: ignore[union-attr]
        self.user = SlackUserAgent(self.http, f"http://127.0.0.1:{port}/slack/events", secret, self.slack)
        self.services = self.runner.app[SERVICES]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        await self.runner.cleanup()
        await self.slack.__aexit__()


def _state(message: Any) -> str:
    for block in message.blocks:
        for item in block.get("fields") or []:
            if item["text"].startswith("*State*"):
                return str(item["text"])
    return ""


async def bench_package(events: int, database_url: str, latency: float = 0.0) -> dict[str, Any]:
    from bot.requests.ids import IdentityInput, RequestButton
    from sandbox.harness import ALICE, BOB, CAROL, PRIVACY_CHANNEL

    with tempfile.TemporaryDirectory() as tmp:
        async with MauticProcess(events, latency) as mautic, Bot(mautic.url, _db(database_url, tmp), Path(tmp)) as bot:
            await bot.user.command(ALICE.id, PRIVACY_CHANNEL, f"dsar {SUBJECT} benchmark")
            await bot.slack.wait_until(lambda: bool(bot.slack.messages(PRIVACY_CHANNEL)), timeout=30)
            message = bot.slack.messages(PRIVACY_CHANNEL)[-1]
            await bot.slack.wait_until(lambda: "looking up" not in json.dumps(message.blocks), timeout=30)
            # "Identity verified" opens a modal that records the method; BOB did not file, so he may verify.
            await bot.user.click(BOB.id, message, RequestButton.VERIFY)
            await bot.slack.wait_until(lambda: bool(bot.slack.views), timeout=30)
            await bot.user.submit_view(BOB.id, bot.slack.views[-1], {
                IdentityInput.METHOD_BLOCK: {IdentityInput.METHOD_ACTION: {
                    "type": "radio_buttons", "selected_option": {"value": "address_reply"}}},
                IdentityInput.NOTE_BLOCK: {IdentityInput.NOTE_ACTION: {"type": "plain_text_input", "value": None}}})
            await bot.slack.wait_until(lambda: "verified" in _state(message), timeout=30)
            rss_before = rss_mb()
            sampled = [rss_before]

            async def sample() -> None:
                while True:
                    sampled.append(rss_mb())
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            await bot.user.click(CAROL.id, message, RequestButton.APPROVE)
            await bot.slack.wait_until(lambda: "Done" in _state(message), timeout=1800)
            wall = time.perf_counter() - started
            sampler.cancel()
            size = await asyncio.to_thread(lambda: next(Path(tmp).glob("request-*.zip.sealed")).stat().st_size)
            # The same timeline, only paged through the API: the floor the build cannot go below.
            started = time.perf_counter()
            count = 0
            async for _ in bot.services.mautic.iter_activity(mautic.contact, page_size=200):
                count += 1
            api_only = time.perf_counter() - started
    return {"events": count, "mautic_latency_s": latency, "wall_s": round(wall, 2), "api_only_s": round(api_only, 2),
            "api_share": round(api_only / wall, 2), "rss_before_mb": round(rss_before, 1),
            "rss_peak_during_mb": round(max(sampled), 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "package_bytes": size}


async def bench_acks(acks: int, concurrency: int, slow: float, database_url: str) -> dict[str, Any]:
    from sandbox.harness import ALICE, PRIVACY_CHANNEL

    with tempfile.TemporaryDirectory() as tmp:
        async with MauticProcess(10, slow) as mautic, Bot(mautic.url, _db(database_url, tmp), Path(tmp)) as bot:
            await bot.user.command(ALICE.id, PRIVACY_CHANNEL, "help")  # warm-up: Bolt's auth.test, connections
            latencies: list[float] = []
            queue: asyncio.Queue[int] = asyncio.Queue()
            for n in range(acks):
                queue.put_nowait(n)

            async def sender() -> None:
                while not queue.empty():
                    n = queue.get_nowait()
                    started = time.perf_counter()
                    result = await bot.user.command(ALICE.id, PRIVACY_CHANNEL, f"dsar person{n}@example.com")
                    latencies.append(time.perf_counter() - started)
                    assert result.status == 200 and "Filed" in result.text, result.text

            await asyncio.gather(*(sender() for _ in range(concurrency)))
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {"acks": len(latencies), "concurrency": concurrency, "mautic_delay_s": slow,
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": round(latencies[-1] * 1000, 1),
            "mean_ms": round(statistics.mean(latencies) * 1000, 1)}


def _db(database_url: str, tmp: str) -> str:
    return f"sqlite:///{Path(tmp) / 'bench.db'}" if database_url == "sqlite" else database_url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-mautic", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--acks", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--slow", type=float, default=2.0, help="seconds Mautic waits before each contact call")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds Mautic takes per contact call in the package run (0: as fast as loopback)")
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--only", choices=["package", "acks"], default=None)
    args = parser.parse_args()
    if args.serve_mautic:
        await serve_mautic(args.events, args.slow)
        return
    import logging

    from sandbox.harness import reset_postgres_schema

    logging.basicConfig(level=logging.ERROR)
    if args.database != "sqlite":
        await reset_postgres_schema(args.database)
    if args.only in (None, "package"):
        print(json.dumps({"access_package": await bench_package(args.events, args.database, args.latency)}), flush=True)
    if args.database != "sqlite":
        await reset_postgres_schema(args.database)
    if args.only in (None, "acks"):
        print(json.dumps({"dsar_ack": await bench_acks(args.acks, args.concurrency, args.slow, args.database)}),
              flush=True)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}))



if __name__ == "__main__":
    asyncio.run(main())
