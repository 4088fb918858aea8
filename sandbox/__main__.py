"""``python -m sandbox`` (``make demo``): the scripted demo against the local Slack and Mautic stand-ins."""

from __future__ import annotations

import argparse
import asyncio
import sys

from sandbox.demo import run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="mautic-privacy-bot demo")
    parser.add_argument("--quiet", action="store_true", help="print only the channel transcript")
    args = parser.parse_args(argv)
    return asyncio.run(run_demo(quiet=args.quiet))


if __name__ == "__main__":
    sys.exit(main())
