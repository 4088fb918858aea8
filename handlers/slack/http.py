"""``POST /slack/events``: verify the body as it streams in, then hand it to Bolt's dispatcher."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest

from handlers.appkeys import BOLT, READ_GATE, SETTINGS
from handlers.limits import BodyLimits, BodyRefused, read_verified

# Slack's replay window: a request signed more than five minutes away from our clock is refused
# (https://api.slack.com/authentication/verifying-requests-from-slack; Bolt's SignatureVerifier does the same).
MAX_CLOCK_SKEW_SECONDS = 300

log = logging.getLogger(__name__)


class SlackSignature:
    """``X-Slack-Signature`` = ``v0=`` + hex(HMAC-SHA256(signing secret, ``v0:<timestamp>:<body>``)), fed
    chunk by chunk; headers that cannot match (missing, malformed, stale) fail before the body is read.
    Bolt checks the same again on the joined body; this one exists so an unsigned body is never buffered
    whole nor handed to Bolt (whose failure log would carry it)."""

    def __init__(self, timestamp: str | None, header: str | None, secret: str, now: float) -> None:
        self.expected: bytes | None = None
        self._mac: hmac.HMAC | None = None
        if not secret or not timestamp or not header or not header.startswith("v0="):
            return
        if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            return
        self.expected = header[3:].strip().encode("ascii", "replace")
        self._mac = hmac.new(secret.encode(), f"v0:{timestamp}:".encode(), hashlib.sha256)

    @property
    def possible(self) -> bool:
        return self._mac is not None and len(self.expected or b"") == 64

    def update(self, chunk: bytes) -> None:
        if self._mac is not None:
            self._mac.update(chunk)

    def matches(self) -> bool:
        if self._mac is None or self.expected is None:
            return False
        return hmac.compare_digest(self._mac.hexdigest().encode("ascii"), self.expected)


async def slack_events(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    signature = SlackSignature(request.headers.get("X-Slack-Request-Timestamp"),
                               request.headers.get("X-Slack-Signature"), secret, time.time())
    try:
        await read_verified(request, BodyLimits(settings.slack_max_bytes, settings.body_read_timeout),
                            request.app[READ_GATE], signature)
    except BodyRefused as refused:
        if refused.outcome == "bad_signature":  # the answer Bolt gives a request that fails verification
            # Bolt would log "Invalid request signature" here; our line says the same and never the body.
            log.warning("slack events: missing, stale or wrong X-Slack-Signature, nothing handled")
            refused.response = web.json_response({"error": "invalid request"}, status=401)
            refused.response.force_close()
        return refused.response
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
