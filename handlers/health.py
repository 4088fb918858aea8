"""``GET /healthz``: 200 when the database answers, 503 when it does not."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from handlers.appkeys import SERVICES
from storage.db import ping

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(ping(request.app[SERVICES].engine), timeout=2.0)
    except Exception as exc:
        log.warning("health check: database unavailable (%s)", type(exc).__name__)
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})
