"""Bounded reads of unauthenticated request bodies (``/slack/events``, ``/mautic/webhook``).

Before anything is verified, a body costs memory and a connection slot, so an attacker must not be
able to hold either for long: a declared size over the limit gets 413 before a byte is read, the body's
signature is fed chunk by chunk while it streams in (one copy in memory; a signature that cannot match
is refused before reading), reading the body has a deadline (408), and reads that have to wait on the
network for longer than a short grace share a fixed number of slots (503 with ``Retry-After`` when they
are all taken). Slack and Mautic send their bodies at network speed, within the grace, so they take no
slot: slow or stalled attackers filling every slot cannot starve them. Large bodies (over 64 KiB) are
read only a few at a time, so a flood of them cannot take all of the loop's time either. A refusal is
answered after a short delay, the connection left unread meanwhile, so an attacker's connections each
cost a refusal per delay instead of as many as the loop can turn away.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

RETRY_AFTER_SECONDS = 1
# A body still arriving after this long must hold one of the gate's slots to go on being read. Senders
# on a working network (Slack, Mautic) finish well within it, even with the server's loop busy, so only
# slow or stalled readers compete for slots.
READ_GRACE_SECONDS = 1.0
# A body declared larger than this (or not declared: chunked) is "large". Slack's and Mautic's usual
# bodies are smaller (a 10-event Mautic delivery is ~10 KB); reading and hashing a large unsigned body is
# the costliest thing an attacker can make us do, so only MAX_CONCURRENT_LARGE_READS happen at once.
LARGE_BODY_BYTES = 64 * 1024
# Refusals held for their delay at once; beyond that they are answered at once. Each held connection keeps
# what aiohttp buffered of its body before pausing the socket (a few hundred KiB at most).
MAX_HELD_REFUSALS = 100
# Refusals worth holding: the sender is still there and its request was cheap to make. A timed-out read
# has been slow already, and a sender that hung up has no one left to answer.
HELD_OUTCOMES = frozenset({"too_large", "bad_signature", "busy"})


class StreamedSignature(Protocol):
    """A signature check fed the body as it arrives (``bot.intake.events.WebhookSignature``, Slack's)."""

    @property
    def possible(self) -> bool: ...

    def update(self, chunk: bytes) -> None: ...

    def matches(self) -> bool: ...


@dataclass
class ReadGate:
    """How many body reads may wait on the network at once, and how many large bodies may be read at
    once (one gate for every unauthenticated route)."""

    slots: int
    large_slots: int
    refusal_delay: float = 0.0
    busy: int = 0
    large_busy: int = 0
    refused: int = 0  # reads turned away because every slot was taken (for tests and the bench)
    held: int = 0  # refusals being held for their delay now

    def try_enter(self) -> bool:
        if self.busy >= self.slots:
            self.refused += 1
            return False
        self.busy += 1
        return True

    def leave(self) -> None:
        self.busy -= 1

    def try_enter_large(self) -> bool:
        if self.large_busy >= self.large_slots:
            self.refused += 1
            return False
        self.large_busy += 1
        return True

    def leave_large(self) -> None:
        self.large_busy -= 1

    async def hold_refusal(self) -> None:
        """Wait ``refusal_delay`` before a refusal is answered, unless MAX_HELD_REFUSALS are waiting already."""
        if self.refusal_delay <= 0 or self.held >= MAX_HELD_REFUSALS:
            return
        self.held += 1
        try:
            await asyncio.sleep(self.refusal_delay)
        finally:
            self.held -= 1


class BodyRefused(Exception):
    """The body was not read to the end (too large, too slow, no slot, or a signature that cannot match);
    ``response`` is the answer, and the connection is closed after it so its unread rest is not drained."""

    def __init__(self, response: web.Response, outcome: str) -> None:
        super().__init__(outcome)
        self.response = response
        self.outcome = outcome  # too_large, timeout, busy, bad_signature, disconnected


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    timeout: float  # seconds to read the whole body


def _refuse(status: int, outcome: str, error: str, headers: dict[str, str] | None = None) -> BodyRefused:
    response = web.json_response({"ok": False, "error": error}, status=status, headers=headers)
    response.force_close()
    return BodyRefused(response, outcome)


async def read_verified(request: web.Request, limits: BodyLimits, gate: ReadGate,
                        signature: StreamedSignature) -> bytes:
    """The whole body once its signature matched; raises :class:`BodyRefused` otherwise (after the gate's
    refusal delay).

    aiohttp caches the bytes, so later ``request.text()``/``read()`` calls reuse them.
    """
    try:
        return await _read_verified(request, limits, gate, signature)
    except BodyRefused as refused:
        if refused.outcome in HELD_OUTCOMES:
            await gate.hold_refusal()
        raise


async def _read_verified(request: web.Request, limits: BodyLimits, gate: ReadGate,
                         signature: StreamedSignature) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limits.max_bytes:
        raise _refuse(413, "too_large", f"body larger than {limits.max_bytes} bytes")
    if not signature.possible:
        raise _refuse(401, "bad_signature", "invalid signature")
    large = declared is None or declared > LARGE_BODY_BYTES
    if large and not gate.try_enter_large():
        raise _refuse(503, "busy", "busy, retry shortly", {"Retry-After": str(RETRY_AFTER_SECONDS)})
    try:
        return await _read(request, limits, gate, signature)
    finally:
        if large:
            gate.leave_large()


async def _read(request: web.Request, limits: BodyLimits, gate: ReadGate, signature: StreamedSignature) -> bytes:
    content = request.content
    if content.is_eof():
        # The whole body came with the headers (aiohttp's parser already saw its end, as for most webhook
        # deliveries): nothing to wait for, so no timeout to arm and no slot to take.
        body = content.read_nowait()
        if len(body) > limits.max_bytes:
            raise _refuse(413, "too_large", f"body larger than {limits.max_bytes} bytes")
        signature.update(body)
        return _verified(request, body, signature)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.timeout
    grace_end = loop.time() + READ_GRACE_SECONDS
    slotted = False
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline if slotted else min(grace_end, deadline)):
                    chunk = await content.readany()  # cancelled while waiting, it leaves the buffer intact
            except ConnectionError:
                # The sender hung up mid-body: nobody is left to answer, and it is no server error (aiohttp
                # would log a traceback for each, which a flood of such senders would turn into log spam).
                raise _refuse(400, "disconnected", "connection lost before the body was complete") from None
            except TimeoutError:
                if slotted or loop.time() >= deadline:
                    raise _refuse(408, "timeout", "body not received in time") from None
                if not gate.try_enter():
                    raise _refuse(503, "busy", "busy, retry shortly",
                                  {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
                slotted = True
                continue
            if not chunk:
                break
            size += len(chunk)
            if size > limits.max_bytes:
                raise _refuse(413, "too_large", f"body larger than {limits.max_bytes} bytes")
            signature.update(chunk)
            chunks.append(chunk)
    finally:
        if slotted:
            gate.leave()
    return _verified(request, b"".join(chunks), signature)  # one chunk is returned as is, without a copy


def _verified(request: web.Request, body: bytes, signature: StreamedSignature) -> bytes:
    if not signature.matches():
        raise _refuse(401, "bad_signature", "invalid signature")
    request._read_bytes = body  # aiohttp's own cache for read()/text()/json()
    return body
