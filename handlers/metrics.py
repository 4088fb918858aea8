"""``GET /metrics``: Prometheus text format, optionally behind ``METRICS_TOKEN`` (a bearer token).

The database gauges are read here, asynchronously, in one short read transaction; rendering then only
formats (prometheus-client's collectors are synchronous and must not touch the database).
"""

from __future__ import annotations

import hmac
from datetime import date

from aiohttp import web

from bot.metrics import CONTENT_TYPE, DueBucket
from bot.requests.deadlines import Urgency, countdown
from handlers.appkeys import SERVICES
from storage.db import unit_of_work
from storage.metrics import read_gauges

_DUE = {Urgency.ON_TIME: "ok", Urgency.DUE_SOON: "soon", Urgency.OVERDUE: "overdue"}


def due_buckets(today: date) -> DueBucket:
    """A due date's urgency label by the requests feature's own countdown (soon: within DUE_SOON_DAYS)."""

    def bucket(due: date) -> str:
        return _DUE[countdown(due, today).urgency]

    return bucket


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    token = services.settings.metrics_token
    if token is not None:
        sent = request.headers.get("Authorization", "")
        expected = "Bearer " + token.get_secret_value()
        # Constant time: the comparison must not tell a prober how much of the token it got right.
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            return web.Response(status=401, text="metrics need the bearer token\n",
                                headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    async with unit_of_work(services.sessions) as session:
        gauges = await read_gauges(session)
    body = services.metrics.render(gauges, due_buckets(services.clock().date()))
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
