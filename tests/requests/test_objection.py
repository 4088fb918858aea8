"""`/privacy object`: an objection to direct marketing (GDPR Art. 21(2)-(3)), end to end against the Mautic
stand-in. No identity step, but an approver who did not file it; on approval Do-Not-Contact for email (reason
3, comment "Art. 21 objection") on every exact match and removal from the policy file's marketing segments;
afterwards a form submission from the subject without new consent is flagged, one with consent is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.intake.rules import ConsentVerdict, breaches_objection
from bot.policy import MarketingSegments, PolicyError, parse_marketing_segments
from bot.requests.ids import RequestButton
from bot.requests.model import RequestKind
from sandbox.harness import ALICE, BOB, CAROL, sandbox
from sandbox.mautic import form_submission_event
from storage import requests as request_store
from storage.intake import AlertKind
from tests.helpers import ledger, test_tuning, text_of
from tests.intake.helpers import alerts, processed
from tests.requests.helpers import click, file_request, load_row, request_id_of, wait_state, wait_thread
from tests.requests.test_access import refusal

POLICY = "marketing_segments: [3, Newsletter]\n"


async def test_an_objection_sets_dnc_leaves_marketing_segments_and_flags_a_later_submission(
        db_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "exports",
                       privacy_policy_file=policy) as box:
        fake = box.mautic
        fake.add_segment(3, "Promotions")
        fake.add_segment(5, "Weekly newsletter", alias="newsletter")
        fake.add_segment(7, "Customers")  # not a marketing segment: kept
        first = fake.add_contact(email="jane@example.com", segments=[3, 7])
        second = fake.add_contact(email="JANE@example.com")
        fake.join_by_filter(second, 5)  # made by the segment's filters: marked manually removed, not deleted
        bystander = fake.add_contact(email="jane@example.com.au", segments=[3])

        message = await file_request(box, BOB, "object jane@example.com replied STOP to the newsletter")
        row = await load_row(box, request_id_of(message))
        assert row is not None and row.kind == "objection" and row.regime == "gdpr"
        shown = text_of(message)
        assert "Objection to direct marketing" in shown and "GDPR Art. 21(3)" in shown
        assert RequestButton.VERIFY not in str(message.blocks)

        await click(box, BOB, message, RequestButton.APPROVE)  # the filer: four eyes hold without an identity step
        await refusal(box, "someone else must approve it (four eyes)")
        await click(box, CAROL, message, RequestButton.APPROVE)
        row = await wait_state(box, message, "done")
        assert row.verified_by is None and row.approved_by == CAROL.id and row.subject_email is None
        await wait_thread(box, message, "removed from 2 marketing segment membership(s)")

        dnc_calls = [c for c in fake.calls if c.method == "POST" and "/dnc/" in c.path]
        assert sorted(c.path for c in dnc_calls) == sorted(f"/api/contacts/{c}/dnc/email/add" for c in (first, second))
        assert all(c.json == {"reason": 3, "comments": "Art. 21 objection"} for c in dnc_calls)
        removals = [c.path for c in fake.calls if c.method == "POST" and c.path.endswith("/remove")]
        assert sorted(removals) == sorted([f"/api/segments/3/contact/{first}/remove",
                                           f"/api/segments/5/contact/{second}/remove"])
        assert fake.segment_ids(first) == [7] and fake.segment_ids(second) == []
        assert fake.segment_ids(bystander) == [3] and fake.contact(bystander)["doNotContact"] == []  # type: ignore[index]
        for cid in (first, second):
            dnc = fake.contact(cid)["doNotContact"]  # type: ignore[index]
            assert [(d["channel"], d["reason"], d["comments"]) for d in dnc] == [("email", 3, "Art. 21 objection")]
        assert len(await ledger(box, "mautic.contact_objection")) == 2
        assert len(await ledger(box, "mautic.segment_removed")) == 2
        assert len(await ledger(box, "request.objection_recorded")) == 1

        # Later submissions from the subject: without consent flagged (one alert, not also a consent gap) ...
        later = datetime.now(UTC) + timedelta(seconds=1)
        without = form_submission_event(contact_id=first, email="jane@example.com", submission_id=20,
                                        results={"email": "jane@example.com"}, date_submitted=later)
        assert (await box.webhook(without))[0] == 200
        await processed(box)
        (flagged,) = await alerts(box)
        assert flagged.kind == AlertKind.SUBMITTED_AFTER_OBJECTION and flagged.contact_id == first
        assert len(await ledger(box, "consent.submitted_after_objection")) == 1
        await box.jobs_idle()
        posted = box.slack.messages(box.channel)[-1]
        assert "Form submitted after an objection to direct marketing" in text_of(posted)
        assert "Add to re-consent segment" not in str(posted.blocks)
        # ... with a fresh valid consent not, and after that consent nothing is flagged any more.
        with_consent = form_submission_event(contact_id=first, email="jane@example.com", submission_id=21,
                                             results={"email": "jane@example.com", "consent": "1"},
                                             date_submitted=later + timedelta(seconds=1))
        again = form_submission_event(contact_id=first, email="jane@example.com", submission_id=22,
                                      results={"email": "jane@example.com"}, form_id=9, form_alias="support",
                                      form_name="Support", date_submitted=later + timedelta(seconds=2))
        assert (await box.webhook(with_consent))[0] == 200
        await processed(box)
        assert (await box.webhook(again))[0] == 200
        await processed(box)
        assert [a.kind for a in await alerts(box)] == [AlertKind.SUBMITTED_AFTER_OBJECTION, AlertKind.CONSENT_GAP]
        # Someone else's submission without consent is an ordinary consent gap.
        other = form_submission_event(contact_id=bystander, email="jane@example.com.au", submission_id=23,
                                      results={"email": "jane@example.com.au"}, date_submitted=later)
        assert (await box.webhook(other))[0] == 200
        await processed(box)
        assert [a.kind for a in await alerts(box)][-1] == AlertKind.CONSENT_GAP


async def test_an_objection_resumed_after_a_mautic_outage_repeats_no_call(db_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "exports",
                       privacy_policy_file=policy) as box:
        fake = box.mautic
        fake.add_segment(3, "Promotions")
        cid = fake.add_contact(email="jane@example.com", segments=[3])
        message = await file_request(box, ALICE, "object jane@example.com")
        # The removal is applied but every answer of the client's five attempts is lost: the job's next attempt
        # resumes after the DNC it checkpointed and removes the contact from the segment it planned again.
        fake.fail("/api/segments/3/contact", status=503, retry_after=0, times=5, applied=True)
        await click(box, CAROL, message, RequestButton.APPROVE)
        await wait_state(box, message, "done")
        assert [c.path for c in fake.calls if "/dnc/" in c.path] == [f"/api/contacts/{cid}/dnc/email/add"]
        removals = [c.path for c in fake.calls if c.path.endswith("/remove")]
        assert removals == [f"/api/segments/3/contact/{cid}/remove"] * 6  # repeats are harmless in Mautic
        assert fake.segment_ids(cid) == []
        assert len(await ledger(box, "mautic.contact_objection")) == 1
        assert len(await ledger(box, "mautic.segment_removed")) == 1


def test_the_marketing_segments_key_takes_ids_and_aliases() -> None:
    parsed = parse_marketing_segments({"marketing_segments": [3, "7", "Newsletter"]})
    assert parsed == MarketingSegments(ids=frozenset({3, 7}), aliases=frozenset({"newsletter"}))
    assert parsed.covers(3, None) and parsed.covers(99, "NEWSLETTER") and not parsed.covers(4, "promo")
    assert parse_marketing_segments({"marketing_segments": 5}).ids == {5}
    assert not parse_marketing_segments({}) and not MarketingSegments().covers(None, "")
    for bad in ({"a": 1}, [True], [0], [""], [1.5]):
        with pytest.raises(PolicyError, match="marketing_segments"):
            parse_marketing_segments({"marketing_segments": bad})


T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GIVEN = ConsentVerdict(False, True, ("consent",), {"consent": "1"}, (), "any of consent")
MISSING = ConsentVerdict(False, False, ("consent",), {}, ("consent",), "any of consent")
EXEMPT = ConsentVerdict(True, False, (), {}, (), "exempt")


@pytest.mark.parametrize(("verdict", "objected_at", "submitted_at", "consented_since", "flagged"), [
    (MISSING, T0, T0 + timedelta(seconds=1), False, True),
    (EXEMPT, T0, T0 + timedelta(days=1), False, True),  # a support form can still re-enter marketing
    (GIVEN, T0, T0 + timedelta(days=1), False, False),  # fresh valid consent in the submission itself
    (MISSING, T0, T0 + timedelta(days=1), True, False),  # consent given since the objection
    (MISSING, T0, T0, False, False),  # not after the objection
    (MISSING, T0, T0 - timedelta(days=1), False, False),  # a late delivery of an earlier submission
    (MISSING, None, T0, False, False),  # nobody objected
])
def test_which_submissions_breach_an_objection(verdict: ConsentVerdict, objected_at: datetime | None,
                                               submitted_at: datetime, consented_since: bool, flagged: bool) -> None:
    assert breaches_objection(verdict, objected_at=objected_at, submitted_at=submitted_at,
                              consented_since=consented_since) is flagged


def test_storage_names_the_objection_kind_as_the_feature_does() -> None:
    assert request_store.OBJECTION_KIND == RequestKind.OBJECTION.value
    assert not RequestKind.OBJECTION.needs_identity and RequestKind.OBJECTION.extendable
