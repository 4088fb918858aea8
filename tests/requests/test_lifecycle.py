"""The request lifecycle a data-protection officer can defend: a lapsed approval returns the request to
verified with its original due date; the confirmation of receipt and the answer are recorded with who and
when; a request is closed only once the answer went out, and counts as open (and overdue) until then."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col

from bot.requests.ids import NoticeInput, RequestButton
from bot.requests.service import enqueue_daily
from sandbox.harness import ALICE, BOB, CAROL, Sandbox
from sandbox.slack import Message
from storage import requests as store
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.digests import request_figures
from storage.migrate import migrate
from tests.helpers import ledger, text_of
from tests.requests.helpers import (
    click,
    file_request,
    load_row,
    open_modal,
    release,
    request_id_of,
    submit_extension,
    verify_identity,
    wait_state,
    wait_thread,
)
from tests.requests.test_access import refusal


def with_button(message: Message, action_id: str) -> Message:
    """The message as a client that shows ``action_id`` would send it (a stale or forged copy)."""
    button = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": "x"},
              "value": str(request_id_of(message))}
    return dataclasses.replace(message, blocks=[*message.blocks, {"type": "actions", "block_id": "stale",
                                                                  "elements": [button]}])


async def test_a_lapsed_approval_returns_to_verified_and_can_be_approved_again(box: Sandbox) -> None:
    cid = box.mautic.add_contact(email="jane@example.com")
    message = await file_request(box, ALICE, "erase jane@example.com")
    request_id = request_id_of(message)
    await verify_identity(box, CAROL, message)
    original = (await load_row(box, request_id)).due_date  # type: ignore[union-attr]
    # Approved eight days ago and never run (APPROVAL_TTL is 7 days): as if its job had been lost.
    async with unit_of_work(box.services.sessions) as session:
        await session.exec(update(store.PrivacyRequest).where(  # type: ignore[call-overload]
            col(store.PrivacyRequest.id) == request_id).values(
            state="approved", approved_by=BOB.id, approved_at=box.services.clock() - timedelta(days=8), runs=1))
    assert await enqueue_daily(box.services)
    said = await wait_thread(box, message, "lapsed")
    row = await wait_state(box, message, "verified")
    assert row.due_date == original and row.approved_by is None and row.approved_at is None
    assert row.subject_email == "jane@example.com" and row.completed_at is None  # nothing was closed
    assert f"still due *{original.isoformat()}*" in said and "approve it again" in said
    (entry,) = await ledger(box, "request.lapse")
    assert entry.details["to"] == "verified" and entry.details["lapsed_approval_by"] == BOB.id
    assert "1 open request(s)" in (await box.command(BOB, "requests")).json["text"]

    # Approving again runs it (a new run, so the job's dedupe key is new too).
    await click(box, BOB, message, RequestButton.APPROVE)
    row = await wait_state(box, message, "cleanup")
    assert row.runs == 2 and row.approved_by == BOB.id and box.mautic.contact(cid) is None


async def test_receipt_and_answer_are_recorded_and_close_the_request(box: Sandbox) -> None:
    box.mautic.add_contact(email="jane@example.com")
    message = await file_request(box, ALICE, "dsar jane@example.com regime=ccpa")
    request_id = request_id_of(message)
    filed = await load_row(box, request_id)
    assert filed is not None and filed.acknowledgement_due is not None
    assert f"confirm receipt by {filed.acknowledgement_due.isoformat()} (CCPA §7021(a)" in text_of(message)

    await click(box, ALICE, message, RequestButton.ACKNOWLEDGE)
    await wait_thread(box, message, "receipt of request #1 was confirmed")
    row = await load_row(box, request_id)
    assert row is not None and row.acknowledged_by == ALICE.id and row.acknowledged_at is not None
    assert row.state == "filed"  # recording what the requester was told moves nothing
    await box.slack.wait_until(lambda: "receipt confirmed" in text_of(message), describe="the redrawn message")
    assert RequestButton.ACKNOWLEDGE not in str(message.blocks)
    await click(box, BOB, with_button(message, RequestButton.ACKNOWLEDGE), RequestButton.ACKNOWLEDGE)
    await refusal(box, "Receipt was already confirmed")

    await verify_identity(box, CAROL, message)
    await click(box, BOB, message, RequestButton.APPROVE)
    await wait_state(box, message, "done")
    await wait_thread(box, message, "Access package")
    assert RequestButton.RESPOND not in str(message.blocks)  # nothing to answer with before the release
    await release(box, message, CAROL)
    await box.slack.wait_until(lambda: "released by" in text_of(message), describe="the redrawn message")
    # Done, but not closed: the answer has not gone out yet.
    assert "answer not yet recorded as sent" in text_of(message)
    assert "1 open request(s)" in (await box.command(BOB, "requests")).json["text"]
    assert RequestButton.RESPOND in str(message.blocks)

    await click(box, ALICE, message, RequestButton.RESPOND)
    await wait_thread(box, message, "went out to the requester. The request is closed.")
    row = await load_row(box, request_id)
    assert row is not None and row.responded_by == ALICE.id and row.responded_at is not None
    await box.slack.wait_until(lambda: "answer sent" in text_of(message), describe="the redrawn message")
    assert not [b for b in message.blocks if b.get("type") == "actions"]
    assert "No open data-subject requests" in (await box.command(BOB, "requests")).json["text"]
    assert [e.actor for e in await ledger(box, "request.acknowledge")] == [ALICE.id]
    assert [e.actor for e in await ledger(box, "request.respond")] == [ALICE.id]
    await click(box, BOB, with_button(message, RequestButton.RESPOND), RequestButton.RESPOND)
    await refusal(box, "already recorded as sent")


async def test_the_answer_is_recorded_only_once_the_request_is_decided(box: Sandbox) -> None:
    message = await file_request(box, ALICE, "dsar jane@example.com")
    await click(box, ALICE, with_button(message, RequestButton.RESPOND), RequestButton.RESPOND)
    await refusal(box, "once the request is done or rejected")
    assert (await load_row(box, request_id_of(message))).responded_at is None  # type: ignore[union-attr]


async def test_an_extension_records_the_notice_to_the_requester(box: Sandbox) -> None:
    message = await file_request(box, ALICE, "dsar jane@example.com received=2026-01-01", expect_contacts=False)
    request_id = request_id_of(message)
    # The clock is the real one; received 1 Jan 2026 may already be past its due date, so move it to today.
    today = box.services.clock().date()
    async with unit_of_work(box.services.sessions) as session:
        await session.exec(update(store.PrivacyRequest).where(  # type: ignore[call-overload]
            col(store.PrivacyRequest.id) == request_id).values(
            received_on=today, due_date=today + timedelta(days=30), original_due_date=today + timedelta(days=30)))
    view = await open_modal(box, BOB, message, RequestButton.EXTEND)
    picker = next(b for b in view.view["blocks"] if b.get("block_id") == NoticeInput.DATE_BLOCK)
    assert picker["element"]["initial_date"] == today.isoformat()

    unticked = await submit_extension(box, BOB, view, "Many linked records", told_on=today.isoformat(),
                                      confirmed=False)
    assert "Confirm that the requester was told" in unticked.json["errors"][NoticeInput.CONFIRM_BLOCK]
    no_day = await submit_extension(box, BOB, view, "Many linked records", told_on=None)
    assert "Pick the day" in no_day.json["errors"][NoticeInput.CONFIRM_BLOCK]
    future = await submit_extension(box, BOB, view, "Many linked records",
                                    told_on=(today + timedelta(days=1)).isoformat())
    assert "is in the future" in future.json["errors"]["reason"]
    early = await submit_extension(box, BOB, view, "Many linked records",
                                   told_on=(today - timedelta(days=1)).isoformat())
    assert "before the request was received" in early.json["errors"]["reason"]
    row = await load_row(box, request_id)
    assert row is not None and row.extended_at is None and row.extension_notified_on is None

    result = await submit_extension(box, BOB, view, "Many linked records", told_on=today.isoformat())
    assert result.status == 200 and not result.text.strip()
    await wait_thread(box, message, "extended request #1")
    row = await load_row(box, request_id)
    assert row is not None and row.extension_notified_on == today and row.extended_by == BOB.id
    await box.slack.wait_until(lambda: f"extension notice sent {today.isoformat()}" in text_of(message),
                               describe="the notice on the request message")
    (entry,) = await ledger(box, "request.extend")
    assert entry.details["notified_on"] == today.isoformat()


async def test_the_digest_counts_a_request_closed_only_when_answered(db_url: str) -> None:
    engine = make_engine(db_url)
    await migrate(engine)
    sessions = make_session_factory(engine)
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    today = date(2026, 11, 30)

    def request(n: int, state: str, responded: datetime | None) -> store.PrivacyRequest:
        return store.PrivacyRequest(
            kind="access", state=state, regime="gdpr", subject_hash=f"{n:064x}", subject_masked="j***@example.com",
            filed_by="U0ALICE", channel="C0PRIVACY", received_at=now - timedelta(days=40),
            received_on=today - timedelta(days=40), due_date=today - timedelta(days=3),
            original_due_date=today - timedelta(days=3), updated_at=now, completed_at=now - timedelta(days=5),
            responded_at=responded)

    async with unit_of_work(sessions) as session:
        session.add_all([
            request(1, "done", None),  # carried out but not answered: open, and overdue
            request(2, "rejected", None),  # rejected but the rejection not sent: open, and overdue
            request(3, "done", now - timedelta(days=1)),  # answered: closed
        ])
    async with unit_of_work(sessions) as session:
        figures = await request_figures(session, now - timedelta(days=7), now, today=today, due_soon_days=5)
        listed = [r.id for r in await store.open_requests(session)]
    await engine.dispose()
    assert figures is not None
    assert (figures["closed"], figures["overdue"]) == (1, 2)
    assert figures["days_to_close"] == [39.0]
    assert listed == [1, 2]
