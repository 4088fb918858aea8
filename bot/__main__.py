"""Command line: ``python -m bot [serve|migrate|audit verify|check]`` (the demo is ``python -m sandbox``)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.settings import ConfigError, Settings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Mautic privacy bot")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    commands.add_parser("migrate", help="create or upgrade the database schema")
    audit = commands.add_parser("audit", help="audit ledger tools")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser("verify", help="check the hash chain and name the first bad entry")
    commands.add_parser("check", help="validate settings and reach Slack and Mautic")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
        if args.command in (None, "serve"):
            return serve(settings)
        if args.command == "migrate":
            from bot.cli import run_migrate

            return asyncio.run(run_migrate(settings))
        if args.command == "audit":
            from bot.cli import run_audit_verify

            return asyncio.run(run_audit_verify(settings))
        if args.command == "check":
            from bot.cli import run_check

            return asyncio.run(run_check(settings))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    parser.print_help()
    return 2


def serve(settings: Settings) -> int:
    from bot.logs import configure_logging

    settings.require_for_serve()  # a missing setting is one line on stderr, before any log output
    configure_logging(settings.log_level)
    asyncio.run(_serve(settings))
    return 0


async def _serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop accepting, let requests finish and close resources."""
    import logging
    import signal

    from aiohttp import web

    from bot.app import create_app

    log = logging.getLogger("bot.serve")
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=20)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    log.info("listening", extra={"host": settings.host, "port": settings.port})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
