"""The app factory: one aiohttp application, its resources as ``cleanup_ctx``, its routes."""

from __future__ import annotations

import gc
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.approvals import Approvals
from bot.clock import Clock, system_clock
from bot.home.service import HomeRefresher
from bot.intake.spool import DeliverySpool, SpoolingIntake
from bot.intake.writer import DeliveryWriter
from bot.jobs import JobRunner, SettleObserver
from bot.mautic import MauticClient
from bot.metrics import Metrics
from bot.permissions import Permissions, SlackAudience
from bot.policy import load_policy
from bot.requests.execution import sweep_leftover_exports
from bot.services import Services
from bot.settings import Settings
from bot.slack.messenger import SlackMessenger
from handlers.appkeys import BOLT, ENGINE, HTTP, INTAKE, INTAKE_WRITER, READ_GATE, SERVICES, SESSIONS, SETTINGS
from handlers.jobs import register_jobs, schedule_jobs
from handlers.limits import ReadGate
from handlers.routes import add_routes
from handlers.slack import build_bolt_app
from handlers.slack.socket import OnceSocketModeHandler
from storage.db import SessionFactory, make_engine, make_session_factory
from storage.ledger import derive_key, use_key
from storage.migrate import migrate

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Tuning:
    """Knobs tests and benchmarks turn; production uses the defaults."""

    clock: Clock = system_clock
    job_poll_interval: float = 2.0
    job_backoff_base: float = 2.0
    start_scheduler: bool = True
    migrate_on_start: bool | None = None  # None: only on SQLite, as documented
    job_observers: tuple[SettleObserver, ...] = ()  # told whenever a job settles (tests wait on this)
    socket_ping_interval: float = 10.0  # Socket Mode keep-alive (Bolt's default); also the reconnect pause
    # A separate worker is not woken by the web process that enqueues (another process), so it looks more often.
    worker_poll_interval: float = 0.25


# What one process runs: "all" (web, job runner and scheduler: one process does everything, as on SQLite),
# "web" (requests and Socket Mode only; jobs it enqueues run in a worker) or "worker" (job runner and
# scheduler, no listener). Web and worker processes scale apart; they meet in the database's job table.
Role = Literal["all", "web", "worker"]


def create_app(settings: Settings, tuning: Tuning | None = None, *, role: Role = "all") -> web.Application:
    """The service for ``role``; a worker's app has no routes and is started without a site."""
    tuning = tuning or Tuning()
    settings.require_for_serve()
    app = web.Application(client_max_size=max(settings.webhook_max_bytes, settings.slack_max_bytes))
    app[SETTINGS] = settings
    app[READ_GATE] = ReadGate(settings.max_concurrent_reads, settings.max_concurrent_large_reads,
                              refusal_delay=settings.refusal_delay)
    app.cleanup_ctx.append(_database(settings, tuning))
    app.cleanup_ctx.append(_http_session)
    app.cleanup_ctx.append(_services(tuning, role))
    if role != "worker":
        app.cleanup_ctx.append(_socket_mode(tuning))
        add_routes(app)
    if role != "web":
        app.cleanup_ctx.append(_scheduler(tuning))
    return app


def freeze_startup_heap() -> None:
    """Once the service has started: collect, then move every object alive now (modules, SQLAlchemy's
    mappings and compiled caches, Bolt, pydantic models) out of the garbage collector's reach. A full
    collection otherwise walks all of them, and under load one ran every second or two, holding the event
    loop 75-110 ms each time (bench/README.md, hostile load). What the service allocates later is still
    collected as usual. For long-running processes only: nothing frozen is ever freed."""
    gc.collect()
    gc.freeze()


def server_options(settings: Settings) -> dict[str, Any]:
    """``web.AppRunner`` options every server of this app uses: idle connections (and ones still sending
    their headers) are closed after ``KEEPALIVE_TIMEOUT`` instead of aiohttp's hour, and the connection of
    a refused body is closed once the answer is written, without reading (aiohttp: "lingering") the rest
    an attacker may still be sending."""
    return {"keepalive_timeout": settings.keepalive_timeout, "lingering_time": 0}


def _database(settings: Settings, tuning: Tuning):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        use_ledger_key(engine, settings)
        should_migrate = tuning.migrate_on_start if tuning.migrate_on_start is not None else settings.is_sqlite
        if should_migrate:
            await migrate(engine)
        app[ENGINE] = engine
        app[SESSIONS] = make_session_factory(engine)
        yield
        await engine.dispose()

    return ctx


def use_ledger_key(engine: AsyncEngine, settings: Settings) -> None:
    """Chain the audit ledger under the key derived from BOT_SECRET_KEY (storage.ledger)."""
    if settings.bot_secret_key is not None:
        use_key(engine, derive_key(settings.bot_secret_key.get_secret_value()))


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    # One shared client session for Slack and Mautic; connection reuse matters for exports.
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), trust_env=False)
    app[HTTP] = session
    yield
    await session.close()


def build_slack_client(settings: Settings, http: aiohttp.ClientSession) -> AsyncWebClient:
    assert settings.slack_bot_token is not None
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_base,
        session=http,
        # No SDK retry handlers: every post, update and upload goes through the SlackMessenger, whose one
        # policy (Retry-After, backoff, give-up) must not be multiplied by a second one underneath it.
        retry_handlers=[],
    )


def build_mautic_client(settings: Settings, http: aiohttp.ClientSession,
                        metrics: Metrics | None = None) -> MauticClient:
    assert settings.mautic_base_url is not None
    return MauticClient(
        http,
        settings.mautic_base_url,
        username=settings.mautic_username,
        password=settings.mautic_password.get_secret_value() if settings.mautic_password else None,
        client_id=settings.mautic_client_id,
        client_secret=(
            settings.mautic_client_secret.get_secret_value() if settings.mautic_client_secret else None
        ),
        timeout=settings.mautic_timeout_seconds,
        on_call=metrics.mautic_call if metrics is not None else None,
    )


def build_services(settings: Settings, *, engine: AsyncEngine, sessions: SessionFactory,
                   http: aiohttp.ClientSession, clock: Clock = system_clock, job_poll_interval: float = 2.0,
                   job_backoff_base: float = 2.0) -> Services:
    """Everything the core needs, built once; a bad policy file stops start-up with a one-line reason."""
    slack = build_slack_client(settings, http)
    metrics = Metrics()
    jobs = JobRunner(sessions, clock=clock, poll_interval=job_poll_interval, backoff_base=job_backoff_base)
    jobs.observe(metrics.job_settled)
    messenger = SlackMessenger(slack, sessions=sessions)
    messenger.observe(metrics.slack_call)
    permissions = Permissions(
        approvers=SlackAudience(settings.privacy_approvers, slack),
        requesters=SlackAudience(settings.privacy_requesters, slack),
    )
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        http=http,
        slack=slack,
        messenger=messenger,
        mautic=build_mautic_client(settings, http, metrics),
        jobs=jobs,
        permissions=permissions,
        approvals=Approvals(permissions, settings.approval_ttl),
        policy=load_policy(settings.privacy_policy_file, settings.consent_fields,
                           controller=settings.privacy_controller, contact=settings.privacy_contact),
        clock=clock,
        metrics=metrics,
        instance_id=f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
    )


def _services(tuning: Tuning, role: Role):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        poll = tuning.worker_poll_interval if role == "worker" else tuning.job_poll_interval
        services = build_services(app[SETTINGS], engine=app[ENGINE], sessions=app[SESSIONS], http=app[HTTP],
                                  clock=tuning.clock, job_poll_interval=poll,
                                  job_backoff_base=tuning.job_backoff_base)
        app[SERVICES] = services
        app[BOLT] = build_bolt_app(services)
        writer = app[INTAKE_WRITER] = DeliveryWriter(services, serves_web=role != "worker")
        settings = services.settings
        intake = app[INTAKE] = SpoolingIntake(services, writer,
                                              DeliverySpool(settings.spool_dir, settings.spool_max_bytes))
        register_jobs(services.jobs, services, writer)
        for observer in tuning.job_observers:
            services.jobs.observe(observer)
        refresher = HomeRefresher(services)
        services.messenger.observe(refresher.on_slack_call)
        refresher.start()
        await _sweep_exports(services)
        if role != "web":  # a web process only stores and enqueues; a worker claims and runs
            services.jobs.start()
            writer.start_watching(poll)  # finds deliveries stored by any process and queues their processing
        intake.start()  # moves spooled deliveries (this process's, or a dead one's) in once the database answers
        yield
        await intake.stop()
        await writer.stop_watching()
        await refresher.stop()
        await services.jobs.stop()

    return ctx


async def _sweep_exports(services: Services) -> None:
    """Leftover package files go at start (a crash mid-build leaves one); a database not migrated yet
    (PostgreSQL, before `migrate`) only postpones that to the daily job."""
    try:
        await sweep_leftover_exports(services)
    except SQLAlchemyError as exc:
        log.warning("export dir not swept at start: %s", type(exc).__name__)


def _socket_mode(tuning: Tuning):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        token = services.settings.slack_app_token
        if token is None:
            yield
            return
        handler = OnceSocketModeHandler(app[BOLT], services, token.get_secret_value(),
                                        ping_interval=tuning.socket_ping_interval)
        try:
            await handler.open()
        except Exception:
            await handler.close_async()
            raise
        log.info("slack: connected over Socket Mode")
        yield
        await handler.close_async()

    return ctx


def _scheduler(tuning: Tuning):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        scheduler = AsyncIOScheduler(timezone=services.settings.digest_timezone)
        runs = None
        if tuning.start_scheduler:
            runs = schedule_jobs(scheduler, services)
            scheduler.start()
        yield
        if scheduler.running:
            scheduler.pause()  # no new runs; let the ones in flight finish before resources close
            if runs is not None:
                await runs.drain()
            scheduler.shutdown(wait=False)

    return ctx
