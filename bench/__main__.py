"""``python -m bench [NAME [ARGS…]]`` (``make bench NAME=…``): run one benchmark, or list them.

Each benchmark is a module of this package with its own arguments (``python -m bench.NAME --help``);
bench/README.md gives the commands and figures.
"""

from __future__ import annotations

import runpy
import sys

BENCHMARKS = {
    "webhook_intake": "sustained Mautic webhook intake against a bare aiohttp handler",
    "intake_wrk": "webhook intake under wrk (50 connections, 20 s): bare, SQLite, PostgreSQL, web/worker layouts",
    "retention_digest": "retention digest and purge-style stale scan at 100k and 1M contacts",
    "hostile_load": "signed intake and /healthz under unsigned 1 MiB floods and 200 slow connections",
    "access_package": "access package for 100,000 timeline events; /privacy dsar ack latency, slow Mautic",
    "own_retention": "the bot's own retention deleting 160,000 old rows in batches, SQLite and PostgreSQL",
    "mask_stall": "masking on hostile text up to 1 MiB; loop stall of an unsigned 1 MiB POST",
    "pg_outage": "a PostgreSQL outage under 10 webhook deliveries/s: all answered 2xx, each processed once",
    "crash_points": "kill -9 at five points, then restart: handled once, posted once, resumed within 10 s",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print("usage: python -m bench NAME [ARGS…]   (make bench NAME=…)\n")
        for name, what in BENCHMARKS.items():
            print(f"  {name:<18} {what}")
        return 0 if not argv else 2
    sys.argv = [f"bench.{argv[0]}", *argv[1:]]
    runpy.run_module(f"bench.{argv[0]}", run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
