"""`/privacy optout`: the CPRA opt-out of sale/sharing, end to end against the Mautic stand-in. Due in 15
business days (Cal. Code Regs. tit. 11 §7026(f)), no identity step (§7026(d)) but still an approver, no
extension; on approval Do-Not-Contact for email and the tag `do-not-sell-share` on every exact match."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.requests.deadlines import legal_deadline
from bot.requests.ids import RequestButton
from bot.requests.model import RequestKind, RequestState, TransitionError, transition
from sandbox.harness import ALICE, BOB, CAROL, Sandbox, sandbox
from tests.helpers import ledger, test_tuning, text_of
from tests.requests.helpers import (
    click,
    file_request,
    load_row,
    request_id_of,
    verify_identity,
    wait_state,
    wait_thread,
)
from tests.requests.test_access import refusal
from tests.requests.test_lifecycle import with_button


async def test_an_opt_out_needs_no_identity_step_and_sets_dnc_and_the_tag(box: Sandbox) -> None:
    fake = box.mautic
    first = fake.add_contact(email="jane@example.com", tags=["vip"])
    second = fake.add_contact(email="JANE@example.com")
    bystander = fake.add_contact(email="jane@example.com.au")
    message = await file_request(box, BOB, "optout jane@example.com web form")
    request_id = request_id_of(message)
    row = await load_row(box, request_id)
    assert row is not None and row.kind == "optout" and row.regime == "ccpa"
    assert row.due_date == legal_deadline(row.received_on or date.today(), "ccpa", opt_out=True).due
    assert row.acknowledgement_due is None
    shown = text_of(message)
    assert "Opt-out of sale/sharing" in shown and "no identity verification" in shown
    assert RequestButton.VERIFY not in str(message.blocks) and RequestButton.EXTEND not in str(message.blocks)

    await click(box, BOB, message, RequestButton.APPROVE)  # the filer: four eyes still hold
    await refusal(box, "someone else must approve it (four eyes)")
    await click(box, ALICE, message, RequestButton.APPROVE)  # a requester: approvers only
    await refusal(box, "Only privacy approvers may approve")
    await click(box, CAROL, message, RequestButton.APPROVE)
    row = await wait_state(box, message, "done")
    assert row.verified_by is None and row.approved_by == CAROL.id
    await wait_thread(box, message, "Do-Not-Contact for email and the tag `do-not-sell-share`")

    dnc_calls = [c for c in fake.calls if c.method == "POST" and "/dnc/" in c.path]
    assert sorted(c.path for c in dnc_calls) == sorted(f"/api/contacts/{cid}/dnc/email/add" for cid in (first, second))
    assert all(c.json == {"reason": 3, "comments": "CCPA opt-out of sale/sharing"} for c in dnc_calls)
    tag_calls = [c for c in fake.calls if c.method == "PATCH"]
    assert sorted(c.path for c in tag_calls) == sorted(f"/api/contacts/{cid}/edit" for cid in (first, second))
    assert all(c.json["tags"] == ["do-not-sell-share"] for c in tag_calls)
    for cid in (first, second):
        contact = fake.contact(cid)
        assert contact is not None and contact["doNotContact"][0]["reason"] == 3
        assert "do-not-sell-share" in [t["tag"] for t in contact["tags"]]
    assert [t["tag"] for t in fake.contact(first)["tags"]] == ["vip", "do-not-sell-share"]  # type: ignore[index]
    untouched = fake.contact(bystander)
    assert untouched is not None and untouched["doNotContact"] == [] and untouched["tags"] == []
    assert len(await ledger(box, "mautic.contact_optout")) == 2

    # An opt-out cannot be extended, whatever a stale client shows.
    await click(box, CAROL, with_button(message, RequestButton.EXTEND), RequestButton.EXTEND)
    await refusal(box, "already done")


async def test_an_opt_out_is_a_ccpa_right_with_no_extension(db_url: str, tmp_path: Path) -> None:
    clock = lambda: datetime(2026, 5, 15, 12, 0, tzinfo=UTC)  # noqa: E731
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports",
                       deadline_holidays="US-CA") as box:
        refused = await box.command(ALICE, "optout jane@example.com regime=gdpr")
        assert "An opt-out of sale/sharing is a CCPA right" in refused.text
        message = await file_request(box, ALICE, "optout jane@example.com", expect_contacts=False)
        row = await load_row(box, request_id_of(message))
        # 15 business days from Fri 15 May 2026, skipping Memorial Day (Mon 25 May): Mon 8 Jun, not Fri 5 Jun.
        assert row is not None and row.due_date == date(2026, 6, 8) and row.regime == "ccpa"
        # No Extend button is shown; a forged click is refused.
        await click(box, BOB, with_button(message, RequestButton.EXTEND), RequestButton.EXTEND)
        await refusal(box, "cannot be extended")
        assert (await load_row(box, request_id_of(message))).extended_at is None  # type: ignore[union-attr]


def test_only_a_kind_without_identity_step_is_approved_straight_from_filed() -> None:
    assert transition("filed", "approve", identity_required=False) is RequestState.APPROVED
    with pytest.raises(TransitionError):
        transition("filed", "approve")
    assert transition("verified", "approve", identity_required=False) is RequestState.APPROVED
    assert [k for k in RequestKind if not k.needs_identity] == [RequestKind.OPT_OUT, RequestKind.OBJECTION]
    assert [k for k in RequestKind if not k.extendable] == [RequestKind.OPT_OUT]


async def test_a_restriction_marks_the_contacts_stays_listed_and_is_lifted(box: Sandbox) -> None:
    fake = box.mautic
    cid = fake.add_contact(email="jane@example.com", tags=["vip"])
    message = await file_request(box, ALICE, "restrict jane@example.com disputes accuracy")
    await verify_identity(box, CAROL, message)
    await click(box, BOB, message, RequestButton.APPROVE)
    await wait_state(box, message, "done")
    await wait_thread(box, message, "Do-Not-Contact for email and the tag `restricted`")
    contact = fake.contact(cid)
    assert contact is not None and contact["doNotContact"][0]["comments"] == "Art. 18 restriction"
    assert [t["tag"] for t in contact["tags"]] == ["vip", "restricted"]
    patch = next(c for c in fake.calls if c.method == "PATCH")
    assert patch.path == f"/api/contacts/{cid}/edit" and patch.json["tags"] == ["restricted"]
    (dnc,) = [c for c in fake.calls if c.method == "POST" and "/dnc/" in c.path]
    assert dnc.path == f"/api/contacts/{cid}/dnc/email/add"
    assert dnc.json == {"reason": 3, "comments": "Art. 18 restriction"}  # reason 3: manual
    # Answered, but still listed: the restriction is in force until lifted.
    await click(box, ALICE, message, RequestButton.RESPOND)
    await wait_thread(box, message, "went out to the requester")
    listed = (await box.command(BOB, "requests")).json["text"]
    assert "1 open request(s): 0 overdue" in listed and "restriction in force" in listed
    await box.slack.wait_until(lambda: RequestButton.LIFT in str(message.blocks), describe="the Lift button")

    await click(box, ALICE, message, RequestButton.LIFT)  # the filer, and not an approver
    await refusal(box, "Only privacy approvers may lift")
    await click(box, CAROL, message, RequestButton.LIFT)
    await wait_thread(box, message, "Do-Not-Contact and the tag `restricted` removed from 1 contact(s)")
    contact = fake.contact(cid)
    assert contact is not None and contact["doNotContact"] == [] and [t["tag"] for t in contact["tags"]] == ["vip"]
    assert [c.path for c in fake.calls if c.method == "POST" and c.path.endswith("/dnc/email/remove")] == [
        f"/api/contacts/{cid}/dnc/email/remove"]
    assert [c.json["tags"] for c in fake.calls if c.method == "PATCH"] == [["restricted"], ["-restricted"]]
    row = await load_row(box, request_id_of(message))
    assert row is not None and row.lifted_by == CAROL.id
    assert "No open data-subject requests" in (await box.command(BOB, "requests")).json["text"]
    assert [e.actor for e in await ledger(box, "request.lift")] == [CAROL.id]
    await click(box, BOB, with_button(message, RequestButton.LIFT), RequestButton.LIFT)
    await refusal(box, "Only a restriction in force can be lifted")
