"""How long masking takes on hostile text, and the longest event-loop stall an unsigned POST causes.

Two parts:

* ``mask``: :func:`bot.privacy.redact_emails` on inputs up to 1 MiB shaped to hurt a backtracking pattern
  (a run of letters, ``a@`` repeated, long runs between many ``@``), next to the pattern masking used before
  issue 9 on inputs small enough to finish (its time grows with the square of the size).
* ``post``: the bot's real service on SQLite with production logging (JSON lines, INFO), one unsigned
  POST of 100 KB and of 1 MiB to ``/slack/events`` (Bolt logs a request failing verification), while a
  probe task measures how late the event loop wakes it: the longest stall.

    .venv/bin/python -m bench.mask_stall [--parts mask,post]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import re
import statistics
import tempfile
import time
from pathlib import Path

from bot.logs import JsonFormatter
from bot.privacy import redact_emails

MIB = 1 << 20
OLD_PATTERN = re.compile(r"[\w.+'%-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


def _shapes(size: int) -> dict[str, str]:
    return {
        "letters": "a" * size,
        "a@ repeated": "a@" * (size // 2),
        "runs between @": ("x" * 1000 + "@") * (size // 1001),
        "form body": ("email=jane%40example.com&text=" + "q" * 200 + "&") * (size // 232),
    }


def _best_of(runs: int, function: object, text: str) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(text)  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def bench_mask() -> None:
    print("redact_emails (now), best of 3, ms:")
    for size in (64 * 1024, 256 * 1024, MIB):
        row = {name: _best_of(3, redact_emails, text) * 1000 for name, text in _shapes(size).items()}
        print(f"  {size // 1024:>5} KiB  " + "  ".join(f"{name}: {ms:7.1f}" for name, ms in row.items()))
    print("the pattern used before (OLD_PATTERN.sub), letters only, one run, ms:")
    for size in (4 * 1024, 8 * 1024, 16 * 1024, 32 * 1024):
        ms = _best_of(1, lambda text: OLD_PATTERN.sub("x", text), "a" * size) * 1000
        print(f"  {size // 1024:>5} KiB  {ms:9.1f}")


async def _longest_stall(during: object, tick: float = 0.001) -> float:
    """Run ``during`` (a coroutine) while a probe sleeps ``tick`` again and again; the longest overshoot."""
    worst = 0.0
    stop = asyncio.Event()

    async def probe() -> None:
        nonlocal worst
        while not stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(tick)
            worst = max(worst, time.perf_counter() - start - tick)

    task = asyncio.create_task(probe())
    try:
        await during  # type: ignore[misc]
    finally:
        stop.set()
        await task
    return worst


async def bench_post() -> None:
    from sandbox.harness import sandbox

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:], root.level = [handler], logging.INFO
    with tempfile.TemporaryDirectory() as tmp:
        async with sandbox(f"sqlite:///{Path(tmp) / 'bench.db'}", export_dir=Path(tmp) / "exports") as box:
            for size in (100_000, MIB):
                body = "command=%2Fprivacy&text=dsar+jane%40example.com&" + "a" * size
                stalls = []
                for _ in range(3):
                    async def post(body: str = body) -> None:
                        async with box.http.post(f"{box.url}/slack/events", data=body, headers={
                            "Content-Type": "application/x-www-form-urlencoded",
                            "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64,
                        }) as response:
                            assert response.status in (401, 413), response.status
                    stalls.append(await _longest_stall(post()) * 1000)
                print(f"unsigned POST of {size // 1000:>5} KB to /slack/events: longest loop stall "
                      f"{min(stalls):.1f}–{max(stalls):.1f} ms (median {statistics.median(stalls):.1f}, 3 runs)")
    logged = stream.getvalue()
    print(f"log lines written: {logged.count(chr(10))}, longest {max(map(len, logged.splitlines()), default=0)} "
          f"characters; body in the log: {'aaaaaaaaaa' in logged}; address in the log: {'jane' in logged}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="mask,post")
    parts = parser.parse_args().parts.split(",")
    if "mask" in parts:
        bench_mask()
    if "post" in parts:
        asyncio.run(bench_post())


if __name__ == "__main__":
    main()
