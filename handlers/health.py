"""``GET /healthz``: 200 when the database answers (a webhook commit within the last second counts as an
answer; otherwise it is pinged); while it does not, 200 "degraded" as long as webhook
deliveries are being kept in the local spool (this is still the place to send them), 503 once they cannot be.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from handlers.appkeys import INTAKE, INTAKE_WRITER, SERVICES
from storage.db import ping

log = logging.getLogger(__name__)


# A webhook group commit that succeeded this recently shows the database answers: no ping needed. Under
# intake load (when commits are frequent) a ping is one more database round trip queued behind the rest.
FRESH_COMMIT_SECONDS = 1.0


async def healthz(request: web.Request) -> web.Response:
    intake = request.app[INTAKE].status()
    try:
        fresh = intake["intake"] == "ok" and request.app[INTAKE_WRITER].committed_within(FRESH_COMMIT_SECONDS)
        if not fresh:
            await asyncio.wait_for(ping(request.app[SERVICES].engine), timeout=2.0)
    except Exception as exc:
        log.warning("health check: database unavailable (%s)", type(exc).__name__)
        if request.app[INTAKE].spool_has_room():
            return web.json_response({"status": "degraded", "database": "down", **intake,
                                      "reason": "database unavailable; webhook deliveries go to the local spool"})
        return web.json_response({"status": "unavailable", "database": "down", **intake}, status=503)
    if intake["intake"] != "ok":  # the database is back, the spool not moved yet
        return web.json_response({"status": "degraded", "database": "ok", **intake})
    return web.json_response({"status": "ok", "database": "ok"})
