"""Issue 11 item 2 against Art. 21(3): forgetting a subject (an erasure, or a bulk purge's contact) blanks what
their requests said but keeps what an objection needs to go on counting: the keyed hash, the kind, the state
and when it was carried out. Without them a person who objected, was erased and came back through a form
would no longer be flagged as submitting after their objection."""

from __future__ import annotations

from datetime import timedelta

from sandbox.harness import ALICE, BOB, PRIVACY_CHANNEL, Sandbox
from storage import requests as store
from storage.db import unit_of_work
from storage.forget import forget_subjects


async def test_forgetting_a_subject_keeps_their_objection_counting(box: Sandbox) -> None:
    now = box.services.clock()
    subject = "0b" * 32
    async with unit_of_work(box.services.sessions) as session:
        row = await store.add_request(session, store.PrivacyRequest(
            kind=store.OBJECTION_KIND, state="done", regime="gdpr", subject_hash=subject,
            subject_email="orla.objects@example.com", subject_masked="o***@example.com",
            note="Orla phoned twice", filed_by=ALICE.id, approved_by=BOB.id, channel=PRIVACY_CHANNEL,
            received_at=now - timedelta(days=3), due_date=now.date(), original_due_date=now.date(),
            updated_at=now, completed_at=now - timedelta(days=1), contacts_found=[41], result={"marked": [41]}))
        assert row.id is not None
    async with unit_of_work(box.services.sessions) as session:
        forgotten = await forget_subjects(session, [subject], now=now)
    assert forgotten.request_ids == [row.id]
    async with unit_of_work(box.services.sessions) as session:
        kept = await store.get_request(session, row.id)
        objected = await store.objections_among(session, {subject})
    assert kept is not None and (kept.subject_email, kept.note, kept.contacts_found, kept.result) == (
        None, None, None, {})
    assert (kept.kind, kept.state, kept.approved_by) == (store.OBJECTION_KIND, "done", BOB.id)
    assert objected == {subject: now - timedelta(days=1)}
