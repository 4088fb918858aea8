"""Issue 11: an erasure is done only when every clean-up line is ticked, and afterwards the bot's store (every
text and JSON column of every table, the ledger included) holds nothing of the person: not the address, the
name, a field value, nor any reason or note someone typed."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import re
from datetime import timedelta

from sqlmodel import col, select

from bot.digests.blocks import compliance_digest as compliance_message
from bot.digests.service import compliance_digest
from bot.requests.ids import RequestButton
from sandbox.harness import ALICE, BOB, CAROL, MALLORY, PRIVACY_CHANNEL, Sandbox
from sandbox.mautic import form_submission_event
from storage.db import unit_of_work
from storage.digests import request_figures
from storage.intake import ConsentRecord
from storage.jobs import Job
from storage.ledger import verify
from storage.slack_posts import SlackPost
from tests.helpers import ledger, text_of
from tests.helpers.store_scan import find_in_store, searchable_columns
from tests.requests.helpers import (
    checklist_of,
    cleanup_buttons,
    click,
    file_request,
    open_modal,
    submit_extension,
    submit_reason,
    tick_line,
    verify_identity,
    wait_state,
    wait_thread,
)
from tests.requests.test_access import channel_dump, refusal

EMAIL = "zephyrine.q@example.com"
NAME, SURNAME, CITY = "Zephyrine", "Quixotic-Vane", "Xanadu-upon-Tyne"
NEW_CITY = "Xanadu-by-the-Sea"
TYPED = {
    "dismiss": "Zebra form fixed, re-ask Zephyrine",
    "reject": "Requester Zephyrine could not prove the address",
    "extend": "Zephyrine holds nine linked records",
    "identity": "Called Zephyrine back on the CRM number",
    "note": "ticket Wolfram-7781",
}


def test_the_scan_covers_every_table_that_holds_text() -> None:
    scanned = {table for table, _ in searchable_columns()}
    assert {"audit_ledger", "privacy_requests", "request_decisions", "jobs", "consent_records", "consent_alerts",
            "intake_inbox", "inbox_deliveries", "erasure_cleanup", "purge_chunks", "slack_posts", "spool_moves",
            "form_revisions", "form_fields_seen", "slack_export_files", "erased_subjects"} <= scanned
    assert ("jobs", "progress") in searchable_columns() and ("intake_inbox", "raw_body") in searchable_columns()


async def test_erasure_waits_for_every_clean_up_line_and_leaves_nothing_behind(box: Sandbox) -> None:
    fake = box.mautic
    cid = fake.add_contact(email=EMAIL, firstname=NAME, lastname=SURNAME, fields={"city": CITY})
    fake.add_email_stat(cid)
    fake.add_form(4, "Newsletter", alias="newsletter", fields=[  # its revision gives the record a label text
        {"alias": "email", "type": "email", "leadField": "email"},
        {"alias": "consent", "type": "checkboxgrp", "label": "Yes, send me the newsletter"}])

    # What the bot holds before: a consent record and an alert (dismissed with a typed reason) ...
    results = {"email": EMAIL, "firstname": NAME, "lastname": SURNAME, "city": CITY}
    referer = f"https://example.com/signup?email={EMAIL}&city={CITY}"  # kept as the record's page_url
    assert (await box.webhook(form_submission_event(contact_id=cid, email=EMAIL, results=results,
                                                    referer=referer)))[0] == 200
    await box.slack.wait_for("chat.postMessage")
    alert = box.slack.messages(PRIVACY_CHANNEL)[-1]
    await box.user.click(CAROL.id, alert, "consent_dismiss")
    await box.slack.wait_for("views.open")
    await box.user.submit_view(CAROL.id, box.slack.views[-1], {"reason": {"reason_input": {
        "type": "plain_text_input", "value": TYPED["dismiss"]}}})
    await box.slack.wait_until(lambda: "Dismiss* by" in text_of(alert), describe="the alert dismissed")
    # ... an earlier request rejected with a reason ...
    rejected = await file_request(box, ALICE, f"dsar {EMAIL} {TYPED['note']}")
    await submit_reason(box, BOB, await open_modal(box, BOB, rejected, RequestButton.REJECT), TYPED["reject"])
    await wait_state(box, rejected, "rejected")
    # ... a rectification carried out (its job's progress held the values before and after) ...
    rectified = await file_request(box, ALICE, f'rectify {EMAIL} city="{NEW_CITY}"')
    await verify_identity(box, CAROL, rectified)
    await click(box, BOB, rectified, RequestButton.APPROVE)
    await wait_state(box, rectified, "done")
    assert NEW_CITY in await wait_thread(box, rectified, "applied and read back")  # shown in Slack until erased
    # ... and the erasure itself, extended with a reason and verified with a note.
    message = await file_request(box, ALICE, f"erase {EMAIL} {TYPED['note']}")
    await submit_extension(box, CAROL, await open_modal(box, CAROL, message, RequestButton.EXTEND), TYPED["extend"],
                           told_on=box.services.clock().date().isoformat())
    await wait_thread(box, message, "extended request")
    await verify_identity(box, CAROL, message, "other", TYPED["identity"])
    found = await find_in_store(box.services.sessions, [EMAIL, CITY, *TYPED.values()])
    held = {(table, needle) for table, _, needle in found}
    assert {("privacy_requests", TYPED["reject"].lower()), ("request_decisions", TYPED["extend"].lower()),
            ("consent_alerts", TYPED["dismiss"].lower()), ("consent_records", EMAIL)} <= held  # the scan sees them
    await box.jobs_idle()
    async with unit_of_work(box.services.sessions) as session:
        (record,) = (await session.exec(select(ConsentRecord))).all()
        posts = (await session.exec(select(SlackPost))).all()
    # The evidence columns are filled (the page URL without its query, which can carry the address).
    assert record.page_url == "https://example.com/signup" and record.label_text
    assert posts and all(p.ts for p in posts)  # exactly-once posts were made (ids only: nothing to forget)
    await click(box, BOB, message, RequestButton.APPROVE)

    # Deleted in Mautic, but not done: one line per place Mautic keeps data, one per recipient (Art. 19).
    await wait_state(box, message, "cleanup")
    assert fake.contact(cid) is None
    checklist = await checklist_of(box, message)
    recipients = box.services.policy.access.recipients or []
    lines = cleanup_buttons(checklist)
    assert len(lines) == 5 + len(recipients) and str(checklist.blocks).count("Recipient notified") == len(recipients)
    for place in ("Email stats", "Form results", "Page hits", "Audit log", "Webhook queue and logs"):
        assert place in text_of(checklist)
    assert RequestButton.RESPOND not in str(message.blocks)  # no answer before the clean-up is done
    now = box.services.clock()
    async with unit_of_work(box.services.sessions) as session:
        figures = await request_figures(session, now - timedelta(days=7), now + timedelta(days=1),
                                        today=now.date(), due_soon_days=5)
    assert figures is not None and figures["awaiting_cleanup"] == 1
    # The compliance digest says so (the count's path through the digest into its message).
    digest = await compliance_digest(box.services, since=now - timedelta(days=7), until=now + timedelta(days=1))
    rendered = json.dumps(compliance_message(digest, run_id=1)["blocks"])
    assert re.search(r"Erasures awaiting clean-up\*?\\n1\b", rendered), rendered
    stale = dataclasses.replace(checklist, blocks=copy.deepcopy(checklist.blocks))

    # Only approvers tick; each line once.
    await tick_line(box, MALLORY, checklist, *lines[0])
    await refusal(box, "Only privacy approvers")
    for block_id, value in lines[:-1]:
        await tick_line(box, BOB, checklist, block_id, value)
        await box.slack.wait_until(lambda: (block_id, value) not in cleanup_buttons(checklist),  # noqa: B023
                                   describe="the ticked line redrawn")
    assert (await wait_state(box, message, "cleanup")).completed_at is None  # one line left: still not done
    await tick_line(box, CAROL, stale, *lines[0])
    await refusal(box, "already marked done by <@U0BOB>")
    await tick_line(box, CAROL, checklist, *cleanup_buttons(checklist, RequestButton.CLEANUP_NOT_APPLICABLE)[0],
                    action_id=RequestButton.CLEANUP_NOT_APPLICABLE)
    row = await wait_state(box, message, "done")
    assert row.completed_at is not None
    await wait_thread(box, message, "every clean-up line is ticked")
    assert "not applicable, marked by <@U0CAROL>" in text_of(checklist)
    assert RequestButton.RESPOND in str(message.blocks)
    ticks = await ledger(box, "erasure.cleanup_ticked")
    assert len(ticks) == len(lines) and {e.actor for e in ticks} == {BOB.id, CAROL.id}
    complete = [e for e in await ledger(box, "request.complete") if e.details.get("kind") == "erasure"]
    assert [e.actor for e in complete] == [CAROL.id]  # the click that closed the last line

    # Slack: the replies that quoted a typed reason or note (the alert's dismissal, the request decisions) or a
    # field value (the rectification's before/after) were redacted with the rest.
    quoted = [TYPED[k] for k in ("dismiss", "reject", "extend", "identity")] + [NEW_CITY]
    await box.slack.wait_until(lambda: not any(t in channel_dump(box) for t in quoted),
                               describe="typed reasons redacted in Slack")
    # Nothing of her anywhere in the store; the ledger says reasons were given, and still verifies.
    assert await find_in_store(box.services.sessions, [EMAIL, NAME, SURNAME, CITY, NEW_CITY, *TYPED.values()]) == []
    reasons = [e.details for e in await ledger(box, "request.reject") + await ledger(box, "request.extend")]
    assert all(d["reason_given"] is True and len(d["reason_hash"]) == 64 for d in reasons)
    async with unit_of_work(box.services.sessions) as session:
        assert (await verify(session)).ok
        jobs = (await session.exec(select(Job).where(col(Job.dedupe_key).like("request:%")))).all()
    assert jobs and all(not {"contacts", "deleted", "leftovers", "rows", "messages"} & set(j.progress) for j in jobs)
    assert row.contacts_found is None and "deleted" not in row.result


async def test_two_approvers_ticking_the_last_two_lines_at_once_complete_the_request_once(box: Sandbox) -> None:
    from bot.requests import cleanup
    from storage import erasure_cleanup as lines_store
    from storage import requests as store
    from storage.erasure_cleanup import LineState

    now = box.services.clock()
    async with unit_of_work(box.services.sessions) as session:
        row = await store.add_request(session, store.PrivacyRequest(
            kind="erasure", state="cleanup", regime="gdpr", subject_hash="e" * 64, subject_masked="(erased subject)",
            filed_by=ALICE.id, channel=PRIVACY_CHANNEL, received_at=now, due_date=now.date(),
            original_due_date=now.date(), updated_at=now))
        assert row.id is not None
        await lines_store.add_lines(session, row.id, [("email_stats", None), ("recipient", "Our ESP")])
        ids = [line.id for line in await lines_store.lines_for(session, row.id)]
    ticked = await asyncio.gather(cleanup.tick(box.services, ids[0] or 0, BOB.id, LineState.DONE),
                                  cleanup.tick(box.services, ids[1] or 0, CAROL.id, LineState.NOT_APPLICABLE))
    assert sorted(t.completed for t in ticked) == [False, True]
    assert len(await ledger(box, "request.complete")) == 1
    async with unit_of_work(box.services.sessions) as session:
        done = await store.get_request(session, row.id)
    assert done is not None and done.state == "done" and done.completed_at is not None
