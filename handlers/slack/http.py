"""``POST /slack/events``: hands signed Slack requests to Bolt's dispatcher."""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest

from handlers.appkeys import BOLT, SETTINGS
from handlers.limits import read_limited


async def slack_events(request: web.Request) -> web.Response:
    await read_limited(request, request.app[SETTINGS].slack_max_bytes)
    bolt_request = fix_payload_substring_parsing(await to_bolt_request(request))
    return await to_aiohttp_response(await request.app[BOLT].async_dispatch(bolt_request))


def fix_payload_substring_parsing(req: AsyncBoltRequest) -> AsyncBoltRequest:
    """Work around bolt-python parsing any form body that merely contains the word "payload" as an
    interactivity payload, which turns ``/privacy erase payload@example.com`` into an empty body
    and a 404 (``slack_bolt.request.internals.parse_body``)."""
    if req.content_type == "application/x-www-form-urlencoded" and not req.body and req.raw_body:
        form = dict(parse_qsl(req.raw_body, keep_blank_values=True))
        if "payload" not in form:
            req.body = form
            req.context = build_async_context(AsyncBoltContext({}), req.body)
    return req
