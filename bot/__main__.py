"""Command line: ``python -m bot [serve|migrate|audit verify|check|setup …]`` (the demo is ``python -m sandbox``)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.settings import ConfigError, Settings, diagnose_settings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Mautic privacy bot")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    commands.add_parser("migrate", help="create or upgrade the database schema")
    audit = commands.add_parser("audit", help="audit ledger tools")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser("verify", help="check the hash chain and name the first bad entry")
    commands.add_parser("check", help="validate settings and reach Slack and Mautic")
    setup = commands.add_parser("setup", help="one-command set-up of Mautic, Slack or a first .env")
    setup_commands = setup.add_subparsers(dest="setup_command", required=True)
    setup_mautic = setup_commands.add_parser(
        "mautic", help="check the API permissions, create or update the webhook, send a test delivery")
    setup_mautic.add_argument("--dry-run", action="store_true", help="print what it would do, change nothing")
    setup_commands.add_parser("slack", help="print the manifest; with SLACK_CONFIG_TOKEN create or update the app")
    setup_env = setup_commands.add_parser("env", help="write a .env with every setting and a fresh BOT_SECRET_KEY")
    setup_env.add_argument("--path", default=".env", help="file to write (default .env; never overwritten)")
    args = parser.parse_args(argv)

    if args.command == "setup" and args.setup_command == "env":  # before any settings: there may be none yet
        from bot.setup.env import run_setup_env

        return run_setup_env(args.path)
    if args.command in (None, "serve", "check"):
        _, problems = diagnose_settings()  # every missing or malformed setting at once
        if problems and args.command == "check":
            for problem in problems:
                print(f"[FAIL] settings: {problem}")
            return 1
        for problem in problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        if problems:
            return 2
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
        if args.command == "setup":
            from bot.setup import run_setup

            return run_setup(settings, args.setup_command, dry_run=getattr(args, "dry_run", False))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
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

    from bot.app import create_app, server_options

    log = logging.getLogger("bot.serve")
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=20,
                           **server_options(settings))
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
