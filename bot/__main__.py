"""Command line: ``python -m bot [serve|migrate|audit verify|check|demo]``."""

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
    demo = commands.add_parser("demo", help="run a scripted demo against local stand-ins")
    demo.add_argument("--quiet", action="store_true", help="print only the channel transcript")
    args = parser.parse_args(argv)

    try:
        if args.command == "demo":
            from bot.demo import run_demo

            return asyncio.run(run_demo(quiet=args.quiet))
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
    from aiohttp import web

    from bot.app import create_app
    from bot.logs import configure_logging

    configure_logging(settings.log_level)
    app = create_app(settings)
    # run_app handles SIGTERM/SIGINT: it stops accepting, lets requests finish, then runs cleanup_ctx.
    web.run_app(app, host=settings.host, port=settings.port, shutdown_timeout=20, print=None,
                access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
