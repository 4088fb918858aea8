"""Webhook intake throughput and latency: 10-event signed batches against the running service.

    .venv/bin/python -m bench.webhook_intake [--batches 3000] [--concurrency 50]
        [--postgres postgresql://postgres@127.0.0.1:5432/test_intake] [--targets bare,sqlite,postgres]

Each target runs in its own server process (so the load generator does not share the server's event
loop): ``bare`` is an aiohttp handler that only reads the body and answers 200; ``sqlite`` and
``postgres`` are the bot's real service (``create_app`` via the sandbox harness, with the Slack and
Mautic stand-ins) on a fresh database. Bodies are pre-built and pre-signed exactly as Mautic sends
them (10 ``mautic.form_on_submit`` events with consent, distinct per batch so none deduplicates).
The webhook view only stores each raw delivery; the bot splits deliveries into events and processes
them (consent records) while the load runs, as it would in production, yielding to intake while
deliveries keep arriving; after the load, the time until every delivery is split and every event
processed is reported too. Loopback only, bounded loops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

EVENTS_PER_BATCH = 10
SECRET = "bench-webhook-secret-" + "0" * 43


# ---- server side (runs in a child process) -----------------------------------------------------------


async def serve(target: str, database_url: str | None, paused: bool = False) -> None:
    from aiohttp import web

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if target == "bare":
        async def bare(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(text="ok")

        app = web.Application(client_max_size=5 * 1024 * 1024)
        app.router.add_post("/mautic/webhook", bare)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(json.dumps({"url": f"http://127.0.0.1:{port}/mautic/webhook"}), flush=True)
        await stop.wait()
        await runner.cleanup()
        return

    import logging

    from bot.app import Tuning
    from sandbox.harness import sandbox

    logging.basicConfig(level=logging.WARNING)
    assert database_url is not None
    tuning = Tuning(job_poll_interval=0.5, start_scheduler=False, migrate_on_start=True)
    with tempfile.TemporaryDirectory() as tmp:
        async with sandbox(database_url, tuning=tuning, export_dir=Path(tmp), mautic_webhook_secret=SECRET) as box:
            if paused:
                # Diagnostic: the intake path alone, its inbox processed only after the load.
                await box.services.jobs.stop()
            print(json.dumps({"url": f"{box.url}/mautic/webhook"}), flush=True)
            await stop.wait()


# ---- load generator ----------------------------------------------------------------------------------


def build_bodies(batches: int, run_id: int) -> list[tuple[bytes, str]]:
    from sandbox.mautic import encode_like_php, form_submission_event, merge_payloads, sign_webhook

    bodies = []
    for b in range(batches):
        events = []
        for e in range(EVENTS_PER_BATCH):
            n = b * EVENTS_PER_BATCH + e
            email = f"bench{run_id}-{n}@example.com"
            events.append(form_submission_event(
                contact_id=1_000_000 + n, email=email, submission_id=n + 1, form_id=4 + (n % 5),
                form_name=f"Form {n % 5}", results={"email": email, "consent": "1", "firstname": "Bench"},
            ))
        body = encode_like_php(merge_payloads(*events))
        bodies.append((body, sign_webhook(body, SECRET)))
    return bodies


@dataclass
class Result:
    target: str
    batches: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    drained_s: float | None = None

    @property
    def batches_per_s(self) -> float:
        return self.batches / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def load(url: str, bodies: list[tuple[bytes, str]], concurrency: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            nonlocal next_index, errors
            while next_index < len(bodies):
                body, signature = bodies[next_index]
                next_index += 1
                headers = {"Content-Type": "application/json", "Webhook-Signature": signature}
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, errors


async def inbox_pending(database_url: str) -> int:
    from sqlalchemy import text

    from storage.db import make_engine

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            # Drained = every delivery split into events and every event processed.
            pending = await conn.execute(text(
                "SELECT (SELECT count(*) FROM inbox_deliveries)"
                " + (SELECT count(*) FROM intake_inbox WHERE state='pending')"
            ))
            return int(pending.scalar_one())
    finally:
        await engine.dispose()



async def run_target(target: str, args: argparse.Namespace, tmp: Path, run_id: int) -> Result:
    database_url = None
    base, _, mode = target.partition("-")
    if base == "sqlite":
        database_url = f"sqlite:///{tmp / 'bench.db'}"
    elif base == "postgres":
        from sandbox.harness import reset_postgres_schema

        database_url = args.postgres
        await reset_postgres_schema(database_url)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    command = [sys.executable, "-m", "bench.webhook_intake", "--serve", base]
    if database_url:
        command += ["--database-url", database_url]
    if mode == "paused":
        command.append("--paused")
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        url = json.loads(line)["url"]
        warmup = build_bodies(args.warmup, run_id * 10 + 1)
        await load(url, warmup, args.concurrency)
        bodies = build_bodies(args.batches, run_id * 10 + 2)
        seconds, latencies, errors = await load(url, bodies, args.concurrency)
        result = Result(target, len(bodies), seconds, latencies, errors)
        if database_url and mode != "paused":
            started = time.perf_counter()
            deadline = started + 600
            while await inbox_pending(database_url) and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.25)  # polling another process's database; there is no event to await
            result.drained_s = time.perf_counter() - started
        return result
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            process.kill()
            await process.wait()


def report(results: list[Result], args: argparse.Namespace) -> str:
    bare = next((r for r in results if r.target == "bare"), None)
    lines = [
        f"{args.batches} batches x {EVENTS_PER_BATCH} events, {args.concurrency} concurrent senders, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "",
        "| target | batches/s | events/s | p50 ms | p99 ms | max ms | vs bare | errors | inbox drained after load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = f"{r.batches_per_s / bare.batches_per_s:.2f}" if bare else "-"
        drained = f"{r.drained_s:.1f} s" if r.drained_s is not None else "n/a"
        lines.append(
            f"| {r.target} | {r.batches_per_s:.0f} | {r.batches_per_s * EVENTS_PER_BATCH:.0f} | "
            f"{statistics.median(r.latencies_ms):.1f} | {r.pct(99):.1f} | {max(r.latencies_ms):.1f} | "
            f"{ratio} | {r.errors} | {drained} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    results = []
    run_id = int(time.time()) % 100_000
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        for n, target in enumerate(args.targets.split(",")):
            if target.startswith("postgres") and not args.postgres:
                print("skipping postgres: pass --postgres URL", file=sys.stderr)
                continue
            result = await run_target(target, args, Path(tmp), run_id + n)
            print(f"{target}: {result.batches_per_s:.0f} batches/s, p99 {result.pct(99):.1f} ms", file=sys.stderr)
            results.append(result)
    print(report(results, args))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--targets", default="bare,sqlite,postgres")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", os.environ.get("TEST_POSTGRES_URL")))
    parser.add_argument("--serve", choices=["bare", "sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--paused", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.serve, args.database_url, args.paused))
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
