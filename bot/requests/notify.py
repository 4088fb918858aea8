"""Keeping Slack in step with a request: its one channel message and replies in its thread."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.requests.blocks import progress_reply, request_message
from bot.requests.view import RequestInfo, info_from_row
from storage import requests as store
from storage.db import unit_of_work

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


def _lock(services: Services, request_id: int) -> contextlib.AbstractAsyncContextManager[None]:
    # Two updates of one message in flight could land out of order; one at a time per request.
    return services.messenger.one_at_a_time(f"request:{request_id}")


async def ensure_posted(services: Services, request_id: int) -> RequestInfo | None:
    """Post the request message once; later calls only return the request."""
    async with _lock(services, request_id):
        async with unit_of_work(services.sessions) as session:
            row = await store.get_request(session, request_id)
            if row is None:
                return None
            info = info_from_row(row)
        if info.message_ts is not None:
            return info
        message = request_message(info, today=services.clock().date())
        response = await services.slack.chat_postMessage(channel=info.channel, **message)
        ts = str(response["ts"])
        async with unit_of_work(services.sessions) as session:
            await store.set_fields(session, request_id, {"message_ts": ts})
            row = await store.get_request(session, request_id)
            assert row is not None
            return info_from_row(row)


async def refresh_message(services: Services, request_id: int) -> RequestInfo | None:
    """Redraw the request message from the database (the state, who decided and when)."""
    async with _lock(services, request_id):
        async with unit_of_work(services.sessions) as session:
            row = await store.get_request(session, request_id)
            info = info_from_row(row) if row is not None else None
        if info is None or info.message_ts is None:
            return info
        message = request_message(info, today=services.clock().date())
        await services.slack.chat_update(channel=info.channel, ts=info.message_ts, **message)
        return info


async def post_in_thread(services: Services, info: RequestInfo, message: dict[str, Any]) -> str | None:
    if info.message_ts is None:
        return None
    response = await services.slack.chat_postMessage(channel=info.channel, thread_ts=info.message_ts, **message)
    return str(response["ts"])


async def safely(what: str, coro: Any) -> Any:
    """Slack being briefly unavailable must not undo a decision already committed; log and go on."""
    try:
        return await coro
    except SlackApiError as exc:
        log.warning("slack call failed while %s: %s", what, exc.response.get("error"))
    except Exception as exc:  # network errors after the SDK's own retries
        log.warning("slack call failed while %s: %s", what, type(exc).__name__)
    return None


class ProgressReply:
    """One thread reply that a long job edits as it goes, at most every ``interval`` seconds."""

    def __init__(self, services: Services, info: RequestInfo, *, interval: float = 3.0) -> None:
        self.services, self.info, self.interval = services, info, interval
        self.ts: str | None = None
        self._last = 0.0

    async def __call__(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        message = progress_reply(text)
        if self.ts is None:
            self.ts = await safely("posting progress", post_in_thread(self.services, self.info, message))
        else:
            await safely("updating progress", self.services.slack.chat_update(
                channel=self.info.channel, ts=self.ts, **message))
