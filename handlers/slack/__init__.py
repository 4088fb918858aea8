"""Slack edge: build the Bolt app and register every listener in one place."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import UserFacingError
from bot.logs import install_bolt_log_filter
from bot.services import Services
from handlers.slack import digests, home, intake, requests
from handlers.slack.answers import tell_user
from handlers.slack.commands import register_privacy_command

log = logging.getLogger(__name__)


def build_bolt_app(services: Services) -> AsyncApp:
    settings = services.settings
    assert settings.slack_signing_secret is not None or settings.socket_mode
    bolt = AsyncApp(
        client=services.slack,
        # Socket Mode needs no signing secret: Bolt skips the check for mode="socket_mode" requests.
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "",
        # aiohttp is a long-lived server: answer on ack() and keep working afterwards.
        process_before_response=False,
        # With NoRequestBodies installed: Bolt would log the body of every request failing verification.
        logger=install_bolt_log_filter(),
    )
    register_privacy_command(
        bolt, services, [*requests.SUBCOMMANDS, *intake.SUBCOMMANDS, *digests.SUBCOMMANDS]
    )
    requests.register(bolt, services)
    intake.register(bolt, services)
    digests.register(bolt, services)
    home.register(bolt, services)
    bolt.error(_on_error)
    return bolt


async def _on_error(
    error: Exception, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient,
    response: BoltResponse | None,
) -> None:
    """The one place where listener errors become an ephemeral answer to the user who caused them.

    Listeners must not raise after ``ack()``: Bolt's runner then loses the ack and answers 404. Before
    the ack, the HTTP answer becomes an empty 200, so Slack shows our message instead of its own
    "failed" banner on top of it.
    """
    if response is not None:
        response.status = 200
        response.body = ""
    if isinstance(error, UserFacingError):
        text = error.message
    else:
        ref = uuid.uuid4().hex[:8]
        log.error("listener failed (ref %s): %s", ref, type(error).__name__, exc_info=error)
        text = f"Something went wrong on my side (ref `{ref}`). Nothing was lost; please try again."
    await tell_user(body, respond, client, text)
