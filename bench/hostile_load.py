"""Signed intake and /healthz while attackers push unsigned bodies and hold connections open.

    .venv/bin/python -m bench.hostile_load [--seconds 20] [--targets sqlite,postgres]
        [--postgres postgresql://postgres@127.0.0.1:5432/bench_hostile] [--pin] [--no-attackers]

The bot's real service (``create_app`` through the sandbox harness, Slack and Mautic stand-ins) runs
in a child process with a loop-lag probe: a task that asks to wake every 5 ms and records how late it
woke, i.e. the longest time anything held the event loop. The parent, for ``--seconds``:

- 50 signed senders post distinct 10-event Mautic deliveries back to back (closed loop);
- one prober GETs ``/healthz`` every 50 ms;
- 20 attackers per route post unsigned 1 MiB bodies back to back: on ``/mautic/webhook`` with a
  well-formed wrong ``Webhook-Signature`` (so the body is streamed through the HMAC), on
  ``/slack/events`` with a fresh timestamp and a wrong ``X-Slack-Signature``, half of them chunked
  (no Content-Length, so the server reads until the size limit);
- 200 slow connections: 100 idle (connect, send nothing), 50 sending their headers at one byte per
  second, 50 sending whole headers (declaring 1 MiB) then the body at one byte per second; each
  reconnects 100 ms after the server closes it.

Reported: signed p50/p99/max, /healthz p99/max, peak RSS of the server process (VmHWM), the longest
loop stall, attacker answers by status, and signed deliveries lost: answered other than 200, or
answered 200 but missing from the inbox once processing drained (events counted in the database).

``--pin`` runs the server on CPU 0 and every load generator (this process and the attack) on CPU 1, so
the generators' own CPU time no longer preempts the server (its stalls and latencies are then its own);
a local PostgreSQL's processes go to CPU 1 as well (root only; their affinity is restored after).
Diagnosis: ``BENCH_NAME_CALLBACK=1`` names each new longest callback, ``BENCH_GC_LOG=1`` prints every
garbage collection over 5 ms, ``BENCH_SLOW_CALLBACKS=<s>`` turns on asyncio debug, ``BENCH_PROFILE=<file>``
profiles the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

EVENTS_PER_BATCH = 10
SECRET = "bench-webhook-secret-" + "0" * 43
SLACK_SECRET = "bench-slack-signing-secret-" + "0" * 37
MIB = 1024 * 1024
PROBE_EVERY = 0.005


# ---- server side (runs in a child process) -----------------------------------------------------------


async def serve(database_url: str) -> None:
    import logging

    from bot.app import Tuning, freeze_startup_heap
    from bot.settings import Settings
    from sandbox.harness import sandbox

    logging.basicConfig(level=logging.ERROR)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if os.environ.get("BENCH_SLOW_CALLBACKS"):  # diagnosis: name every callback holding the loop longer
        loop.set_debug(True)
        loop.slow_callback_duration = float(os.environ["BENCH_SLOW_CALLBACKS"])
        logging.getLogger("asyncio").setLevel(logging.WARNING)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    longest = 0.0

    # The probe's lateness also counts time the loop spent waiting for the OS to run it again (on a
    # shared machine, other processes); the longest single callback (every task step and I/O callback
    # runs as an asyncio Handle) is what one piece of this process's work held the loop for. Timed
    # with perf_counter: the thread CPU clock is a system call on this VM, too slow to call twice per
    # callback, so this too is wall time, an upper bound on the CPU the callback used.
    longest_callback = 0.0
    run_handle = asyncio.events.Handle._run

    def timed_run(handle: asyncio.events.Handle) -> None:
        nonlocal longest_callback
        started = time.perf_counter()
        run_handle(handle)
        took = time.perf_counter() - started
        if took > longest_callback:
            longest_callback = took
            if os.environ.get("BENCH_NAME_CALLBACK"):
                owner = getattr(getattr(handle, "_callback", None), "__self__", handle)
                print(f"callback {took * 1000:.1f} ms: {owner!r:.400}", file=sys.stderr, flush=True)

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign,assignment]

    def reset() -> None:  # SIGUSR1: the measured window starts (warm-up stalls, first compiles, do not count)
        nonlocal longest, longest_callback
        longest = longest_callback = 0.0
        if os.environ.get("BENCH_NAME_CALLBACK"):
            print("callback: measured window starts", file=sys.stderr, flush=True)

    loop.add_signal_handler(signal.SIGUSR1, reset)
    if os.environ.get("BENCH_GC_LOG"):  # diagnosis: print every garbage collection over 5 ms
        import gc

        gc_started = 0.0

        def gc_timer(phase: str, info: dict[str, int]) -> None:
            nonlocal gc_started
            if phase == "start":
                gc_started = time.perf_counter()
            elif (took := time.perf_counter() - gc_started) > 0.005:
                print(f"gc generation {info['generation']}: {took * 1000:.1f} ms, collected {info['collected']}",
                      file=sys.stderr, flush=True)

        gc.callbacks.append(gc_timer)

    async def probe() -> None:
        nonlocal longest
        while True:
            asked = loop.time()
            await asyncio.sleep(PROBE_EVERY)
            longest = max(longest, loop.time() - asked - PROBE_EVERY)

    tuning = Tuning(job_poll_interval=0.5, start_scheduler=False, migrate_on_start=True)
    with tempfile.TemporaryDirectory() as tmp:
        # The production refusal delay (the sandbox answers refusals at once, for tests).
        async with sandbox(database_url, tuning=tuning, export_dir=Path(tmp), mautic_webhook_secret=SECRET,
                           slack_signing_secret=SLACK_SECRET,
                           refusal_delay=Settings.model_fields["refusal_delay"].default) as box:
            freeze_startup_heap()  # as `python -m bot serve` does once started
            print(json.dumps({"url": box.url}), flush=True)
            prober = asyncio.create_task(probe())
            await stop.wait()
            prober.cancel()
            print(json.dumps({"longest_stall_ms": round(longest * 1000, 1),
                              "longest_callback_ms": round(longest_callback * 1000, 1)}), flush=True)


# ---- load generator ----------------------------------------------------------------------------------


class SignedBodies:
    """Distinct signed 10-event deliveries, made on demand from one template (cheap for the load side)."""

    def __init__(self, run_id: int) -> None:
        from sandbox.mautic import encode_like_php, form_submission_event, merge_payloads

        batch = [form_submission_event(
            contact_id=1_000_000 + e, email=f"hostile{run_id}-@@N@@-{e}@example.com", submission_id=e + 1, form_id=4,
            results={"email": f"hostile{run_id}-@@N@@-{e}@example.com", "consent": "1"})
            for e in range(EVENTS_PER_BATCH)]
        self.template = encode_like_php(merge_payloads(*batch))

    def __getitem__(self, n: int) -> tuple[bytes, str]:
        from sandbox.mautic import sign_webhook

        body = self.template.replace(b"@@N@@", str(n).encode())
        return body, sign_webhook(body, SECRET)


@dataclass
class Figures:
    signed_ms: list[float] = field(default_factory=list)
    signed_status: Counter[int] = field(default_factory=Counter)
    health_ms: list[float] = field(default_factory=list)
    health_status: Counter[int] = field(default_factory=Counter)
    attacker_status: Counter[str] = field(default_factory=Counter)
    slow_closed: int = 0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def signed_senders(url: str, bodies: SignedBodies, until: float, figures: Figures, start: int = 0) -> int:
    """Closed loop until ``until``; returns how many deliveries were sent."""
    next_index = start
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            nonlocal next_index
            while time.perf_counter() < until:
                body, signature = bodies[next_index]
                next_index += 1
                started = time.perf_counter()
                try:
                    async with session.post(f"{url}/mautic/webhook", data=body, headers={
                            "Content-Type": "application/json", "Webhook-Signature": signature}) as response:
                        await response.read()
                        figures.signed_status[response.status] += 1
                except aiohttp.ClientError:
                    figures.signed_status[0] += 1
                figures.signed_ms.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(sender() for _ in range(50)))
    return next_index - start


async def health_prober(url: str, until: float, figures: Figures) -> None:
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                async with session.get(f"{url}/healthz") as response:
                    await response.read()
                    figures.health_status[response.status] += 1
            except aiohttp.ClientError:
                figures.health_status[0] += 1
            figures.health_ms.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.05)


async def attacker(url: str, route: str, chunked: bool, until: float, figures: Figures) -> None:
    from sandbox.mautic import sign_webhook

    junk = b"x" * MIB
    wrong = sign_webhook(b"something else", SECRET)
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() < until:
            if route == "/mautic/webhook":
                headers = {"Content-Type": "application/json", "Webhook-Signature": wrong}
            else:
                headers = {"Content-Type": "application/x-www-form-urlencoded",
                           "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}

            async def stream() -> object:
                for start in range(0, MIB, 64 * 1024):
                    yield junk[start:start + 64 * 1024]

            try:
                async with session.post(f"{url}{route}", data=stream() if chunked else junk,
                                        headers=headers) as response:
                    await response.read()
                    figures.attacker_status[f"{route} {response.status}"] += 1
            except (aiohttp.ClientError, ConnectionError):
                figures.attacker_status[f"{route} reset"] += 1  # the server closed while we were sending


async def slow_connection(host: str, port: int, kind: str, until: float, figures: Figures) -> None:
    from sandbox.mautic import sign_webhook

    head = (f"POST /mautic/webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
            f"Webhook-Signature: {sign_webhook(b'other', SECRET)}\r\nContent-Length: {MIB}\r\n\r\n").encode()
    while time.perf_counter() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        try:
            if kind == "body":
                writer.write(head)
            trickle = head if kind == "headers" else b"x" * MIB
            sent = 0
            while time.perf_counter() < until:
                if kind == "idle":
                    data = await asyncio.wait_for(reader.read(1), timeout=max(until - time.perf_counter(), 0.01))
                    if not data:
                        break
                    continue
                writer.write(trickle[sent:sent + 1])
                sent += 1
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if not await asyncio.wait_for(reader.read(1024), timeout=1.0):
                        break  # closed by the server
                    break  # answered (408, 503): the server is done with us
        except (OSError, TimeoutError):
            pass
        finally:
            figures.slow_closed += 1
            writer.close()
        await asyncio.sleep(0.1)


async def inbox_events(database_url: str) -> tuple[int, int]:
    """(deliveries not split yet + events pending, deliveries stored: split ones counted by their events)."""
    from sqlalchemy import text

    from storage.db import make_engine

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text(
                "SELECT (SELECT count(*) FROM inbox_deliveries),"
                " (SELECT count(*) FROM intake_inbox WHERE state='pending'),"
                " (SELECT count(*) FROM intake_inbox WHERE event_type='mautic.form_on_submit')"))).one()
            unsplit, pending, events = (int(v) for v in row)
            return unsplit + pending, unsplit + events // EVENTS_PER_BATCH
    finally:
        await engine.dispose()


async def pin_postgres(database_url: str, cpus: set[int]) -> list[int]:
    """Move a local PostgreSQL server (its postmaster, so backends forked later too, and every process it has
    now) onto ``cpus``, off the bot's; the pids moved. Only where the server runs on this machine and this
    user may (root): otherwise says so and moves nothing, and PostgreSQL's work shares the bot's CPU."""
    from sqlalchemy import text

    from storage.db import make_engine

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            backend = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    finally:
        await engine.dispose()
    try:
        return _pin_server_of(backend, cpus)
    except (OSError, StopIteration) as exc:
        print(f"--pin: PostgreSQL left unpinned ({exc})", file=sys.stderr)
        return []


def _pin_server_of(backend: int, cpus: set[int]) -> list[int]:
    status = Path(f"/proc/{backend}/status").read_text()
    postmaster = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    pids = [postmaster, *map(int, Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split())]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # a backend that ended meanwhile
            os.sched_setaffinity(pid, cpus)
    return pids


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_target(target: str, args: argparse.Namespace, tmp: Path, run_id: int) -> dict[str, Any]:
    if target == "sqlite":
        database_url = f"sqlite:///{tmp / f'hostile-{run_id}.db'}"
    else:
        from sandbox.harness import reset_postgres_schema

        database_url = args.postgres
        await reset_postgres_schema(database_url)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.hostile_load", "--serve", "--database-url", database_url,
        stdout=asyncio.subprocess.PIPE, env=env)
    assert process.stdout is not None
    pinned_postgres: list[int] = []
    if args.pin:
        # The server on CPU 0, this process (signed senders, prober) and the attack on CPU 1: the load
        # generators' own work then no longer preempts the server, whose lateness is what is measured.
        os.sched_setaffinity(process.pid, {0})
        os.sched_setaffinity(0, {1})
        if target != "sqlite":
            pinned_postgres = await pin_postgres(database_url, {1})
    try:
        url = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=60))["url"]
        bodies = SignedBodies(run_id)
        # Warm-up: a few hundred signed deliveries, processed, before anything is measured.
        warm = Figures()
        await signed_senders(url, bodies, time.perf_counter() + 2.0, warm, start=10_000_000)
        while (await inbox_events(database_url))[0]:  # noqa: ASYNC110
            await asyncio.sleep(0.25)  # polling another process's database; there is no event to await
        warmed = (await inbox_events(database_url))[1]
        figures = Figures()
        # The attack runs in its own process, so the signed senders' figures are not its loop's lag.
        attack = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.hostile_load", "--attack", url, "--seconds",
            str(args.seconds + 1 if args.attackers else 0),
            stdout=asyncio.subprocess.PIPE, env=env)
        assert attack.stdout is not None
        await asyncio.wait_for(attack.stdout.readline(), timeout=30)  # the attack has started (or was skipped)
        await asyncio.sleep(1.0)  # every attacker connected and sending
        process.send_signal(signal.SIGUSR1)
        until = time.perf_counter() + args.seconds
        health = asyncio.create_task(health_prober(url, until, figures))
        sent = await signed_senders(url, bodies, until, figures)
        await health
        attack_figures = json.loads(await asyncio.wait_for(attack.stdout.readline(), timeout=60))
        await attack.wait()
        figures.attacker_status.update(attack_figures["attackers"])
        figures.slow_closed = attack_figures["slow_closed"]
        rss = peak_rss_mb(process.pid)
        drain_started = time.perf_counter()
        deadline = drain_started + 300
        while (await inbox_events(database_url))[0] and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.25)  # polling another process's database; there is no event to await
        drained_s = time.perf_counter() - drain_started
        # Committed deliveries count as kept whether or not processing has reached them yet.
        stored = (await inbox_events(database_url))[1] - warmed
        process.send_signal(signal.SIGTERM)
        stalls = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=30))
        accepted = figures.signed_status[200]
        return {
            "target": target, "load": f"load average {os.getloadavg()[0]:.1f}", "sent": sent, "accepted": accepted,
            "lost": (sent - accepted) + (accepted - stored), "drained_s": round(drained_s, 1),
            "signed_p50": pct(figures.signed_ms, 50), "signed_p99": pct(figures.signed_ms, 99),
            "signed_max": max(figures.signed_ms), "health_p99": pct(figures.health_ms, 99),
            "health_max": max(figures.health_ms), "health_non200": sum(
                n for status, n in figures.health_status.items() if status != 200),
            "rss_mb": rss, "stall_ms": stalls["longest_stall_ms"], "callback_ms": stalls["longest_callback_ms"],
            "attackers": dict(sorted(figures.attacker_status.items())),
            "slow_closed": figures.slow_closed,
        }
    finally:
        for pid in pinned_postgres:  # PostgreSQL outlives the bench: give it every CPU back
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, range(os.cpu_count() or 1))
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def attack(url: str, seconds: float) -> None:
    """The attackers' side, in a process of its own; prints its tallies when done."""
    figures = Figures()
    host, port = url.removeprefix("http://").split(":")
    until = time.perf_counter() + seconds
    slow = [asyncio.create_task(slow_connection(host, int(port), kind, until, figures))
            for kind in ["idle"] * 100 + ["headers"] * 50 + ["body"] * 50]
    attackers = [asyncio.create_task(attacker(url, route, n % 2 == 1 and route == "/slack/events", until, figures))
                 for route in ("/mautic/webhook", "/slack/events") for n in range(20)]
    print(json.dumps({"started": True}), flush=True)
    await asyncio.gather(*attackers, *slow)
    print(json.dumps({"attackers": dict(figures.attacker_status), "slow_closed": figures.slow_closed}), flush=True)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"{args.seconds:.0f} s; 50 signed senders, 20+20 unsigned 1 MiB posters, 200 slow connections; "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "",
        "| target | signed sent | signed p50 / p99 / max ms | healthz p99 / max ms | peak RSS MB "
        "| loop lag max ms (wall) | longest callback ms | signed lost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['target']} | {r['sent']} | {r['signed_p50']:.1f} / {r['signed_p99']:.1f} / {r['signed_max']:.1f} | "
            f"{r['health_p99']:.1f} / {r['health_max']:.1f} | {r['rss_mb']:.0f} | {r['stall_ms']} | "
            f"{r['callback_ms']} | {r['lost']} |")
    for r in results:
        lines.append(f"\n{r['target']}: {r['load']}; inbox drained {r['drained_s']} s after the load; "
                     f"attackers {r['attackers']}; "
                     f"slow connections closed {r['slow_closed']}; healthz non-200 {r['health_non200']}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    results = []
    run_id = int(time.time()) % 100_000
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        for n, target in enumerate(args.targets.split(",")):
            if target == "postgres" and not args.postgres:
                print("skipping postgres: pass --postgres URL", file=sys.stderr)
                continue
            result = await run_target(target, args, Path(tmp), run_id + n)
            print(json.dumps(result), file=sys.stderr)
            results.append(result)
    print(report(results, args))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--targets", default="sqlite,postgres")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", os.environ.get("TEST_POSTGRES_URL")))
    parser.add_argument("--no-attackers", dest="attackers", action="store_false",
                        help="the signed load alone, for comparison")
    parser.add_argument("--pin", action="store_true",
                        help="server on CPU 0, load generators (and a local PostgreSQL, as root) on CPU 1")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--attack", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attack:
        asyncio.run(attack(args.attack, args.seconds))
        return 0
    if args.serve:
        profile = os.environ.get("BENCH_PROFILE")  # diagnosis: cProfile the server into this file
        if profile:
            import cProfile

            with cProfile.Profile() as profiler, contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve(args.database_url))
            profiler.dump_stats(profile)
            return 0
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.database_url))
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
