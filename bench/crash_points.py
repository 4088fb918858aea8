"""``kill -9`` at five points, then a restart: every committed item handled once, nothing posted twice, work
resumed within seconds.

    .venv/bin/python -m bench.crash_points [--points intake,split,post,erasure,digest] [--runs 1]

Each point is its own scenario on a fresh SQLite database: the bot runs as its own process (``python -m bot
serve``, production tuning: 8 s job leases renewed every 2.7 s, 2 s job polling) against the Slack and Mautic
stand-ins served by this process, and is killed with SIGKILL at a moment chosen from outside (no fault hooks in
the bot): when the stand-ins see the call that marks the point, or by timing. It is restarted at once, and the
scenario waits (polling the database and the stand-ins) until the work is done, then checks it.

- ``intake``: 20 senders post 400 signed deliveries (one consented form submission each); the bot is killed
  after 100 answers, mid-burst, with group commits in flight. Every delivery answered 2xx must give exactly one
  consent record (one answered only by the restarted bot does too).
- ``split``: 50 senders post 1,500 deliveries; the bot is killed the moment the last is answered, while the
  process job splits and processes the backlog (the deliveries and events not done at the kill are counted).
  Every delivery once.
- ``post``: a consent gap's alert; the Slack stand-in takes the chat.postMessage and holds its answer back; the
  bot is killed once the message is in the channel, before it could record it. After the restart the alert job
  (taken over when its lease runs out) must find the message by its metadata and not post it again.
- ``erasure``: an approved erasure of two contacts; killed while Mautic holds the second DELETE. The restarted
  bot resumes from its checkpoint: each contact deleted, the request done once, one done reply in its thread.
- ``digest``: ``/privacy digest retention``; killed while Mautic holds the digest's count call. One digest
  message, one ledger entry.

"Resumed" is the time from the kill to the work's visible end (the restart itself takes part of it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from sqlalchemy import func
from sqlmodel import col, select

from bot.app import Tuning
from bot.requests.ids import RequestButton
from bot.settings import Settings
from sandbox.harness import ALICE, BOB, CAROL, PRIVACY_CHANNEL, Sandbox, sandbox_settings, seed_workspace
from sandbox.mautic import FakeMautic, form_submission_event
from sandbox.slack import FakeSlack, SlackUserAgent
from storage.db import SessionFactory, make_engine, make_session_factory, unit_of_work
from storage.digests import DigestRun
from storage.intake import ConsentAlert, ConsentRecord, InboxDelivery, InboxEvent, InboxState
from storage.jobs import Job, JobState
from storage.ledger import AuditEntry
from storage.requests import PrivacyRequest

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 30.0
WORK_TIMEOUT = 60.0


@dataclass
class ProcessBox(Sandbox):
    """The sandbox's helpers (signed webhooks, slash commands, clicks) aimed at a bot in another process;
    ``services.sessions`` reads that bot's database."""

    reader: SessionFactory | None = None

    @property
    def services(self) -> Any:  # type: ignore[override]
        return SimpleNamespace(sessions=self.reader)


class BotProcess:
    def __init__(self, box: ProcessBox, workdir: Path) -> None:
        self.box, self.workdir = box, workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _env(self, port: int) -> dict[str, str]:
        s: Settings = self.box.settings
        assert s.slack_bot_token and s.slack_signing_secret and s.mautic_webhook_secret and s.bot_secret_key
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        env.update({
            "PYTHONPATH": str(ROOT), "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING",
            "SLACK_BOT_TOKEN": s.slack_bot_token.get_secret_value(),
            "SLACK_SIGNING_SECRET": s.slack_signing_secret.get_secret_value(),
            "SLACK_API_URL": s.slack_api_url, "PRIVACY_CHANNEL": s.privacy_channel or "",
            "PRIVACY_APPROVERS": ",".join(s.privacy_approvers), "MAUTIC_BASE_URL": s.mautic_base_url or "",
            "MAUTIC_USERNAME": s.mautic_username or "",
            "MAUTIC_PASSWORD": s.mautic_password.get_secret_value() if s.mautic_password else "",
            "MAUTIC_WEBHOOK_SECRET": s.mautic_webhook_secret.get_secret_value(),
            "MAUTIC_TIMEOUT_SECONDS": "120", "DATABASE_URL": s.database_url,
            "BOT_SECRET_KEY": s.bot_secret_key.get_secret_value(),
            "EXPORT_DIR": str(self.workdir / "exports"), "SPOOL_DIR": str(self.workdir / "spool"),
        })
        return env

    async def start(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.starts += 1
        log = (self.workdir / f"bot-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - the bot under test, once per start
            [sys.executable, "-m", "bot", "serve"], env=self._env(port), cwd=self.workdir, stdout=log,
            stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                async with self.box.http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the bot did not start; see {log.name}")
            await asyncio.sleep(0.05)
        secret = self.box.settings.slack_signing_secret
        assert secret is not None
        self.box.url = url
        self.box.user = SlackUserAgent(self.box.http, f"{url}/slack/events", secret.get_secret_value(),
                                       self.box.slack)

    def kill(self) -> float:
        """SIGKILL, as the OOM killer or a power cut would; the moment it was sent."""
        assert self.proc is not None
        at = time.monotonic()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return at

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = WORK_TIMEOUT, what: str = "") -> float:
    """Poll ``check`` (every 20 ms) until it holds; the monotonic time it first did."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic()


async def scalar(box: ProcessBox, query: Any) -> Any:
    assert box.reader is not None
    async with unit_of_work(box.reader) as session:
        return (await session.exec(query)).one()


async def all_rows(box: ProcessBox, query: Any) -> list[Any]:
    assert box.reader is not None
    async with unit_of_work(box.reader) as session:
        return list((await session.exec(query)).all())


async def jobs_settled(box: ProcessBox) -> bool:
    busy = await scalar(box, select(func.count()).select_from(Job).where(
        col(Job.state).in_([JobState.QUEUED, JobState.RUNNING])))
    return int(busy) == 0


def consented(n: int) -> dict[str, Any]:
    email = f"crash{n}@example.com"
    return form_submission_event(contact_id=200_000 + n, email=email, submission_id=n,
                                 results={"email": email, "consent": "1"})


async def send_all(box: ProcessBox, count: int, senders: int, answered: set[int]) -> None:
    queue = list(range(count))

    async def sender() -> None:
        while queue:
            n = queue.pop(0)
            try:
                status, _ = await box.webhook(consented(n))
            except (aiohttp.ClientError, OSError):
                return  # the bot died under this request: not answered, Mautic would count it failed
            if status == 200:
                answered.add(n)

    await asyncio.gather(*(sender() for _ in range(senders)))


async def recorded_submissions(box: ProcessBox) -> dict[int, int]:
    rows = await all_rows(box, select(ConsentRecord.submission_id, func.count()).group_by(
        col(ConsentRecord.submission_id)))
    return {int(sid): int(n) for sid, n in rows if sid is not None}


async def check_intake(box: ProcessBox, answered: set[int], killed_at: float) -> dict[str, Any]:
    async def covered() -> bool:
        return answered <= set(await recorded_submissions(box)) and await jobs_settled(box)

    done = await until(covered, what="every answered delivery recorded")
    counts = await recorded_submissions(box)
    return {"answered_2xx": len(answered), "recorded": len(counts),
            "recorded_but_unanswered": len(set(counts) - answered),
            "duplicated": sum(1 for n in counts.values() if n > 1), "missing": len(answered - set(counts)),
            "resumed_s": round(done - killed_at, 2)}


async def point_intake(box: ProcessBox, bot: BotProcess) -> dict[str, Any]:
    answered: set[int] = set()
    sending = asyncio.create_task(send_all(box, 400, 20, answered))
    await until(lambda: _true(len(answered) >= 100), what="100 answers")
    killed_at = bot.kill()
    await sending
    await bot.start()
    return await check_intake(box, answered, killed_at)


async def point_split(box: ProcessBox, bot: BotProcess) -> dict[str, Any]:
    answered: set[int] = set()
    await send_all(box, 1500, 50, answered)
    killed_at = bot.kill()
    unsplit = await scalar(box, select(func.count()).select_from(InboxDelivery))
    pending = await scalar(box, select(func.count()).select_from(InboxEvent).where(
        col(InboxEvent.state) == InboxState.PENDING))
    await bot.start()
    result = await check_intake(box, answered, killed_at)
    return {"at_kill_deliveries_unsplit": int(unsplit), "at_kill_events_pending": int(pending), **result}


async def point_post(box: ProcessBox, bot: BotProcess) -> dict[str, Any]:
    box.slack.delay_answer("chat.postMessage", 120)
    status, _ = await box.webhook(form_submission_event(contact_id=7, email="gap@example.com",
                                                       results={"email": "gap@example.com"}))
    assert status == 200
    await until(lambda: _true(len(box.slack.messages(PRIVACY_CHANNEL)) >= 1), what="the alert in Slack")
    killed_at = bot.kill()
    box.slack.delay_answer("chat.postMessage", 0)
    await bot.start()

    async def recorded() -> bool:
        ts = await all_rows(box, select(ConsentAlert.message_ts))
        return bool(ts) and all(ts) and await jobs_settled(box)

    done = await until(recorded, what="the alert's message recorded")
    return {"alert_messages_in_channel": len(box.slack.messages(PRIVACY_CHANNEL)),
            "chat_postMessage_calls": len(box.slack.calls_to("chat.postMessage")),
            "history_lookups": len(box.slack.calls_to("conversations.history")),
            "resumed_s": round(done - killed_at, 2)}


async def point_erasure(box: ProcessBox, bot: BotProcess) -> dict[str, Any]:
    from tests.requests.helpers import click, file_request, verify_identity

    first = box.mautic.add_contact(email="jane@example.com", firstname="Jane")
    second = box.mautic.add_contact(email="jane@example.com", firstname="Janet")
    message = await file_request(box, ALICE, "erase jane@example.com")
    await verify_identity(box, CAROL, message)
    path = f"/api/contacts/{second}/delete"
    box.mautic.slow(path, 120, times=1)
    await click(box, BOB, message, RequestButton.APPROVE)
    await until(lambda: _true(any(c.path == path for c in box.mautic.calls)), what="the second DELETE")
    killed_at = bot.kill()
    box.mautic.clear_faults()
    await bot.start()

    async def done() -> bool:
        states = await all_rows(box, select(PrivacyRequest.state))
        replies = [m for m in box.slack.thread(PRIVACY_CHANNEL, message.ts) if "Mautic still" in str(m.blocks)]
        return states == ["done"] and bool(replies) and await jobs_settled(box)

    finished = await until(done, what="the erasure done")
    deletes = [c.path for c in box.mautic.calls if c.method == "DELETE"]
    completes = await scalar(box, select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "request.complete"))
    thread = box.slack.thread(PRIVACY_CHANNEL, message.ts)
    done_replies = [m for m in thread if "done. Deleted in Mautic" in str(m.blocks)]
    leftover_replies = [m for m in thread if "Mautic still" in str(m.blocks)]
    return {"deletes_first": deletes.count(f"/api/contacts/{first}/delete"), "deletes_second": deletes.count(path),
            "contacts_left": sum(box.mautic.contact(c) is not None for c in (first, second)),
            "ledger_request_complete": int(completes), "done_replies": len(done_replies),
            "leftover_replies": len(leftover_replies),
            "request_messages": len(box.slack.messages(PRIVACY_CHANNEL)),
            "resumed_s": round(finished - killed_at, 2)}


async def point_digest(box: ProcessBox, bot: BotProcess) -> dict[str, Any]:
    box.mautic.slow("/api/contacts", 120, times=1)
    result = await box.command(BOB, "digest retention")
    assert result.status == 200, result.text
    await until(lambda: _true(any(c.path.startswith("/api/contacts") for c in box.mautic.calls)),
                what="the digest's Mautic call")
    killed_at = bot.kill()
    box.mautic.clear_faults()
    await bot.start()

    async def posted() -> bool:
        runs = await all_rows(box, select(DigestRun.posted_at))
        return bool(runs) and all(runs) and await jobs_settled(box)

    done = await until(posted, what="the digest posted")
    entries = await scalar(box, select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "digest.retention"))
    return {"digest_messages": len(box.slack.messages(PRIVACY_CHANNEL)), "digest_runs": len(
        await all_rows(box, select(DigestRun.id))), "ledger_digest_entries": int(entries),
            "resumed_s": round(done - killed_at, 2)}


async def _true_async(value: bool) -> bool:
    return value


def _true(value: bool) -> Awaitable[bool]:
    return _true_async(value)


POINTS: dict[str, Callable[[ProcessBox, BotProcess], Awaitable[dict[str, Any]]]] = {
    "intake": point_intake, "split": point_split, "post": point_post, "erasure": point_erasure,
    "digest": point_digest,
}


async def run_point(name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        async with FakeSlack() as slack, FakeMautic() as mautic, aiohttp.ClientSession() as http:
            seed_workspace(slack)
            settings = sandbox_settings(f"sqlite:///{workdir / 'bot.db'}", slack, mautic)
            engine = make_engine(settings.database_url)
            box = ProcessBox(settings=settings, slack=slack, mautic=mautic, http=http, tuning=Tuning(),
                             reader=make_session_factory(engine))
            bot = BotProcess(box, workdir)
            try:
                await bot.start()
                return {"point": name, **await POINTS[name](box, bot)}
            finally:
                bot.stop()
                await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", default=",".join(POINTS))
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    for _ in range(args.runs):
        for name in args.points.split(","):
            print(json.dumps(asyncio.run(run_point(name))), flush=True)


if __name__ == "__main__":
    main()
