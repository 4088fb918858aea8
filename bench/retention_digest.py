"""Benchmark: the retention digest against a Mautic stand-in holding up to 1,000,000 contacts.

    .venv/bin/python bench/retention_digest.py                 # 100,000 and 1,000,000 contacts
    .venv/bin/python bench/retention_digest.py --sizes 1000000 --no-scan

Three processes per table size, so the memory measured is the bot's alone:

* the stand-in: ``FakeMautic.seed_bulk(n)`` on 127.0.0.1 (30 % stale, 10 % never active);
* a fresh "bot" process that runs the real digest code (``bot.digests.service.retention_snapshot`` over the
  real ``MauticClient``) and, with ``--scan``, pages through every stale contact exactly as the purge job
  does (filtered, by id, 200 per page, full contacts, nothing kept) without deleting anything;
* this orchestrator, which prints the table.

Figures: wall time, HTTP calls made by the bot, and peak RSS of the bot process (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


async def serve(n: int) -> None:
    from sandbox.mautic import FakeMautic

    fake = FakeMautic()
    started = time.perf_counter()
    fake.seed_bulk(n, now=NOW)
    await fake.start()
    print(json.dumps({"url": fake.base_url, "seed_seconds": round(time.perf_counter() - started, 1)}), flush=True)
    # Run until the orchestrator closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await fake.stop()


async def measure(url: str, scan: bool) -> None:
    import aiohttp

    from bot.digests.retention import is_stale, stale_filter
    from bot.digests.service import retention_snapshot
    from bot.mautic import BATCH_DELETE_CHUNK, MauticClient

    calls = 0

    async def on_request(*_: object) -> None:
        nonlocal calls
        calls += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request)
    result: dict[str, object] = {"rss_before_mb": round(rss_mb(), 1)}
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        client = MauticClient(http, url, username="api", password="secret")  # noqa: S106 - the stand-in's login
        started = time.perf_counter()
        snapshot = await retention_snapshot(client, now=NOW, retention_days=1095)
        result.update(digest_seconds=round(time.perf_counter() - started, 2), digest_calls=calls,
                      stale=snapshot.total, never_active=snapshot.never_active,
                      digest_rss_mb=round(rss_mb(), 1))
        if scan:
            calls = 0
            seen = 0
            started = time.perf_counter()
            async for contact in client.iter_contacts(stale_filter(snapshot.cutoff), page_size=BATCH_DELETE_CHUNK,
                                                      minimal=False):
                seen += is_stale(contact.last_active, contact.date_added, snapshot.cutoff)
            result.update(scan_seconds=round(time.perf_counter() - started, 1), scan_calls=calls, scanned=seen,
                          scan_rss_mb=round(rss_mb(), 1))
    print(json.dumps(result), flush=True)


async def run_size(n: int, scan: bool) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stand_in = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(n), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env=env, cwd=ROOT)
    assert stand_in.stdout is not None and stand_in.stdin is not None
    ready = json.loads(await stand_in.stdout.readline())
    try:
        args = [sys.executable, __file__, "--measure", ready["url"]] + (["--scan"] if scan else [])
        bot = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, env=env, cwd=ROOT)
        out, _ = await bot.communicate()
        figures = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        stand_in.stdin.close()
        await stand_in.wait()
    return {"contacts": n, "seed_seconds": ready["seed_seconds"], **figures}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--no-scan", action="store_true", help="only the digest, not the purge-style scan")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--scan", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        await serve(args.serve)
        return
    if args.measure:
        await measure(args.measure, args.scan)
        return
    rows = [await run_size(int(size), not args.no_scan) for size in args.sizes.split(",")]
    print("| contacts | stale | digest wall | digest API calls | digest peak RSS | stale scan wall | scan API calls "
          "| scan peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['contacts']:,} | {r['stale']:,} | {r['digest_seconds']} s | {r['digest_calls']} "
              f"| {r['digest_rss_mb']} MB | {r.get('scan_seconds', '–')} s | {r.get('scan_calls', '–')} "
              f"| {r.get('scan_rss_mb', '–')} MB |")
    print(json.dumps(rows))


if __name__ == "__main__":
    asyncio.run(main())
