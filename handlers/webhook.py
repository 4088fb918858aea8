"""``POST /mautic/webhook``: verify, commit the raw delivery, answer 2xx.

Mautic drops events on any non-2xx, unpublishes the webhook on 410, waits without a timeout and
stores our response body in its logs (mautic.md §1.6). So: verify over the raw bytes, store the body
exactly as received (committed before we answer), answer fast with the delivery's id only, and leave
everything else (parsing, per-event dedupe, dead letters, alerts) to the processing job
(``intake.process``, bot/intake/process.py), which splits the delivery into inbox events.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.intake.events import signature_ok
from bot.intake.spool import SpoolFull
from handlers.appkeys import INTAKE, SERVICES
from handlers.limits import read_limited

log = logging.getLogger(__name__)


async def mautic_webhook(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    started = time.perf_counter()
    try:
        raw = await read_limited(request, services.settings.webhook_max_bytes)
    except web.HTTPRequestEntityTooLarge:
        services.metrics.webhook_delivery("too_large", time.perf_counter() - started)
        raise
    try:
        response = await _verify_and_commit(request, raw)
    except Exception:
        services.metrics.webhook_delivery("error", time.perf_counter() - started)  # e.g. the database is down
        raise
    outcome = {200: "accepted", 401: "bad_signature"}.get(response.status, "error")
    services.metrics.webhook_delivery(outcome, time.perf_counter() - started)
    return response


async def _verify_and_commit(request: web.Request, raw: bytes) -> web.Response:
    services = request.app[SERVICES]
    settings = services.settings
    secret = settings.mautic_webhook_secret.get_secret_value() if settings.mautic_webhook_secret else ""
    if not signature_ok(raw, request.headers.get("Webhook-Signature"), secret):
        log.warning("mautic webhook: missing or wrong Webhook-Signature (%d bytes), nothing stored", len(raw))
        return web.json_response({"ok": False, "error": "invalid signature"}, status=401)
    # Committed (in one transaction shared with concurrent deliveries) before we answer; while the database
    # does not answer, written and fsync'd to the local spool instead, and moved into the inbox once it does.
    try:
        receipt = await request.app[INTAKE].accept(raw, services.clock())
    except SpoolFull:
        log.error("mautic webhook: database unavailable and the local spool is full; delivery refused")
        return web.json_response({"ok": False, "error": "database unavailable and local spool full"}, status=503)
    # An opaque id only: Mautic writes this body into its webhook log.
    if receipt.delivery is not None:
        return web.Response(body=b'{"ok":true,"delivery":%d}' % receipt.delivery, content_type="application/json")
    return web.json_response({"ok": True, "spooled": receipt.spooled})
