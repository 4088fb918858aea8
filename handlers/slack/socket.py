"""Socket Mode: Slack delivers commands, clicks, view submissions and events over a WebSocket the bot opens
(``apps.connections.open`` with the app-level token), so no public ``/slack/events`` endpoint is needed.

Bolt's aiohttp adapter does the protocol (hello, envelopes, acks, reconnects: slack_sdk's
``socket_mode/aiohttp`` client); this edge only makes sure a redelivered envelope is handled once.
"""

from __future__ import annotations

import logging

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.services import Services
from bot.slack.deliveries import delivery_key, first_delivery

log = logging.getLogger(__name__)


class OnceSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's handler, with each delivery claimed in the database first: a copy is acknowledged, not handled."""

    def __init__(self, bolt: AsyncApp, services: Services, app_token: str, *, ping_interval: float) -> None:
        super().__init__(bolt, app_token, logger=logging.getLogger("slack_sdk.socket_mode"),
                         web_client=services.slack, ping_interval=ping_interval)
        self.services = services

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        key = delivery_key(req.envelope_id, req.payload)
        if not await first_delivery(self.services.sessions, key, self.services.clock()):
            log.info("socket mode: %s (%s, retry %s) was handled already; acknowledging the copy",
                     req.envelope_id, req.type, req.retry_attempt)
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        await super().handle(client, req)

    async def open(self) -> None:
        """Connect; a refused app token stops start-up with Slack's error instead of retrying for ever."""
        client = self.client
        client.wss_uri = await client.issue_new_wss_url()
        await client.connect()
