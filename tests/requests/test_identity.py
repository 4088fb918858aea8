"""Identity verification: the verifier is an approver who did not file the request, and the method used is
recorded (on the request, in its message and thread, in the ledger)."""

from __future__ import annotations

from bot.requests.ids import IdentityInput, RequestButton, RequestModal
from sandbox.harness import ALICE, BOB, CAROL, MALLORY, Sandbox
from tests.helpers import ledger, text_of
from tests.requests.helpers import (
    click,
    file_request,
    load_row,
    open_modal,
    request_id_of,
    submit_identity,
    verify_identity,
    wait_state,
    wait_thread,
)
from tests.requests.test_access import refusal


async def test_the_filer_clicking_identity_verified_changes_nothing_and_is_told_why(box: Sandbox) -> None:
    message = await file_request(box, BOB, "dsar jane@example.com")  # BOB is an approver, and the filer
    await click(box, BOB, message, RequestButton.VERIFY)
    told = await refusal(box, "You filed request #1")
    assert "someone else must verify the requester's identity" in told
    await click(box, MALLORY, message, RequestButton.VERIFY)  # may file (PRIVACY_REQUESTERS is empty), not verify
    await refusal(box, "Only privacy approvers may verify the requester's identity for request #1")
    assert not box.slack.views  # no modal opened for either
    row = await load_row(box, request_id_of(message))
    assert row is not None and row.state == "filed" and row.verified_by is None and row.verification_method is None
    refused = await ledger(box, "request.refused")
    assert [(e.actor, e.details["attempted"]) for e in refused] == [(BOB.id, "verify"), (MALLORY.id, "verify")]
    assert not await ledger(box, "request.verify")


async def test_the_identity_modal_records_the_method(box: Sandbox) -> None:
    message = await file_request(box, ALICE, "erase jane@example.com")
    view = await open_modal(box, CAROL, message, RequestButton.VERIFY)
    assert view.callback_id == RequestModal.VERIFY and view.private_metadata == str(request_id_of(message))
    options = next(b for b in view.view["blocks"] if b.get("block_id") == IdentityInput.METHOD_BLOCK)
    assert [o["value"] for o in options["element"]["options"]] == ["address_reply", "account", "document", "other"]

    # "Other" needs a few words; no choice at all is refused too. Nothing is recorded meanwhile.
    result = await submit_identity(box, CAROL, view, "other")
    assert result.json["response_action"] == "errors"
    assert "Say how you verified" in result.json["errors"][IdentityInput.NOTE_BLOCK]
    result = await submit_identity(box, CAROL, view, "")
    assert "Choose how you verified" in result.json["errors"][IdentityInput.NOTE_BLOCK]
    assert (await load_row(box, request_id_of(message))).state == "filed"  # type: ignore[union-attr]

    result = await submit_identity(box, CAROL, view, "other", "Called back on the number in our CRM")
    assert result.status == 200
    row = await wait_state(box, message, "verified")
    assert (row.verified_by, row.verification_method, row.verification_note) == (
        CAROL.id, "other", "Called back on the number in our CRM")
    assert "Identity verified by <@U0CAROL>" in text_of(message)
    assert "(Other: Called back on the number in our CRM)" in text_of(message)
    await wait_thread(box, message, "verified the requester's identity (Other: Called back")
    (entry,) = await ledger(box, "request.verify")
    assert entry.actor == CAROL.id
    # The typed note stays on the request (until an erasure) but never enters the ledger: given, and its hash.
    assert entry.details["method"] == "other" and entry.details["method_note_given"] is True
    assert "Called back" not in str(entry.details)

    # A second submission of the same (stale) modal is refused: identity was already verified.
    again = await submit_identity(box, BOB, view, "document")
    assert "already verified" in again.json["errors"][IdentityInput.METHOD_BLOCK]
    assert (await load_row(box, request_id_of(message))).verification_method == "other"  # type: ignore[union-attr]


async def test_a_modal_submitted_by_the_filer_is_refused(box: Sandbox) -> None:
    # The filer cannot open the modal; a forged submission of someone else's modal is checked again.
    message = await file_request(box, ALICE, "dsar jane@example.com")
    view = await open_modal(box, CAROL, message, RequestButton.VERIFY)
    result = await submit_identity(box, ALICE, view, "document")
    assert "You filed request #1" in result.json["errors"][IdentityInput.METHOD_BLOCK]
    await verify_identity(box, BOB, message, "account")
    assert (await load_row(box, request_id_of(message))).verified_by == BOB.id  # type: ignore[union-attr]
