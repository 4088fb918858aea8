"""Alert buttons, the dismiss modal, unsubscribes and other contact events, /privacy consent, and the
functions other features call (purge, access records, digest counts)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.privacy import subject_hash
from sandbox.harness import ALICE, BOB, CAROL, MALLORY, Sandbox, sandbox
from sandbox.mautic import (
    channel_subscription_event,
    email_send_event,
    form_submission_event,
    merge_payloads,
    unsubscribe_event,
    webhook_contact_payload,
)
from storage import intake as store
from storage.db import unit_of_work
from storage.erasures import record_erasure
from storage.intake import AlertKind, AlertState
from tests.helpers import ledger, test_tuning
from tests.intake.helpers import alerts, inbox, records, withdrawals

TS = "2024-10-24T15:54:35+00:00"


def gap(contact_id: int, email: str, *, sub: int = 13, consent: str | None = None,
        timestamp: str = TS) -> dict[str, list[dict[str, object]]]:
    results: dict[str, object] = {"email": email}
    if consent is not None:
        results["consent"] = consent
    return form_submission_event(contact_id=contact_id, email=email, results=results, submission_id=sub,
                                 timestamp=timestamp)


async def posted_alert(box: Sandbox, contact_id: int, email: str) -> tuple[int, object]:
    assert (await box.webhook(gap(contact_id, email)))[0] == 200
    await box.slack.wait_for("chat.postMessage")
    message = box.slack.messages(box.channel)[-1]
    return contact_id, message


async def test_mark_do_not_contact_once_with_thread_update_and_ledger(box: Sandbox) -> None:
    cid = box.mautic.add_contact(email="jane@example.com")
    _, message = await posted_alert(box, cid, "jane@example.com")
    stale = copy.deepcopy(message)  # what a second person's client still shows

    refused = await box.user.click(MALLORY.id, message, "consent_dnc")  # type: ignore[arg-type]
    assert refused.status == 200
    await box.slack.wait_for_response(where=lambda r: "Only privacy approvers" in r.text)

    clicked = await box.user.click(BOB.id, message, "consent_dnc")  # type: ignore[arg-type]
    assert clicked.status == 200
    (call,) = await box.mautic.wait_for("POST", f"/api/contacts/{cid}/dnc/email/add")
    assert call.json["reason"] == 3 and "consent alert #1" in call.json["comments"]
    await box.slack.wait_for("chat.update")
    await box.slack.wait_until(lambda: len(box.slack.thread(box.channel, message.ts)) == 1)  # type: ignore[attr-defined]
    (reply,) = box.slack.thread(box.channel, message.ts)  # type: ignore[attr-defined]
    assert "<@U0BOB>" in reply.text and "Mark Do-Not-Contact" in reply.text and "1 contact" in reply.text
    await box.jobs_idle()
    final = box.slack.message(box.channel, message.ts)  # type: ignore[attr-defined]
    assert not any(b["type"] == "actions" for b in final.blocks)
    assert "Do-Not-Contact" in json.dumps(final.blocks) and "<@U0BOB>" in json.dumps(final.blocks)

    again = await box.user.click(CAROL.id, stale, "consent_dnc")  # type: ignore[arg-type]
    assert again.status == 200
    await box.slack.wait_for_response(where=lambda r: "already decided by <@U0BOB>" in r.text)
    await box.jobs_idle()
    assert len([c for c in box.mautic.calls if c.path.endswith("/dnc/email/add")]) == 1
    assert len(await ledger(box, "consent.decided")) == 1
    (applied,) = await ledger(box, "consent.decision_applied")
    assert applied.subject == "alert:1" and applied.details["done"] == 1
    assert box.mautic.contact(cid)["doNotContact"][0]["reason"] == 3  # type: ignore[index]


async def test_dismiss_asks_for_a_reason_and_changes_nothing_in_mautic(box: Sandbox) -> None:
    cid = box.mautic.add_contact(email="sam@example.com")
    _, message = await posted_alert(box, cid, "sam@example.com")
    stale = copy.deepcopy(message)
    await box.user.click(CAROL.id, message, "consent_dismiss")  # type: ignore[arg-type]
    await box.slack.wait_for("views.open")
    view = box.slack.views[-1]
    empty = await box.user.submit_view(CAROL.id, view, {"reason": {"reason_input": {"type": "plain_text_input",
                                                                                    "value": " "}}})
    assert empty.json["response_action"] == "errors"
    ok = await box.user.submit_view(CAROL.id, view, {"reason": {"reason_input": {
        "type": "plain_text_input", "value": "Consent given by phone, ticket 4411"}}})
    assert ok.status == 200
    await box.slack.wait_until(lambda: len(box.slack.thread(box.channel, message.ts)) == 1)  # type: ignore[attr-defined]
    (reply,) = box.slack.thread(box.channel, message.ts)  # type: ignore[attr-defined]
    assert "ticket 4411" in reply.text and "<@U0CAROL>" in reply.text
    await box.jobs_idle()
    assert not [c for c in box.mautic.calls if "/dnc/" in c.path]
    (alert,) = await alerts(box)
    assert alert.state == AlertState.DECIDED and alert.decision == "dismiss"
    # A click on the decided alert's stale buttons changes nothing.
    await box.user.click(BOB.id, stale, "consent_dnc")  # type: ignore[arg-type]
    await box.slack.wait_for_response(where=lambda r: "already decided by <@U0CAROL>" in r.text)
    assert len(await ledger(box, "consent.decided")) == 1


async def test_reconsent_segment_and_burst_decision_apply_to_every_folded_contact(
    db_url: str, tmp_path: Path
) -> None:
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path, reconsent_segment_id=5) as box:
        box.mautic.add_segment(5, "Re-consent")
        ids = [box.mautic.add_contact(email=f"p{n}@example.com") for n in range(4)]
        batch = merge_payloads(*[gap(cid, f"p{n}@example.com", sub=50 + n) for n, cid in enumerate(ids)])
        assert (await box.webhook(batch))[0] == 200
        await box.slack.wait_for("chat.postMessage")
        await box.jobs_idle()
        message = box.slack.messages(box.channel)[0]
        await box.slack.wait_until(lambda: "3 more" in json.dumps(box.slack.message(box.channel, message.ts).blocks))
        message = box.slack.message(box.channel, message.ts)
        await box.user.click(BOB.id, message, "consent_reconsent")
        calls = await box.mautic.wait_for("POST", "/api/segments/5/contact/", count=4)
        assert sorted(int(c.path.split("/")[5]) for c in calls) == sorted(ids)
        await box.jobs_idle()
        assert {a.state for a in await alerts(box)} == {AlertState.DECIDED}
        (reply,) = box.slack.thread(box.channel, message.ts)
        assert "applies to 4 contacts" in reply.text and "4 contacts" in reply.text


async def test_unsubscribe_send_after_withdrawal_and_resubscription(box: Sandbox) -> None:
    cid, email = 26, "jane@example.com"
    contact = webhook_contact_payload(cid, email)
    assert (await box.webhook(unsubscribe_event(cid, email, timestamp="2024-10-24T10:00:00-06:00")))[0] == 200
    await box.jobs_idle()
    (withdrawal,) = await withdrawals(box)
    assert withdrawal.new_status == "unsubscribed"
    assert withdrawal.withdrawn_at.isoformat() == "2024-10-24T16:00:00+00:00"  # the sender's -06:00 honoured
    assert len(await ledger(box, "consent.withdrawn")) == 1
    assert box.slack.calls_to("chat.postMessage") == []  # ALERT_ON_UNSUBSCRIBE is off: digest only

    assert (await box.webhook(email_send_event(contact=contact, timestamp="2024-10-25T08:00:00+00:00")))[0] == 200
    (sent,) = await box.slack.wait_for("chat.postMessage")
    assert "sent after consent was withdrawn" in sent.params["text"].lower() or "withdrawn" in json.dumps(
        sent.params["blocks"])
    back = channel_subscription_event(contact, old_status="unsubscribed", new_status="contactable",
                                      timestamp="2024-10-26T08:00:00+00:00")
    assert (await box.webhook(back))[0] == 200
    await box.slack.wait_for("chat.postMessage", 2)
    await box.jobs_idle()
    kinds = sorted(a.kind for a in await alerts(box))
    assert kinds == sorted([AlertKind.SENT_AFTER_WITHDRAWAL, AlertKind.RESUBSCRIBED])
    (withdrawal,) = await withdrawals(box)
    assert withdrawal.restored_at is not None


async def test_resubscription_after_new_consent_is_not_flagged_and_late_withdrawal_finds_sends(
    box: Sandbox,
) -> None:
    contact = webhook_contact_payload(30, "kim@example.com")
    # The send is delivered before the (earlier) unsubscribe: the withdrawal still finds it.
    assert (await box.webhook(email_send_event(contact=contact, timestamp="2024-10-25T08:00:00+00:00")))[0] == 200
    await box.jobs_idle()
    unsubscribed = unsubscribe_event(30, "kim@example.com", timestamp="2024-10-24T08:00:00+00:00")
    assert (await box.webhook(unsubscribed))[0] == 200
    await box.slack.wait_for("chat.postMessage")
    await box.webhook(gap(30, "kim@example.com", consent="1", timestamp="2024-10-26T08:00:00+00:00"))
    await box.jobs_idle()
    back = channel_subscription_event(contact, old_status="unsubscribed", new_status="contactable",
                                      timestamp="2024-10-27T08:00:00+00:00")
    await box.webhook(back)
    await box.jobs_idle()
    assert [a.kind for a in await alerts(box)] == [AlertKind.SENT_AFTER_WITHDRAWAL]
    (resub,) = await ledger(box, "consent.resubscribed")
    assert resub.details["flagged"] is False


async def test_alert_on_unsubscribe_posts_an_information_message(db_url: str, tmp_path: Path) -> None:
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path, alert_on_unsubscribe=True) as box:
        assert (await box.webhook(unsubscribe_event(8, "lee@example.com")))[0] == 200
        (post,) = await box.slack.wait_for("chat.postMessage")
        assert "l***@example.com" in post.params["text"] and "actions" not in json.dumps(post.params["blocks"])


async def test_erased_subject_reentering_is_flagged(box: Sandbox) -> None:
    subject = subject_hash(box.services.hash_key, "gone@example.com")
    erased_at = datetime(2024, 10, 1, tzinfo=UTC)  # before the submission's timestamp (TS): a real re-entry
    async with unit_of_work(box.services.sessions) as session:
        await record_erasure(session, subject_hash=subject, request_id=1, received_at=erased_at, erased_at=erased_at)
    assert (await box.webhook(gap(40, "Gone@Example.com", consent="yes")))[0] == 200
    (post,) = await box.slack.wait_for("chat.postMessage")
    assert "Erased data subject re-entered" in post.params["text"]
    assert len(await ledger(box, "consent.erased_subject_reentered")) == 1


async def test_consent_command_shows_history_to_approvers_only(box: Sandbox) -> None:
    await box.webhook(gap(26, "jane@example.com", consent="Yes"))
    await box.webhook(unsubscribe_event(26, "jane@example.com"))
    await box.jobs_idle()
    answer = await box.command(BOB, "consent <mailto:Jane@Example.com|Jane@Example.com>")
    assert answer.status == 200
    shown = json.dumps(answer.json)
    assert "Consent history for j***@example.com" in shown and "Newsletter" in shown and "unsubscribed" in shown
    assert len(await ledger(box, "consent.history_viewed")) == 1
    refused = await box.command(ALICE, "consent jane@example.com")
    assert "Only privacy approvers" in refused.text
    bad = await box.command(BOB, "consent not-an-email")
    assert "Usage: `/privacy consent <email>`" in bad.rendered  # as Slack shows the escaped text


async def test_purge_access_records_and_digest_counts(box: Sandbox) -> None:
    await box.webhook(merge_payloads(gap(1, "a@example.com"), gap(2, "b@example.com", sub=2, consent="1"),
                                     unsubscribe_event(1, "a@example.com")))
    await box.jobs_idle()
    subject = subject_hash(box.services.hash_key, "a@example.com")
    since = box.services.clock() - timedelta(days=3650)
    until = box.services.clock() + timedelta(days=1)
    async with unit_of_work(box.services.sessions) as session:
        held = await store.subject_records(session, subject)
        counts = await store.compliance_counts(session, since, until)
    assert len(held["consent_records"]) == 1 and held["consent_records"][0]["email"] == "a@example.com"
    assert len(held["withdrawals"]) == 1 and len(held["alerts"]) == 1 and len(held["webhook_events"]) == 2
    assert counts["submissions"] == 2 and counts["forms"][0]["consent_share"] == 0.5
    assert counts["gaps_open"] == 1 and counts["unsubscribes"] == 1 and counts["withdrawals"] == 1
    async with unit_of_work(box.services.sessions) as session:
        purged = await store.purge_subject(session, subject)
    assert purged == {"inbox_events": 2, "consent_records": 1, "withdrawals": 1, "alerts_anonymised": 1}
    async with unit_of_work(box.services.sessions) as session:
        assert await store.subject_records(session, subject) == {
            "consent_records": [], "withdrawals": [], "alerts": [], "webhook_events": []}
    assert all(r.email != "a@example.com" for r in await records(box))
    assert len(await inbox(box)) == 1  # b's submission stays
    (alert,) = await alerts(box)
    assert alert.email_display == "(erased)" and alert.subject_hash is None


async def test_send_after_withdrawal_matches_the_subject_through_the_flat_send_contact(box: Sandbox) -> None:
    # Issue 12: mautic.email_on_send carries the mailer's flat contact row (EmailBundle/EventListener/
    # WebhookSubscriber.php: 'contact' => $event->getLead()), so its email is `contact.email`, not under
    # `fields`. Here the send goes to a second record of the same person (another id): only the address
    # can tie it to her withdrawal.
    assert (await box.webhook(unsubscribe_event(26, "jane@example.com", timestamp="2024-10-24T10:00:00+00:00")))[0] \
        == 200
    await box.jobs_idle()
    flat = {"id": "27", "email": "Jane@example.com", "firstname": "Jane"}
    assert (await box.webhook(email_send_event(contact=flat, timestamp="2024-10-25T08:00:00+00:00")))[0] == 200
    await box.slack.wait_for("chat.postMessage")
    await box.jobs_idle()
    assert [a.kind for a in await alerts(box)] == [AlertKind.SENT_AFTER_WITHDRAWAL]
    (sent,) = await ledger(box, "consent.sent_after_withdrawal")
    assert sent.subject == f"subject:{subject_hash(box.services.hash_key, 'jane@example.com')[:16]}"
