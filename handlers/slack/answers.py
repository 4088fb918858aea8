"""How the Slack edge answers the one user who acted: always privately."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient


async def answer_user(ack: AsyncAck, respond: AsyncRespond, text: str) -> None:
    """Answer a command ephemerally: through the ack when it is still unsent, else through ``response_url``."""
    if ack.response is None:
        await ack(text)
    else:
        await respond(text=text, response_type="ephemeral", replace_original=False)


async def tell_user(body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, text: str) -> None:
    """Answer an interaction ephemerally: through ``response_url`` when there is one, else postEphemeral."""
    if body.get("response_url") or body.get("response_urls"):
        await respond(text=text, response_type="ephemeral", replace_original=False)
        return
    user = (body.get("user") or {}).get("id") or body.get("user_id")
    channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
    if user and channel:
        await client.chat_postEphemeral(channel=channel, user=user, text=text)
