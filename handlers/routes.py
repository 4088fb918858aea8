"""Every HTTP route of the service, in one place."""

from __future__ import annotations

from aiohttp import web

from handlers.appkeys import SETTINGS
from handlers.exports import add_export_routes
from handlers.health import healthz
from handlers.metrics import metrics
from handlers.slack.http import slack_events
from handlers.webhook import mautic_webhook


def add_routes(app: web.Application) -> None:
    if not app[SETTINGS].socket_mode:  # under Socket Mode, Slack delivers over the bot's own WebSocket
        app.router.add_post("/slack/events", slack_events)
    app.router.add_post("/mautic/webhook", mautic_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    add_export_routes(app)
