"""The app factory: one aiohttp application, its resources as ``cleanup_ctx``, its routes."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.approvals import Approvals
from bot.clock import Clock, system_clock
from bot.home.service import HomeRefresher
from bot.intake.writer import DeliveryWriter
from bot.jobs import JobRunner, SettleObserver
from bot.mautic import MauticClient
from bot.metrics import Metrics
from bot.permissions import Permissions, SlackAudience
from bot.policy import load_policy
from bot.services import Services
from bot.settings import Settings
from bot.slack.messenger import SlackMessenger
from handlers.appkeys import BOLT, ENGINE, HTTP, INTAKE_WRITER, READ_GATE, SERVICES, SESSIONS, SETTINGS
from handlers.jobs import register_jobs, schedule_jobs
from handlers.limits import ReadGate
from handlers.routes import add_routes
from handlers.slack import build_bolt_app
from handlers.slack.socket import OnceSocketModeHandler
from storage.db import SessionFactory, make_engine, make_session_factory
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


def create_app(settings: Settings, tuning: Tuning | None = None) -> web.Application:
    tuning = tuning or Tuning()
    settings.require_for_serve()
    app = web.Application(client_max_size=max(settings.webhook_max_bytes, settings.slack_max_bytes))
    app[SETTINGS] = settings
    app[READ_GATE] = ReadGate(settings.max_concurrent_reads, settings.max_concurrent_large_reads)
    app.cleanup_ctx.append(_database(settings, tuning))
    app.cleanup_ctx.append(_http_session)
    app.cleanup_ctx.append(_services(tuning))
    app.cleanup_ctx.append(_socket_mode(tuning))
    app.cleanup_ctx.append(_scheduler(tuning))

    add_routes(app)
    return app


def server_options(settings: Settings) -> dict[str, Any]:
    """``web.AppRunner`` options every server of this app uses: idle connections (and ones still sending
    their headers) are closed after ``KEEPALIVE_TIMEOUT`` instead of aiohttp's hour, and the connection of
    a refused body is closed once the answer is written, without reading (aiohttp: "lingering") the rest
    an attacker may still be sending."""
    return {"keepalive_timeout": settings.keepalive_timeout, "lingering_time": 0}


def _database(settings: Settings, tuning: Tuning):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        should_migrate = tuning.migrate_on_start if tuning.migrate_on_start is not None else settings.is_sqlite
        if should_migrate:
            await migrate(engine)
        app[ENGINE] = engine
        app[SESSIONS] = make_session_factory(engine)
        yield
        await engine.dispose()

    return ctx


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
    messenger = SlackMessenger(slack)
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


def _services(tuning: Tuning):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = build_services(app[SETTINGS], engine=app[ENGINE], sessions=app[SESSIONS], http=app[HTTP],
                                  clock=tuning.clock, job_poll_interval=tuning.job_poll_interval,
                                  job_backoff_base=tuning.job_backoff_base)
        app[SERVICES] = services
        app[BOLT] = build_bolt_app(services)
        writer = app[INTAKE_WRITER] = DeliveryWriter(services)
        register_jobs(services.jobs, services, writer)
        for observer in tuning.job_observers:
            services.jobs.observe(observer)
        refresher = HomeRefresher(services)
        services.messenger.observe(refresher.on_slack_call)
        refresher.start()
        services.jobs.start()
        yield
        await refresher.stop()
        await services.jobs.stop()

    return ctx


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
