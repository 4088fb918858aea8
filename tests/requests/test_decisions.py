"""Rejection, extension, failure then Retry, exactly-once under concurrency (also two replicas on one
PostgreSQL), a restart in the middle of a job, the overview commands and the daily sweep."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import update
from sqlmodel import col, select

from bot.app import Tuning, create_app
from bot.requests.deadlines import legal_deadline
from bot.requests.ids import RequestButton, RequestModal
from bot.requests.service import enqueue_daily
from sandbox.harness import ALICE, BOB, CAROL, PRIVACY_CHANNEL, Sandbox, sandbox
from sandbox.slack import SlackUserAgent
from storage import requests as store
from storage.db import unit_of_work
from storage.jobs import Job
from storage.ledger import reason_digest
from tests.helpers import job_finished, ledger, test_tuning, text_of
from tests.requests.helpers import (
    click,
    file_request,
    load_row,
    open_modal,
    request_id_of,
    submit_extension,
    submit_reason,
    verify_identity,
    wait_state,
    wait_thread,
)
from tests.requests.test_access import refusal
from tests.requests.test_erasure import approve


async def test_reject_requires_a_reason_and_closes_the_request(box: Sandbox) -> None:
    box.mautic.add_contact(email="jane@example.com")
    message = await file_request(box, ALICE, "erase jane@example.com")
    view = await open_modal(box, BOB, message, RequestButton.REJECT)
    assert view.callback_id == RequestModal.REJECT and view.private_metadata == str(request_id_of(message))
    result = await submit_reason(box, BOB, view, "  ")
    assert result.json["response_action"] == "errors" and "reason is required" in result.json["errors"]["reason"]
    assert (await load_row(box, request_id_of(message))).state == "filed"  # type: ignore[union-attr]
    result = await submit_reason(box, BOB, view, "Could not verify identity after two attempts")
    assert result.status == 200
    row = await wait_state(box, message, "rejected")
    assert row.reject_reason == "Could not verify identity after two attempts" and row.rejected_by == BOB.id
    assert row.subject_email is None
    assert "Rejected by <@U0BOB>" in text_of(message) and "Could not verify identity" in text_of(message)
    # No decision buttons on a rejected request; it closes once the rejection went out (this change).
    buttons = [e["action_id"] for b in message.blocks if b.get("type") == "actions" for e in b["elements"]]
    assert buttons == [RequestButton.RESPOND]
    await wait_thread(box, message, "Art. 12(4)")
    (entry,) = await ledger(box, "request.reject")
    # The ledger says a reason was given and holds its keyed hash, never the text (issue 11).
    assert "reason" not in entry.details and entry.details["reason_given"] is True
    assert entry.details["reason_hash"] == reason_digest(box.services.hash_key,
                                                         "Could not verify identity after two attempts")
    # A late click on a stale copy of the message is refused and audited.
    stale = dataclasses.replace(message, blocks=view.view["blocks"] and _filed_blocks(message))
    await click(box, CAROL, stale, RequestButton.VERIFY)
    await refusal(box, "already rejected")
    assert not [c for c in box.mautic.calls if c.method == "DELETE"]


def _filed_blocks(message):  # type: ignore[no-untyped-def]
    """The request message as it looked when filed (a client that has not redrawn it yet)."""
    return message.history[0].blocks


async def test_extend_once_before_the_original_due_date(box: Sandbox) -> None:
    message = await file_request(box, ALICE, "dsar jane@example.com")
    request_id = request_id_of(message)
    filed = await load_row(box, request_id)
    assert filed is not None and filed.received_on is not None
    original = filed.due_date
    # Three months from receipt (rolled to a working day), never two months chained from the first due date.
    extended = legal_deadline(filed.received_on, "gdpr", extended=True).due
    view = await open_modal(box, CAROL, message, RequestButton.EXTEND)
    assert extended.isoformat() in str(view.view["blocks"])
    # The modal now also requires the notice to the requester (this change).
    await submit_extension(box, CAROL, view, "Fourteen linked records across two brands",
                           told_on=box.services.clock().date().isoformat())
    await wait_thread(box, message, "extended request #1")
    row = await load_row(box, request_id)
    assert row is not None and row.due_date == extended and row.original_due_date == original
    assert row.state == "filed" and row.extended_by == CAROL.id
    assert "Extended by <@U0CAROL>" in text_of(message) and extended.isoformat() in text_of(message)
    # Once only: the button is gone, and a stale client's click is refused.
    assert RequestButton.EXTEND not in str(message.blocks)
    stale = dataclasses.replace(message, blocks=_filed_blocks(message))
    await click(box, BOB, stale, RequestButton.EXTEND)
    await refusal(box, "already extended once")
    # Not after the original due date either (a second request, its due date moved into the past).
    other = await file_request(box, ALICE, "dsar sam@example.com")
    async with unit_of_work(box.services.sessions) as session:
        await session.exec(update(store.PrivacyRequest).where(  # type: ignore[call-overload]
            col(store.PrivacyRequest.id) == request_id_of(other)).values(
            original_due_date=date.today() - timedelta(days=1), due_date=date.today() - timedelta(days=1)))
    await click(box, BOB, other, RequestButton.EXTEND)
    await refusal(box, "has passed")
    await click(box, ALICE, other, RequestButton.EXTEND)
    await refusal(box, "Only privacy approvers")
    assert len(box.slack.views) == 1


async def test_failure_after_max_attempts_then_retry(tmp_path: Path, db_url: str) -> None:
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "exports", job_max_attempts=2) as box:
        cid = box.mautic.add_contact(email="jane@example.com")
        message = await file_request(box, ALICE, "dsar jane@example.com")
        # Mautic answers 503 to every timeline call (Retry-After 0 keeps the client's own retries instant).
        box.mautic.fail(f"/api/contacts/{cid}/activity", status=503, retry_after=0, times=None)
        await approve(box, message)
        row = await wait_state(box, message, "failed")
        assert "Mautic was unavailable" in (row.failure or "")
        await wait_thread(box, message, "failed after 2 attempt(s)")
        async with unit_of_work(box.services.sessions) as session:
            (job,) = (await session.exec(select(Job).where(Job.kind == "requests.execute"))).all()
        assert job.attempts == 2 and job.state == "failed"
        assert not list((tmp_path / "exports").glob("*"))  # a half-built package is not left behind
        await click(box, ALICE, message, RequestButton.RETRY)
        await refusal(box, "Only privacy approvers")
        box.mautic.clear_faults()
        await click(box, CAROL, message, RequestButton.RETRY)
        await wait_state(box, message, "done")
        await wait_thread(box, message, "Access package")
        assert [e.actor for e in await ledger(box, "request.retry")] == [CAROL.id]
        assert [e.details["attempts"] for e in await ledger(box, "request.fail")] == [2]


async def test_concurrent_approvals_execute_once(box: Sandbox) -> None:
    cid = box.mautic.add_contact(email="jane@example.com")
    message = await file_request(box, ALICE, "erase jane@example.com")
    await verify_identity(box, CAROL, message)
    clicks = [box.user.click(p.id, message, RequestButton.APPROVE) for p in (BOB, CAROL, BOB, CAROL, BOB)]
    results = await asyncio.gather(*clicks)
    assert all(r.status == 200 for r in results)
    await wait_state(box, message, "cleanup")
    await box.slack.wait_for_response(4, where=lambda r: "already" in r.text and "approved by <@" in r.text)
    assert len(await ledger(box, "request.approve")) == 1
    assert len(await ledger(box, "request.refused")) == 4
    assert [c.path for c in box.mautic.calls if c.method == "DELETE"] == [f"/api/contacts/{cid}/delete"]
    async with unit_of_work(box.services.sessions) as session:
        jobs = (await session.exec(select(Job).where(Job.kind == "requests.execute"))).all()
    assert len(jobs) == 1


@pytest.mark.postgres
async def test_two_replicas_on_one_postgres_execute_once(postgres_url: str, tmp_path: Path) -> None:
    async with sandbox(postgres_url, tuning=test_tuning(), export_dir=tmp_path / "exports") as box:
        cid = box.mautic.add_contact(email="jane@example.com")
        message = await file_request(box, ALICE, "erase jane@example.com")
        await verify_identity(box, CAROL, message)
        # A second replica: its own app, job runner and HTTP port, the same database.
        second = web.AppRunner(create_app(box.settings, Tuning(
            job_poll_interval=0.05, job_backoff_base=0.02, start_scheduler=False, migrate_on_start=False)))
        await second.setup()
        site = web.TCPSite(second, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        secret = box.settings.slack_signing_secret.get_secret_value()  # type: ignore[union-attr]
        other = SlackUserAgent(box.http, f"http://127.0.0.1:{port}/slack/events", secret, box.slack)
        try:
            results = await asyncio.gather(
                box.user.click(BOB.id, message, RequestButton.APPROVE),
                other.click(CAROL.id, message, RequestButton.APPROVE),
                other.click(BOB.id, message, RequestButton.APPROVE),
                box.user.click(CAROL.id, message, RequestButton.APPROVE))
            assert all(r.status == 200 for r in results)
            await wait_state(box, message, "cleanup")
            await box.slack.wait_for_response(3, where=lambda r: "already" in r.text and "approved by <@" in r.text)
        finally:
            await second.cleanup()
        assert len(await ledger(box, "request.approve")) == 1
        assert [c.path for c in box.mautic.calls if c.method == "DELETE"] == [f"/api/contacts/{cid}/delete"]
        assert len(await ledger(box, "request.await_cleanup")) == 1


async def test_restart_mid_job_resumes_where_it_stopped(box: Sandbox) -> None:
    first = box.mautic.add_contact(email="jane@example.com")
    second = box.mautic.add_contact(email="jane@example.com")
    # Leases short enough that the restarted service takes the interrupted job over quickly.
    box.services.jobs.lease = timedelta(seconds=1.5)
    message = await file_request(box, ALICE, "erase jane@example.com")
    box.mautic.slow(f"/api/contacts/{second}/delete", 3, times=1)
    await approve(box, message)
    await box.mautic.wait_for("DELETE", f"/api/contacts/{second}/delete", timeout=10)
    # Crash: the job is cut off while waiting on Mautic; its row keeps the lease and its checkpoint.
    await box.services.jobs.stop(grace=0.05)
    await box.restart_bot()
    box.mautic.clear_faults()
    row = await wait_state(box, message, "cleanup", timeout=20)
    await wait_thread(box, message, "clean-up checklist")  # the job's last step
    deletes = [c.path for c in box.mautic.calls if c.method == "DELETE"]
    assert deletes.count(f"/api/contacts/{first}/delete") == 1  # checkpointed, not repeated
    assert f"/api/contacts/{second}/delete" in deletes
    assert box.mautic.contact(first) is None and box.mautic.contact(second) is None
    assert row.result["contacts"] == 2  # counted; the ids themselves are not kept after an erasure
    job = await job_finished(box, "requests.execute")
    assert job.attempts == 2  # the interrupted attempt, then the resumed one
    summaries = [m for m in box.slack.thread(PRIVACY_CHANNEL, message.ts) if "contacts deleted in Mautic" in m.text]
    assert len(summaries) == 1


async def test_overview_reminders_and_lapse(box: Sandbox) -> None:
    messages = [await file_request(box, ALICE, f"dsar p{n}@example.com") for n in range(4)]
    ids = [request_id_of(m) for m in messages]
    today = box.services.clock().date()
    async with unit_of_work(box.services.sessions) as session:
        for request_id, due in zip(ids[:3], (today - timedelta(days=2), today + timedelta(days=3),
                                             today + timedelta(days=20)), strict=True):
            await session.exec(update(store.PrivacyRequest).where(  # type: ignore[call-overload]
                col(store.PrivacyRequest.id) == request_id).values(due_date=due))
        # The fourth was approved eight days ago and never ran (APPROVAL_TTL is 7 days).
        await session.exec(update(store.PrivacyRequest).where(  # type: ignore[call-overload]
            col(store.PrivacyRequest.id) == ids[3]).values(
            state="approved", approved_by=BOB.id, approved_at=box.services.clock() - timedelta(days=8)))
    listing = (await box.command(BOB, "requests")).json["text"]
    assert "4 open request(s): 1 overdue, 1 due soon" in listing
    assert "2 day(s) late 🚨 OVERDUE" in listing and "3 day(s) left ⏰ due soon" in listing
    assert "20 day(s) left" in listing and "p***@example.com" in listing
    status = (await box.command(BOB, f"status {ids[0]}")).json
    assert f"#{ids[0]}" in status["text"] and "History" in str(status["blocks"]) and "file" in str(status["blocks"])
    assert await enqueue_daily(box.services)
    # A lapsed approval returns the request to verified (this change: it used to close it).
    await wait_state(box, messages[3], "verified")
    await wait_thread(box, messages[3], "lapsed")
    await wait_thread(box, messages[0], "OVERDUE by 2 days")
    await wait_thread(box, messages[1], "due soon, 3 days left")
    assert not await enqueue_daily(box.services)  # once a day, however many schedulers fire
    async with unit_of_work(box.services.sessions) as session:
        done = (await session.exec(select(Job).where(Job.kind == "requests.daily"))).all()
    assert len(done) == 1
    assert not [t for t in box.slack.thread(PRIVACY_CHANNEL, messages[2].ts) if "due" in t.text]
    assert "4 open request(s)" in (await box.command(BOB, "requests")).json["text"]  # the lapsed one still counts
