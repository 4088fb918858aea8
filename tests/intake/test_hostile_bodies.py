"""Bounded reads on the unauthenticated routes, against the real service over raw sockets: refusals that
come before the body is read, the read deadline, the cap on reads waiting on the network, keep-alive."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from handlers import limits
from handlers.appkeys import READ_GATE
from sandbox.harness import Sandbox, sandbox
from sandbox.mautic import encode_like_php, sign_webhook
from tests.helpers import test_tuning
from tests.intake.helpers import deliveries, inbox, processed
from tests.intake.test_webhook import gap

PATIENCE = 5.0  # seconds a test waits for an answer the server must give without reading the body


async def _open(box: Sandbox) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlsplit(box.url)
    assert url.hostname is not None and url.port is not None
    return await asyncio.open_connection(url.hostname, url.port)


async def _send_head(box: Sandbox, path: str, length: int, headers: dict[str, str],
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await _open(box)
    lines = [f"POST {path} HTTP/1.1", "Host: bot", f"Content-Length: {length}",
             *(f"{name}: {value}" for name, value in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    return reader, writer


async def _status(reader: asyncio.StreamReader) -> tuple[int, str]:
    """The status code and the whole head of the answer (the body is not needed)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE)
    return int(head.split(b" ", 2)[1]), head.decode("latin-1")


async def test_refusals_come_before_the_body_is_read(db_url: str, tmp_path: Path) -> None:
    # A long read deadline: any refusal below that waited for the body would time the test out instead.
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path, body_read_timeout=60.0,
                       max_concurrent_large_reads=1) as box:
        secret = box.settings.mautic_webhook_secret.get_secret_value()  # type: ignore[union-attr]
        well_formed = sign_webhook(b"other bytes", secret)
        cases = [
            ("/mautic/webhook", box.settings.webhook_max_bytes + 1, {"Webhook-Signature": well_formed}, 413),
            ("/mautic/webhook", 1000, {}, 401),  # no signature: nothing could match
            ("/mautic/webhook", 1000, {"Webhook-Signature": "not-base64!"}, 401),
            ("/slack/events", box.settings.slack_max_bytes + 1, {}, 413),
            ("/slack/events", 1000, {}, 401),  # no X-Slack-Signature
            ("/slack/events", 1000, {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=" + "0" * 64}, 401),
        ]
        for path, length, headers, expected in cases:
            reader, writer = await _send_head(box, path, length, headers)
            status, head = await _status(reader)
            assert (path, status) == (path, expected)
            assert "Connection: close" in head  # the unread rest is not drained on a kept-alive connection
            writer.close()
        # Large bodies are read one at a time here: while one is being read, another large one is refused.
        gate = box.app[READ_GATE]
        entered = asyncio.Event()
        try_enter_large = gate.try_enter_large

        def watched() -> bool:
            taken = try_enter_large()
            entered.set()
            return taken

        gate.try_enter_large = watched  # type: ignore[method-assign]
        large = {"Webhook-Signature": well_formed}
        _first_reader, first_writer = await _send_head(box, "/mautic/webhook", 100_000, large)
        await asyncio.wait_for(entered.wait(), PATIENCE)
        reader, writer = await _send_head(box, "/mautic/webhook", 100_000, large)
        status, head = await _status(reader)
        assert status == 503 and "Retry-After: 1" in head
        writer.close()
        first_writer.close()
        # A well-formed wrong signature is found out while the body streams: 401, nothing stored.
        body = encode_like_php(gap(1, "a@example.com"))
        reader, writer = await _send_head(box, "/mautic/webhook", len(body), {"Webhook-Signature": well_formed})
        writer.write(body)
        assert (await _status(reader))[0] == 401
        writer.close()
        assert (await box.webhook(body))[0] == 200  # the same body, signed, is taken
        await processed(box)
        assert await deliveries(box) == [] and len(await inbox(box)) == 1


async def test_slow_bodies_time_out_and_cannot_starve_whole_requests(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "READ_GRACE_SECONDS", 0.2)  # the test's waits stay short
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path, body_read_timeout=1.5,
                       max_concurrent_reads=1, keepalive_timeout=0.5) as box:
        gate = box.app[READ_GATE]
        entered = asyncio.Event()
        try_enter = gate.try_enter

        def watched_try_enter() -> bool:
            taken = try_enter()
            if taken:
                entered.set()
            return taken

        gate.try_enter = watched_try_enter  # type: ignore[method-assign]
        secret = box.settings.mautic_webhook_secret.get_secret_value()  # type: ignore[union-attr]
        signed_head = {"Webhook-Signature": sign_webhook(b"x" * 100, secret)}
        slow_reader, slow_writer = await _send_head(box, "/mautic/webhook", 100, signed_head)
        slow_writer.write(b"x" * 10)  # then nothing more: a slow sender holding its read open
        await slow_writer.drain()
        await asyncio.wait_for(entered.wait(), PATIENCE)
        # The one slot is taken: another read that must wait, on either route, is turned away at once.
        for path, headers in (("/mautic/webhook", signed_head), ("/slack/events", {
                "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64})):
            reader, writer = await _send_head(box, path, 100, headers)
            status, head = await _status(reader)
            writer.close()
            assert (path, status) == (path, 503) and "Retry-After: 1" in head
        # A sender at network speed finishes within the grace and takes no slot.
        assert (await box.webhook(gap(2, "b@example.com")))[0] == 200
        # The slow one runs out of time; its slot is free again.
        assert (await _status(slow_reader))[0] == 408
        slow_writer.close()
        assert gate.busy == 0 and gate.refused == 2
        # An idle connection is closed after the keep-alive timeout (aiohttp's default is an hour).
        idle_reader, idle_writer = await _open(box)
        assert await asyncio.wait_for(idle_reader.read(), PATIENCE) == b""
        idle_writer.close()
        await processed(box)
        assert len(await inbox(box)) == 1


async def test_a_sender_hanging_up_mid_body_is_counted_not_logged_as_an_error(
        box: Sandbox, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes: list[str] = []
    recorded = asyncio.Event()
    record = box.services.metrics.webhook_delivery

    def watched(outcome: str, seconds: float) -> None:
        record(outcome, seconds)
        outcomes.append(outcome)
        recorded.set()

    monkeypatch.setattr(box.services.metrics, "webhook_delivery", watched)
    secret = box.settings.mautic_webhook_secret.get_secret_value()  # type: ignore[union-attr]
    _reader, writer = await _send_head(box, "/mautic/webhook", 100,
                                       {"Webhook-Signature": sign_webhook(b"x" * 100, secret)})
    writer.write(b"x" * 10)
    await writer.drain()
    writer.transport.abort()  # a reset, mid-body
    await asyncio.wait_for(recorded.wait(), PATIENCE)
    assert outcomes == ["disconnected"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert await deliveries(box) == []


async def test_a_refusal_is_held_for_its_delay_and_beyond_the_cap_answered_at_once(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_HELD_REFUSALS", 1)
    delay = 1.0
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path, refusal_delay=delay) as box:
        gate = box.app[READ_GATE]
        entered = asyncio.Event()
        hold_refusal = gate.hold_refusal

        async def watched() -> None:
            holding = hold_refusal()
            entered.set()  # the wait below counts itself as held before anything else runs
            await holding

        gate.hold_refusal = watched  # type: ignore[method-assign]

        async def refused(path: str) -> tuple[int, float]:
            started = time.perf_counter()
            reader, writer = await _send_head(box, path, 1000, {})  # no signature: nothing could match
            status, _head = await _status(reader)
            writer.close()
            return status, time.perf_counter() - started

        held = asyncio.create_task(refused("/mautic/webhook"))
        await asyncio.wait_for(entered.wait(), PATIENCE)
        assert gate.held == 1
        assert (await refused("/slack/events"))[0] == 401  # the cap is reached: answered without waiting
        assert not held.done()
        status, took = await held
        assert status == 401 and took >= delay
        assert gate.held == 0
