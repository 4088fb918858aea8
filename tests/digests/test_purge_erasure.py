"""Issue 11: a bulk retention purge is a bulk erasure. Each deleted contact is forgotten in the bot's own store
(its keyed hash kept, flagged suppressed when it had Do-Not-Contact, so a re-entry says so); a contact with an
open data-subject request is skipped and reported."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from bot.privacy import subject_hash
from sandbox.harness import ALICE, BOB, PRIVACY_CHANNEL, sandbox
from sandbox.mautic import form_submission_event
from storage import digests as store
from storage.db import unit_of_work
from storage.erasures import ErasedSubject
from storage.ledger import verify
from tests.digests.helpers import RETENTION, Clock
from tests.digests.test_purge import _request_message
from tests.helpers import test_tuning, text_of
from tests.helpers.store_scan import find_in_store
from tests.requests.helpers import file_request

UNSUBSCRIBED = "ophelia.stale@example.com"
SUBMITTED = "quillon.stale@example.com"
BUSY = "busy.stale@example.com"
DISMISSED = "Quillon signed up at the Brigadoon fair"


async def test_a_bulk_purge_erases_in_the_bot_too_and_skips_open_requests(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        fake = box.mautic
        old = clock() - timedelta(days=RETENTION + 30)
        unsubscribed = fake.add_contact(email=UNSUBSCRIBED, firstname="Ophelia", last_active=old, date_added=old,
                                        dnc=[("email", 1)])
        submitted = fake.add_contact(email=SUBMITTED, firstname="Quillon", lastname="Marchbanks", last_active=old,
                                     date_added=old, fields={"city": "Brigadoon-on-Sea"})
        busy = fake.add_contact(email=BUSY, last_active=old, date_added=old)
        active = fake.add_contact(email="active@example.com", last_active=clock() - timedelta(days=3))
        # The bot holds a consent record (and an alert) of one of them, and an open request about another.
        results = {"email": SUBMITTED, "firstname": "Quillon", "city": "Brigadoon-on-Sea"}
        submission = form_submission_event(contact_id=submitted, email=SUBMITTED, results=results)
        assert (await box.webhook(submission))[0] == 200
        await box.slack.wait_for("chat.postMessage")
        alert = box.slack.messages(PRIVACY_CHANNEL)[-1]  # dismissed with a typed reason naming the person
        await box.user.click(BOB.id, alert, "consent_dismiss")
        await box.slack.wait_for("views.open")
        await box.user.submit_view(BOB.id, box.slack.views[-1], {"reason": {"reason_input": {
            "type": "plain_text_input", "value": DISMISSED}}})
        await box.slack.wait_until(lambda: "Dismiss* by" in text_of(alert), describe="the alert dismissed")
        assert await find_in_store(box.services.sessions, [DISMISSED])  # held until the purge
        await file_request(box, ALICE, f"dsar {BUSY}")

        await box.command(BOB, "digest retention")
        await box.slack.wait_until(lambda: any("Retention digest" in str(m.blocks)
                                               for m in box.slack.messages(PRIVACY_CHANNEL)),
                                   timeout=10, describe="the retention digest")
        digest = next(m for m in box.slack.messages(PRIVACY_CHANNEL) if "Retention digest" in str(m.blocks))
        await box.user.click(ALICE.id, digest, "digest_purge_file")
        request = await _request_message(box, digest)
        await box.user.click(BOB.id, request, "digest_purge_approve")
        await box.slack.wait_until(
            lambda: any("Purge #1 finished" in m.text for m in box.slack.thread(box.channel, digest.ts)),
            timeout=20, describe="purge finished")

        assert fake.contact(unsubscribed) is None and fake.contact(submitted) is None
        assert fake.contact(busy) is not None and fake.contact(active) is not None  # left to its open request
        finished = next(m for m in box.slack.thread(box.channel, digest.ts) if "Purge #1 finished" in m.text)
        assert "skipped 1 (open request)" in finished.text
        key = box.services.hash_key
        async with unit_of_work(box.services.sessions) as session:
            purge = await store.get_purge(session, 1)
            erased = {e.subject_hash: e for e in (await session.exec(select(ErasedSubject))).all()}
            chunks = await store.chunks(session, 1)
            assert (await verify(session)).ok
        assert purge is not None and (purge.deleted, purge.skipped) == (2, 1)
        assert set(erased) == {subject_hash(key, UNSUBSCRIBED), subject_hash(key, SUBMITTED)}
        assert erased[subject_hash(key, UNSUBSCRIBED)].suppressed is True
        assert erased[subject_hash(key, SUBMITTED)].suppressed is False
        assert {(e.kind, e.request_id, e.decided_by) for e in erased.values()} == {("purge", 1, BOB.id)}
        assert all(c.ids == [] and c.subjects is None for c in chunks)  # ids were needed only until done

        needles = [UNSUBSCRIBED, SUBMITTED, "Ophelia", "Quillon", "Marchbanks", "Brigadoon-on-Sea", DISMISSED]
        assert await find_in_store(box.services.sessions, needles) == []
        assert await find_in_store(box.services.sessions, [BUSY])  # the skipped one's request is untouched

        # The purged person who had Do-Not-Contact comes back through a form: flagged, with the suppression.
        again = fake.add_contact(email=UNSUBSCRIBED)
        before = len(box.slack.messages(PRIVACY_CHANNEL))
        assert (await box.webhook(form_submission_event(contact_id=again, email=UNSUBSCRIBED, results={
            "email": UNSUBSCRIBED, "consent": "1"})))[0] == 200
        await box.slack.wait_until(lambda: any("erased earlier is back" in text_of(m)
                                               for m in box.slack.messages(PRIVACY_CHANNEL)[before:]),
                                   timeout=10, describe="the re-entry alert")
        alert = next(m for m in box.slack.messages(PRIVACY_CHANNEL)[before:] if "erased earlier is back" in text_of(m))
        assert "had Do-Not-Contact" in text_of(alert)
