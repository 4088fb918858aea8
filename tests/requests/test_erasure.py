"""Erasure end to end: Mautic deletes confirmed, the bot's own store purged, earlier Slack messages
redacted, the leftovers Mautic keeps reported; and rectification with its read-back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlmodel import select

from bot.privacy import subject_hash
from bot.requests.ids import RequestButton
from sandbox.harness import ALICE, BOB, CAROL, PRIVACY_CHANNEL, Sandbox
from sandbox.mautic import form_submission_event
from storage import requests as store
from storage.db import unit_of_work
from storage.erasures import ErasedSubject, is_erased
from storage.ledger import AuditEntry, entries_naming_contact
from tests.helpers import ledger, text_of
from tests.requests.helpers import (
    click,
    file_request,
    finish_cleanup,
    load_row,
    release,
    request_id_of,
    verify_identity,
    wait_state,
    wait_thread,
)
from tests.requests.test_access import channel_dump, download


async def approve(box: Sandbox, message, approver=BOB, verifier=CAROL):  # type: ignore[no-untyped-def]
    # The verifier is an approver who did not file (ALICE files in these tests).
    await verify_identity(box, verifier, message)
    await click(box, approver, message, RequestButton.APPROVE)


async def test_erasure_deletes_in_mautic_purges_locally_and_redacts(box: Sandbox) -> None:
    fake = box.mautic
    first = fake.add_contact(email="jane@example.com", firstname="Jane")
    second = fake.add_contact(email="JANE@example.com", firstname="Janet")  # a duplicate record
    bystander = fake.add_contact(email="jane@example.com.au", firstname="Other")
    fake.add_email_stat(first, read=True)
    fake.add_email_stat(first)

    # What the bot held before: an intake alert about her, and an earlier access package.
    assert (await box.webhook(form_submission_event(contact_id=first, email="jane@example.com",
                                                    results={"email": "jane@example.com"})))[0] == 200
    await box.slack.wait_for("chat.postMessage")
    alert = box.slack.messages(PRIVACY_CHANNEL)[-1]
    assert "j***@example.com" in text_of(alert)
    dsar = await file_request(box, ALICE, "dsar jane@example.com")
    await approve(box, dsar)
    await wait_state(box, dsar, "done")
    package_reply = await release(box, dsar, CAROL)
    async with unit_of_work(box.services.sessions) as session:
        package_path = Path((await session.exec(select(store.ExportLink))).one().path)
    assert package_path.exists()  # noqa: ASYNC240 - a test reading a small local file

    message = await file_request(box, ALICE, "erase jane@example.com per email of 3 May")
    assert f"2 (#{first}, #{second})" in text_of(message)
    _, approve_button = next((b, e) for b in message.blocks if b.get("type") == "actions"
                             for e in b["elements"] if e["action_id"] == RequestButton.APPROVE)
    assert approve_button["style"] == "danger" and approve_button["confirm"]["style"] == "danger"
    await approve(box, message, approver=CAROL, verifier=BOB)
    row = await wait_state(box, message, "cleanup")

    # Mautic: both exact matches deleted once and confirmed gone; the prefix match untouched.
    assert fake.contact(first) is None and fake.contact(second) is None and fake.contact(bystander) is not None
    deletes = [c.path for c in fake.calls if c.method == "DELETE"]
    assert sorted(deletes) == sorted([f"/api/contacts/{first}/delete", f"/api/contacts/{second}/delete"])
    summary = await wait_thread(box, message, "contacts deleted in Mautic")
    assert f"#{first}, #{second}" in summary and "Not done yet" in summary and "Art. 17(3)(b)" in summary
    assert "deleted after 1095 days (ERASED_HASH_RETENTION)" in summary  # the configured retention, stated
    checklist = await wait_thread(box, message, "clean-up checklist")
    assert "before the delete: 2 row(s)" in checklist
    await finish_cleanup(box, message, BOB)

    # The bot's own store keeps only the keyed hash, request ids, dates and decisions.
    digest = subject_hash(box.services.hash_key, "jane@example.com")
    async with unit_of_work(box.services.sessions) as session:
        assert await is_erased(session, digest)
        erased = (await session.exec(select(ErasedSubject))).one()
        assert erased.request_id == row.id
        for other in await store.requests_for_subject(session, digest):
            assert other.subject_email is None and other.note is None and other.subject_masked == "(erased subject)"
        from storage import intake

        held = await intake.subject_records(session, digest)
        assert held["consent_records"] == [] and held["webhook_events"] == []
        assert held["alerts"] == []  # anonymised alerts no longer point at her
    assert not package_path.exists()  # noqa: ASYNC240 - a test reading a small local file
    status, _, _ = await download(box, package_reply)
    assert status == 410  # the earlier package went with the person
    # The audit ledger, which outlives the erasure and cannot be edited, names her contacts only by keyed refs.
    async with unit_of_work(box.services.sessions) as session:
        entries = (await session.exec(select(AuditEntry))).all()
        about_first = await entries_naming_contact(session, first)
    for entry in entries:
        stored = json.dumps([entry.subject, entry.details])
        for cid in (first, second):
            assert f'"contact:{cid}"' not in stored, entry
            assert not any(f'"{name}": {cid}' in stored for name in ("contact_id", "contact", "id")), entry
    # The earlier access request's completion lists her contacts; an auditor with the key still finds it.
    assert "request.complete" in {e.action for e in about_first}
    (purge,) = await ledger(box, "request.local_purge")
    assert purge.details["requests"] == 2 and purge.details["access_packages"] == 1
    assert "jane" not in json.dumps(purge.details)

    # Slack: the bot's earlier messages about her no longer show even the masked address.
    await box.slack.wait_until(lambda: "j***@example.com" not in channel_dump(box), describe="redaction")
    assert "Redacted" in text_of(alert)
    assert "(erased subject)" in text_of(dsar) and "(erased subject)" in text_of(message)
    reloaded = await load_row(box, request_id_of(message))
    assert reloaded is not None and reloaded.result["contacts"] == 2 and "deleted" not in reloaded.result


async def test_rectification_applies_patch_and_shows_before_after(box: Sandbox) -> None:
    fake = box.mautic
    cid = fake.add_contact(email="jane@example.com", firstname="Jnae", fields={"city": "Berln", "phone": "0301"})
    message = await file_request(box, ALICE, 'rectify jane@example.com firstname=Jane city="Berlin" phone= tkt 7')
    assert "`city`, `firstname`, `phone`" in text_of(message)
    await approve(box, message)
    await wait_state(box, message, "done")
    reply = await wait_thread(box, message, "applied and read back")
    assert "`firstname`: “Jnae” → “Jane” ✅" in reply and "`phone`: “0301” → _(empty)_ ✅" in reply
    (patch,) = [c for c in fake.calls if c.method == "PATCH"]
    assert patch.json == {"firstname": "Jane", "city": "Berlin", "phone": "", "overwriteWithBlank": True}
    after = fake.contact(cid)
    assert after is not None and after["fields"]["all"]["city"] == "Berlin" and after["fields"]["all"]["phone"] is None
    row = await load_row(box, request_id_of(message))
    assert row is not None and row.changes == {} and row.subject_email is None and len(row.pii_messages) == 1


async def test_rectifying_email_refuses_the_merge_trap(box: Sandbox) -> None:
    fake = box.mautic
    jane = fake.add_contact(email="jane@example.com", firstname="Jane")
    holder = fake.add_contact(email="jane.doe@example.com", firstname="J")
    message = await file_request(box, ALICE, "rectify jane@example.com email=jane.doe@example.com")
    await approve(box, message)
    row = await wait_state(box, message, "failed")
    assert "would merge" in (row.failure or "") and f"#{holder}" in (row.failure or "")
    assert "Retry" in text_of(message)
    assert not [c for c in fake.calls if c.method == "PATCH"]  # nothing was sent that could merge
    assert fake.contact(jane) is not None and fake.contact(holder) is not None
    await wait_thread(box, message, "failed after 1 attempt(s)")


async def test_slack_delivery_uploads_the_package_into_the_thread(tmp_path: Path, sqlite_url: str) -> None:
    from sandbox.harness import sandbox
    from tests.helpers import test_tuning

    async with sandbox(sqlite_url, tuning=test_tuning(), export_dir=tmp_path / "exports",
                       export_delivery="slack") as box:
        box.mautic.add_contact(email="jane@example.com", firstname="Jane")
        message = await file_request(box, ALICE, "dsar jane@example.com")
        await approve(box, message)
        await wait_state(box, message, "done")
        assert not box.slack.uploads  # prepared, not sent: the upload waits for the release
        await release(box, message, CAROL)
        await wait_thread(box, message, "attached to this thread")
        (complete,) = await box.slack.wait_for("files.completeUploadExternal")
        assert complete.params["thread_ts"] == message.ts
        (content,) = box.slack.uploads.values()
        from tests.requests.helpers import unzip

        assert json.loads(unzip(content).read("data.json"))["subject"]["email"] == "jane@example.com"
        assert not list((tmp_path / "exports").iterdir())  # neither the sealed nor the plain copy is kept
        async with unit_of_work(box.services.sessions) as session:
            assert (await session.exec(select(store.ExportLink))).all() == []


async def test_erasure_of_an_address_with_an_apostrophe_finds_it_on_mautic_5(box: Sandbox) -> None:
    # Issue 12: filing split the command like a shell line ("a quote is not closed"), and Mautic 5.x
    # HTML-escapes `where` values (CoreBundle/Helper/InputHelper.php clean(), FILTER_SANITIZE_SPECIAL_CHARS),
    # so an `eq` look-up found nobody. The stand-in plays 5.1.0, escaping included.
    assert box.mautic.version.startswith("5.")
    cid = box.mautic.add_contact(email="o'brien@example.com", firstname="Aoife")
    other = box.mautic.add_contact(email="obrien@example.com")
    message = await file_request(box, ALICE, "erase O'Brien@example.com per letter")
    assert f"(#{cid})" in text_of(message) or f"#{cid}" in text_of(message)
    await approve(box, message, approver=CAROL, verifier=BOB)
    await wait_state(box, message, "cleanup")
    assert box.mautic.contact(cid) is None and box.mautic.contact(other) is not None


async def test_erasure_stops_on_an_id_merged_away_since_the_lookup(box: Sandbox) -> None:
    # Issue 12: Mautic's DELETE loads the contact with LeadModel::getEntity (LeadBundle/Model/LeadModel.php),
    # which follows a merged-away id to the contact it was merged into. The erasure must not delete that one.
    fake = box.mautic
    jane = fake.add_contact(email="jane@example.com")
    other = fake.add_contact(email="someone.else@example.com", firstname="Sam")
    gate = asyncio.Event()

    async def held(_seconds: float) -> None:
        await gate.wait()  # the client's retry wait, released by the test

    box.services.mautic._sleep = held  # type: ignore[method-assign]
    message = await file_request(box, ALICE, "erase jane@example.com")
    fake.fail("/api/stats", status=503, times=1)  # the erasure pauses after its lookup, before the delete
    await approve(box, message, approver=CAROL, verifier=BOB)
    await fake.wait_for("GET", "/api/stats")
    # Meanwhile someone gives Sam's record Jane's address: Mautic merges Jane's record into Sam's.
    await box.services.mautic.patch_contact(other, {"email": "jane@example.com"}, overwrite_with_blank=False)
    assert fake.merged_into(jane) == other
    gate.set()
    row = await wait_state(box, message, "failed")
    assert f"contact #{jane} was merged into #{other}" in (row.failure or "")
    assert fake.contact(other) is not None  # the survivor was not deleted
    assert not [c for c in fake.calls if c.method == "DELETE"]
