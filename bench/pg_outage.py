"""A PostgreSQL outage under steady webhook load: every delivery answered 2xx, every one processed once after.

    TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/<throw-away db> \\
      .venv/bin/python -m bench.pg_outage [--rate 10] [--before 10] [--outage 60] [--after 10] [--mode refuse|hang]

The bot's real service (``create_app``, job runner on) runs in this process against the Slack and Mautic
stand-ins, its ``DATABASE_URL`` pointing at a loopback TCP proxy (``sandbox/tcp_proxy.py``) in front of
PostgreSQL. A sender posts distinct signed deliveries (one form submission each) at ``--rate`` per second on
a fixed schedule (open loop: a slow answer does not delay the next send) for ``--before`` seconds, then the
proxy is cut for ``--outage`` seconds (``refuse``: connections closed and refused, the server is down;
``hang``: accepted and never answered, a partition), then restored for ``--after`` seconds. Reported: answers
by status, how many were spooled, answer latency (p50/p99/max) in each phase, the time from restore until the
spool was moved and every event processed, and the inbox checked against what was sent (each delivery's
event exactly once). The schema of the database is dropped and recreated first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from sqlmodel import col, select

    from bot.app import Tuning
    from handlers.appkeys import INTAKE
    from sandbox.harness import reset_postgres_schema, sandbox
    from sandbox.mautic import form_submission_event
    from sandbox.tcp_proxy import TcpProxy
    from storage.db import unit_of_work
    from storage.intake import ConsentRecord
    from storage.jobs import Job, JobState

    base = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    await reset_postgres_schema(base)
    url = urlsplit(base)
    tuning = Tuning(job_poll_interval=0.5, start_scheduler=False, migrate_on_start=True)
    sent: dict[int, tuple[str, int, str, float]] = {}  # n -> (phase, status, body, seconds)
    with tempfile.TemporaryDirectory() as tmp:
        async with TcpProxy(url.hostname or "127.0.0.1", url.port or 5432) as proxy:
            through = urlunsplit(url._replace(netloc=f"{url.username or 'postgres'}@127.0.0.1:{proxy.port}"))
            async with sandbox(through, tuning=tuning, export_dir=Path(tmp) / "exports",
                               spool_dir=Path(tmp) / "spool") as box:
                intake = box.app[INTAKE]
                loop = asyncio.get_running_loop()
                phase = "before"

                async def send(n: int) -> None:
                    payload = form_submission_event(
                        contact_id=100_000 + n, email=f"outage{n}@example.com", form_id=4, form_name="Newsletter",
                        submission_id=n, results={"email": f"outage{n}@example.com", "consent": "1"})
                    started, at = loop.time(), phase
                    status, text = await box.webhook(payload)
                    sent[n] = (at, status, text, loop.time() - started)

                tasks: list[asyncio.Task[None]] = []
                moved_at: list[float] = []

                async def note_moved() -> None:
                    await intake.drained()  # the mover ends once the spool is in the inbox
                    moved_at.append(loop.time())

                total = int(args.rate * (args.before + args.outage + args.after))
                start = loop.time()
                restored_at = 0.0
                for n in range(total):
                    due = start + n / args.rate
                    if phase == "before" and due - start >= args.before:
                        phase = "outage"
                        proxy.cut(args.mode)
                        print(f"t={due - start:5.1f}s  proxy cut ({args.mode})", file=sys.stderr)
                    elif phase == "outage" and due - start >= args.before + args.outage:
                        phase = "after"
                        proxy.restore()
                        if args.mode == "hang":
                            proxy.cut("refuse")  # drop the hung connections so the pool opens fresh ones
                            proxy.restore()
                        restored_at = loop.time()
                        tasks.append(asyncio.create_task(note_moved()))
                        print(f"t={due - start:5.1f}s  proxy restored", file=sys.stderr)
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    tasks.append(asyncio.create_task(send(n)))
                await asyncio.gather(*tasks)
                await intake.drained()
                drained_at = moved_at[0] if moved_at else loop.time()
                await box.jobs_idle(timeout=300)
                processed_at = loop.time()
                async with unit_of_work(box.services.sessions) as session:
                    events = list((await session.exec(select(ConsentRecord.submission_id))).all())
                    failed = (await session.exec(select(Job.id).where(col(Job.state) == JobState.FAILED))).all()
    by_phase: dict[str, list[float]] = {}
    for at, _status, _text, seconds in sent.values():
        by_phase.setdefault(at, []).append(seconds * 1000)
    statuses: dict[int, int] = {}
    for _at, status, _text, _seconds in sent.values():
        statuses[status] = statuses.get(status, 0) + 1
    spooled = sum(1 for _at, _s, text, _sec in sent.values() if "spooled" in text)
    expected = set(sent)
    counts: dict[int | None, int] = {}
    for contact in events:
        counts[contact] = counts.get(contact, 0) + 1
    return {
        "deliveries": len(sent), "statuses": statuses, "spooled": spooled,
        "latency_ms": {p: {"p50": round(statistics.median(v), 1), "p99": round(_percentile(v, 0.99), 1),
                           "max": round(max(v), 1)} for p, v in by_phase.items()},
        "restore_to_spool_moved_s": round(drained_at - restored_at, 2) if restored_at else None,
        "restore_to_all_processed_s": round(processed_at - restored_at, 2) if restored_at else None,
        "consent_records": len(events), "missing": len(expected - set(counts)),
        "duplicated": sum(1 for c in counts.values() if c > 1), "failed_jobs": len(failed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10.0, help="deliveries per second")
    parser.add_argument("--before", type=float, default=10.0, help="seconds of load before the outage")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the database is cut off")
    parser.add_argument("--after", type=float, default=10.0, help="seconds of load after it")
    parser.add_argument("--mode", choices=["refuse", "hang"], default="refuse")
    args = parser.parse_args()
    # The outage makes the service log every failed database call; the figures are what matters here.
    logging.basicConfig(level=logging.CRITICAL)
    started = time.perf_counter()
    result = asyncio.run(run(args))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))
    ok = (result["statuses"] == {200: result["deliveries"]} and not result["missing"] and not result["duplicated"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
