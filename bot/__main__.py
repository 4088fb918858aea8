"""Command line: ``python -m bot [serve|worker|migrate|audit verify|audit contact ID|check|ropa|setup …]``; the demo is
``python -m sandbox``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.settings import ConfigError, Settings, diagnose_settings, load_settings

if TYPE_CHECKING:
    from bot.app import Role

WORKER_NICENESS = 10  # added to a worker's scheduling niceness (lower priority than the web processes)


def _on_database(command: Callable[[], int]) -> int:
    """Run a command that only talks to the database: a database that cannot be reached or refuses gets one
    clear line (exit 1), not a traceback. The URL is never printed: it may carry the password."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return command()
    except Exception as exc:
        # OSError: nothing answers; asyncpg's own errors: the server refused (role, password, database name).
        if not isinstance(exc, OSError | SQLAlchemyError) and type(exc).__module__.split(".", 1)[0] != "asyncpg":
            raise
        reason = str(exc).split("\n", 1)[0][:300]  # SQLAlchemy appends the statement and a link
        print(f"database error: {type(exc).__name__}: {reason} (DATABASE_URL: is the database up and "
              "reachable, are the user, password and database name right?)", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Mautic privacy bot")
    commands = parser.add_subparsers(dest="command")
    serve_parser = commands.add_parser("serve", help="run the service (the default)")
    serve_parser.add_argument("--no-worker", action="store_true",
                              help="web only: answer requests and enqueue jobs; `worker` processes run them")
    serve_parser.add_argument("--listener-child", action="store_true", help=argparse.SUPPRESS)
    commands.add_parser("worker", help="run the job runner and the scheduler, without a web listener")
    commands.add_parser("migrate", help="create or upgrade the database schema")
    audit = commands.add_parser("audit", help="audit ledger tools")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser("verify", help="check the hash chain and name the first bad entry")
    audit_contact = audit_commands.add_parser(
        "contact", help="list the entries about one Mautic contact (the ledger names it by a keyed ref)")
    audit_contact.add_argument("contact_id", type=int, help="the Mautic contact id, e.g. 42")
    commands.add_parser("check", help="validate settings and reach Slack and Mautic")
    ropa_parser = commands.add_parser(
        "ropa", help="write the record of processing (Art. 30) and a DPIA screening as Markdown and CSV")
    ropa_parser.add_argument("--out", required=True,
                             help="file to write: FILE.md and FILE.csv (a .md or .csv suffix is replaced)")
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
    if args.command in (None, "serve", "worker", "check"):
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
            return serve(settings, role="web" if getattr(args, "no_worker", False) else "all",
                         spawn_listeners=not getattr(args, "listener_child", False))
        if args.command == "worker":
            return serve(settings, role="worker")
        if args.command == "migrate":
            from bot.cli import run_migrate

            return _on_database(lambda: asyncio.run(run_migrate(settings)))
        if args.command == "audit":
            from bot.cli import run_audit_contact, run_audit_verify

            if args.audit_command == "contact":
                return _on_database(lambda: asyncio.run(run_audit_contact(settings, args.contact_id)))
            return _on_database(lambda: asyncio.run(run_audit_verify(settings)))
        if args.command == "check":
            from bot.cli import run_check

            return asyncio.run(run_check(settings))
        if args.command == "ropa":
            from bot.cli import run_ropa

            return run_ropa(settings, args.out)
        if args.command == "setup":
            from bot.setup import run_setup

            return run_setup(settings, args.setup_command, dry_run=getattr(args, "dry_run", False))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    parser.print_help()
    return 2


def serve(settings: Settings, *, role: Role = "all", spawn_listeners: bool = True) -> int:
    from bot.logs import configure_logging

    settings.require_for_serve()  # a missing setting is one line on stderr, before any log output
    configure_logging(settings.log_level)
    asyncio.run(_serve(settings, role, spawn_listeners=spawn_listeners))
    return 0


async def _serve(settings: Settings, role: Role, *, spawn_listeners: bool = True) -> None:
    """Run until SIGTERM or SIGINT, then stop accepting, let requests (and jobs) finish and close resources.

    A worker is the same application without routes and without a site: its cleanup contexts start the
    job runner and the scheduler, and stop them on the same signals."""
    import logging
    import signal

    from aiohttp import web

    from bot.app import create_app, freeze_startup_heap, server_options

    log = logging.getLogger("bot.serve")
    runner = web.AppRunner(create_app(settings, role=role), access_log=None, shutdown_timeout=20,
                           **server_options(settings))
    await runner.setup()
    freeze_startup_heap()
    listeners: list[asyncio.subprocess.Process] = []
    if role == "worker":
        # Where web and worker share CPUs, the kernel serves intake first and processing takes what is left:
        # across processes what DeliveryWriter.processing_turn does within one. Alone on its CPUs, no effect.
        os.nice(WORKER_NICENESS)
        log.info("worker running", extra={"niceness": WORKER_NICENESS})
    else:
        await web.TCPSite(runner, settings.host, settings.port, reuse_port=settings.web_processes > 1).start()
        log.info("listening", extra={"host": settings.host, "port": settings.port, "role": role})
        if spawn_listeners:
            # Started once this process is up (SQLite migrates on start): web-only listeners on the same port.
            for _ in range(settings.web_processes - 1):
                listeners.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot", "serve", "--no-worker", "--listener-child"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    for child in listeners:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
    await runner.cleanup()
    for child in listeners:
        await child.wait()
    log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
