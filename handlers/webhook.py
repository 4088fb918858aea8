"""``POST /mautic/webhook``: verify, commit the raw delivery, answer 2xx.

Mautic drops events on any non-2xx, unpublishes the webhook on 410, waits without a timeout and
stores our response body in its logs (mautic.md §1.6). So: verify over the raw bytes while they stream
in (``handlers.limits``), store the body exactly as received (committed before we answer; while the
database does not answer, fsync'd to the local spool instead), answer fast with the delivery's id only,
and leave everything else (parsing, per-event dedupe, dead letters, alerts) to the processing job
(``intake.process``, bot/intake/process.py), which splits the delivery into inbox events.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.intake.events import WebhookSignature
from bot.intake.spool import SpoolFull
from handlers.appkeys import INTAKE, READ_GATE, SERVICES
from handlers.limits import BodyLimits, BodyRefused, read_verified

log = logging.getLogger(__name__)


async def mautic_webhook(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    settings = services.settings
    started = time.perf_counter()
    secret = settings.mautic_webhook_secret.get_secret_value() if settings.mautic_webhook_secret else ""
    limits = BodyLimits(settings.webhook_max_bytes, settings.body_read_timeout)
    try:
        raw = await read_verified(request, limits, request.app[READ_GATE],
                                  WebhookSignature(request.headers.get("Webhook-Signature"), secret))
    except BodyRefused as refused:
        if refused.outcome == "bad_signature":
            log.warning("mautic webhook: missing or wrong Webhook-Signature, nothing stored")
        services.metrics.webhook_delivery(refused.outcome, time.perf_counter() - started)
        return refused.response
    try:
        response = await store_delivery(request, raw)
    except Exception:
        services.metrics.webhook_delivery("error", time.perf_counter() - started)
        raise
    services.metrics.webhook_delivery("accepted" if response.status == 200 else "error",
                                      time.perf_counter() - started)
    return response


async def store_delivery(request: web.Request, raw: bytes) -> web.Response:
    """The one write of a verified delivery: committed (in one transaction shared with concurrent
    deliveries) before we answer; while the database does not answer, written and fsync'd to the local
    spool instead, and moved into the inbox once it does."""
    try:
        receipt = await request.app[INTAKE].accept(raw, request.app[SERVICES].clock())
    except SpoolFull:
        log.error("mautic webhook: database unavailable and the local spool is full; delivery refused")
        return web.json_response({"ok": False, "error": "database unavailable and local spool full"}, status=503)
    # An opaque id only: Mautic writes this body into its webhook log.
    if receipt.delivery is not None:
        return web.Response(body=b'{"ok":true,"delivery":%d}' % receipt.delivery, content_type="application/json")
    return web.json_response({"ok": True, "spooled": receipt.spooled})
