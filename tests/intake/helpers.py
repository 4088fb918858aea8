"""Readers of the intake tables and the intake job waiter (shared helpers live in tests/helpers/)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bot.intake.ids import IntakeJob
from bot.intake.writer import DeliveryWriter
from sandbox.harness import Sandbox
from sandbox.slack import Message
from storage.intake import ConsentAlert, ConsentRecord, InboxDelivery, InboxEvent, Withdrawal
from tests.helpers import rows


def offline_writer(*, serves_web: bool = True) -> DeliveryWriter:
    """A DeliveryWriter with no database behind it, for what it decides on its own (SQLite's rules)."""
    services: Any = SimpleNamespace(engine=SimpleNamespace(dialect=SimpleNamespace(name="sqlite")))
    return DeliveryWriter(services, serves_web=serves_web)


async def inbox(box: Sandbox) -> list[InboxEvent]:
    return await rows(box, InboxEvent)


async def deliveries(box: Sandbox) -> list[InboxDelivery]:
    """Raw deliveries committed by the webhook view and not split into inbox rows yet."""
    return await rows(box, InboxDelivery)


async def processed(box: Sandbox, timeout: float = 10.0) -> None:
    """Wait for the process jobs queued or running now: every delivery committed before this call is
    then split into inbox rows and every pending row processed (effects on Slack may still follow)."""
    await box.jobs_idle(timeout, kinds=[IntakeJob.PROCESS])


async def alerts(box: Sandbox) -> list[ConsentAlert]:
    return await rows(box, ConsentAlert)


async def records(box: Sandbox) -> list[ConsentRecord]:
    return await rows(box, ConsentRecord)


async def withdrawals(box: Sandbox) -> list[Withdrawal]:
    return await rows(box, Withdrawal)


def alert_messages(box: Sandbox) -> list[Message]:
    return [m for m in box.slack.messages(box.channel) if any(
        b.get("type") == "actions" for b in m.blocks) or "Alert #" in str(m.blocks)]

