"""The bot's real aiohttp service wired to the local stand-ins, for tests, the demo and benchmarks.

``Sandbox`` starts a FakeSlack and a FakeMautic on loopback, seeds the privacy channel and its
people, and runs the real application (``create_app``) on a real TCP port. Requests reach it
signed exactly as Slack and Mautic sign them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlmodel import col, select

from bot.app import Tuning, create_app, server_options
from bot.services import Services
from bot.settings import Settings
from handlers.appkeys import INTAKE_WRITER, SERVICES
from sandbox.jobs import JobWatcher
from sandbox.mautic import FakeMautic, send_webhook
from sandbox.slack import FakeSlack, SlackUserAgent
from storage.db import unit_of_work
from storage.jobs import Job, JobState

PRIVACY_CHANNEL = "C0PRIVACY"
OTHER_CHANNEL = "C0RANDOM"
DPO_GROUP = "S0DPO"


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    email: str


# A small cast: a marketer who files requests, two approvers (one directly, one through the DPO
# user group), and someone who may do neither.
ALICE = Person("U0ALICE", "alice", "alice@acme.test")
BOB = Person("U0BOB", "bob", "bob@acme.test")
CAROL = Person("U0CAROL", "carol", "carol@acme.test")
MALLORY = Person("U0MALLORY", "mallory", "mallory@acme.test")
CAST = (ALICE, BOB, CAROL, MALLORY)


@dataclass
class Sandbox:
    settings: Settings
    slack: FakeSlack
    mautic: FakeMautic
    http: aiohttp.ClientSession
    tuning: Tuning
    runner: web.AppRunner | None = None
    url: str = ""
    user: SlackUserAgent = field(init=False)
    jobs: JobWatcher = field(default_factory=JobWatcher)  # every job of the bot's runner, across restarts

    @property
    def app(self) -> web.Application:
        assert self.runner is not None
        return self.runner.app

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def channel(self) -> str:
        return PRIVACY_CHANNEL

    async def start_bot(self) -> None:
        tuning = replace(self.tuning, job_observers=(*self.tuning.job_observers, self.jobs))
        app = create_app(self.settings, tuning)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0,
                                    **server_options(self.settings))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        secret = self.settings.slack_signing_secret
        assert secret is not None
        self.user = SlackUserAgent(self.http, f"{self.url}/slack/events", secret.get_secret_value(), self.slack,
                                   socket_mode=self.slack.socket_mode if self.settings.socket_mode else None)

    async def stop_bot(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def restart_bot(self) -> None:
        """Stop the service (as a deploy or crash would) and start it again on the same database."""
        await self.stop_bot()
        await self.start_bot()

    async def jobs_idle(self, timeout: float = 10.0, *, kinds: Iterable[str] | None = None) -> None:
        """Wait until no job (of ``kinds``, if given) is queued or running: each busy job is waited for
        through the runner's own notice that it settled, never by sleeping."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # A delivery the webhook answered may still wait for the writer's watcher to queue its processing:
            # queue it now, so "idle" cannot mean "not queued yet".
            await self.app[INTAKE_WRITER].schedule_processing()
            # Counted before the query: a job that settles in between is then either gone from the
            # query or already past its count, so no wait can miss its notice.
            before = {job_id: self.jobs.seen(job_id) for job_id in self.jobs.outcomes}
            query = select(Job.id).where(col(Job.state).in_([JobState.QUEUED, JobState.RUNNING]))
            if kinds is not None:
                query = query.where(col(Job.kind).in_(list(kinds)))
            async with unit_of_work(self.services.sessions) as session:
                busy = (await session.exec(query)).all()
            if not busy:
                return
            job_id = busy[0]
            assert job_id is not None
            await self.jobs.wait_past(job_id, before.get(job_id, 0), timeout=max(deadline - loop.time(), 0.001))

    async def command(self, user: Person, text: str, *, channel: str = PRIVACY_CHANNEL) -> Any:
        return await self.user.command(user.id, channel, text)

    async def webhook(self, payload: dict[str, Any] | bytes, *, secret: str | None = None) -> tuple[int, str]:
        webhook_secret = self.settings.mautic_webhook_secret
        assert webhook_secret is not None
        return await send_webhook(
            self.http, f"{self.url}/mautic/webhook", payload, secret or webhook_secret.get_secret_value()
        )


def sandbox_settings(
    database_url: str, slack: FakeSlack, mautic: FakeMautic, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": slack.token,
        "slack_signing_secret": "sandbox-signing-secret-" + secrets.token_hex(8),
        "slack_api_url": slack.api_url,
        "privacy_channel": PRIVACY_CHANNEL,
        "privacy_approvers": [BOB.id, DPO_GROUP],
        "mautic_base_url": mautic.base_url,
        "mautic_username": mautic.username,
        "mautic_password": mautic.password,
        "mautic_webhook_secret": secrets.token_hex(32),
        "database_url": database_url,
        "bot_secret_key": secrets.token_hex(32),
        "mautic_timeout_seconds": 10.0,
        # Refusals answered at once: tests send many on purpose; tests/intake/test_hostile_bodies.py holds them.
        "refusal_delay": 0.0,
        # Never the working directory's ./spool (a real instance's): a fresh path, created only if used.
        "spool_dir": Path(tempfile.gettempdir()) / f"privacy-bot-sandbox-spool-{secrets.token_hex(8)}",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def reset_postgres_schema(url: str) -> None:
    """Drop and recreate the ``public`` schema: a fresh, empty database for a test or a benchmark run.
    Only ever point this at a throw-away database."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def seed_workspace(slack: FakeSlack) -> None:
    for person in CAST:
        slack.add_user(person.id, person.name, person.email)
    slack.add_channel(PRIVACY_CHANNEL, "privacy-ops", members=[p.id for p in CAST])
    slack.add_channel(OTHER_CHANNEL, "random", members=[p.id for p in CAST])
    slack.add_usergroup(DPO_GROUP, [CAROL.id])


@contextlib.asynccontextmanager
async def sandbox(
    database_url: str,
    *,
    tuning: Tuning | None = None,
    start_bot: bool = True,
    **settings_overrides: Any,
) -> AsyncIterator[Sandbox]:
    tuning = tuning or Tuning(job_poll_interval=0.2, job_backoff_base=0.05, start_scheduler=False)
    async with FakeSlack() as slack, FakeMautic() as mautic, aiohttp.ClientSession() as http:
        seed_workspace(slack)
        settings = sandbox_settings(database_url, slack, mautic, **settings_overrides)
        box = Sandbox(settings=settings, slack=slack, mautic=mautic, http=http, tuning=tuning)
        if start_bot:
            await box.start_bot()
        try:
            yield box
        finally:
            await box.stop_bot()
        # Reached only when the body succeeded: a payload Slack would refuse fails the test, whichever
        # call carried it and whether or not the bot noticed the refusal.
        slack.assert_all_valid()
