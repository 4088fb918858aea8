"""Demo scenes of the requests feature: a DSAR and an erasure, each from filing to completion."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.privacy import subject_hash
from bot.requests.deadlines import received_on
from bot.requests.ids import IdentityInput, NoticeInput, ReasonInput, RequestButton
from sandbox.harness import ALICE, BOB, CAROL
from sandbox.scenes.base import Narrator, Scene
from storage.db import unit_of_work
from storage.erasures import is_erased

if TYPE_CHECKING:
    from sandbox.harness import Sandbox
    from sandbox.slack import Message

TIMEOUT = 20.0


def _state_is(message: Message, label: str) -> bool:
    return any(label in item["text"] for block in message.blocks for item in block.get("fields") or []
               if item["text"].startswith("*State*"))


async def _file(box: Sandbox, say: Narrator, text: str) -> Message:
    before = len(box.slack.messages(box.channel))
    say.say(f"Alice types `/privacy {text}` in #privacy-ops")
    say.show_answer("Alice", await box.command(ALICE, text))
    await box.slack.wait_until(lambda: len(box.slack.messages(box.channel)) > before, timeout=TIMEOUT,
                               describe="the request message")
    message = box.slack.messages(box.channel)[-1]
    await box.slack.wait_until(lambda: len(box.slack.thread(box.channel, message.ts)) >= 1, timeout=TIMEOUT,
                               describe="the contact lookup")
    say.say("The bot acknowledged at once (the request was already stored), then posted it with the legal due "
            "date and the Mautic contacts that match the address exactly")
    say.show_channel()
    return message


async def _click(box: Sandbox, say: Narrator, who: str, person_id: str, message: Message, action: str) -> None:
    before = len(box.slack.responses)
    await box.user.click(person_id, message, action)
    if action in (RequestButton.APPROVE, RequestButton.VERIFY):
        await box.slack.wait_until(
            lambda: len(box.slack.responses) > before or bool(message.history), timeout=TIMEOUT, describe="an answer")
    say.show_responses(who)


async def _verify(box: Sandbox, say: Narrator, who: str, person_id: str, message: Message, method: str,
                  note: str = "") -> None:
    """Click "Identity verified" and answer the modal with the method used."""
    views, edits = len(box.slack.views), len(message.history)
    await box.user.click(person_id, message, RequestButton.VERIFY)
    await box.slack.wait_until(lambda: len(box.slack.views) > views, timeout=TIMEOUT, describe="the identity modal")
    say.say(f"{who} answers the modal: how was the identity checked?")
    values: dict[str, dict[str, dict[str, Any]]] = {IdentityInput.METHOD_BLOCK: {IdentityInput.METHOD_ACTION: {
                  "type": "radio_buttons", "selected_option": {"value": method}}},
              IdentityInput.NOTE_BLOCK: {IdentityInput.NOTE_ACTION: {"type": "plain_text_input", "value": note}}}
    await box.user.submit_view(person_id, box.slack.views[-1], values)
    await box.slack.wait_until(lambda: len(message.history) > edits, timeout=TIMEOUT, describe="verified")


async def _extend(box: Sandbox, say: Narrator, person_id: str, message: Message, reason: str) -> None:
    """Click Extend and answer its modal: the reason, and that (and when) the requester was told."""
    views, edits = len(box.slack.views), len(message.history)
    await box.user.click(person_id, message, RequestButton.EXTEND)
    await box.slack.wait_until(lambda: len(box.slack.views) > views, timeout=TIMEOUT, describe="the Extend modal")
    told_on = received_on(box.services.clock(), box.settings.deadline_timezone).isoformat()
    say.say(f"The modal shows the new due date and asks for the reason and the day Lena was told ({told_on})")
    values: dict[str, dict[str, dict[str, Any]]] = {
        ReasonInput.BLOCK: {ReasonInput.ACTION: {"type": "plain_text_input", "value": reason}},
        NoticeInput.CONFIRM_BLOCK: {NoticeInput.CONFIRM_ACTION: {
            "type": "checkboxes", "selected_options": [{"value": NoticeInput.TOLD}]}},
        NoticeInput.DATE_BLOCK: {NoticeInput.DATE_ACTION: {"type": "datepicker", "selected_date": told_on}},
    }
    await box.user.submit_view(person_id, box.slack.views[-1], values)
    await box.slack.wait_until(lambda: len(message.history) > edits, timeout=TIMEOUT, describe="extended")
    say.show_channel()


async def access_request(box: Sandbox, say: Narrator) -> None:
    fake = box.mautic
    fake.add_segment(31, "Product news")
    lena = fake.add_contact(email="lena@example.org", firstname="Lena", lastname="Berg", segments=[31])
    fake.add_note(lena, "Asked for a copy of her data by email")
    fake.add_campaign(lena, 7, "Welcome series")
    fake.set_activity_generator(lena, 1200)
    received = received_on(box.services.clock(), box.settings.deadline_timezone) - timedelta(days=3)
    say.say("Lena asked for her data by email three days ago; Alice files it with the day it was received, "
            "so the legal clock runs from then")
    message = await _file(box, say, f"dsar lena@example.org received={received.isoformat()} ticket 4411")

    say.say("Bob (an approver) clicks Approve before anyone verified the requester's identity")
    await _click(box, say, "Bob", BOB.id, message, RequestButton.APPROVE)
    await box.slack.wait_for_response(where=lambda r: "Identity has not been verified" in r.text)
    say.say("Alice, who filed it, clicks “Identity verified”: the one who files cannot also attest it")
    await _click(box, say, "Alice", ALICE.id, message, RequestButton.VERIFY)
    await box.slack.wait_for_response(where=lambda r: "someone else must verify" in r.text)
    say.show_responses("Alice")
    say.say("Carol (in the DPO user group) checked that the email came from the address on record")
    await _verify(box, say, "Carol", CAROL.id, message, "address_reply")
    say.say("Lena's records span two brands; Bob extends the request, after emailing her the reasons")
    await _extend(box, say, BOB.id, message, "Records across two brands need to be collected and checked")
    say.say("Alice, who filed it, tries to approve her own request")
    await box.user.click(ALICE.id, message, RequestButton.APPROVE)
    await box.slack.wait_for_response(where=lambda r: "Only privacy approvers" in r.text)
    say.show_responses("Alice")
    say.say("Carol (in the DPO user group) approves; a durable job gathers everything and seals the package")
    await box.user.click(CAROL.id, message, RequestButton.APPROVE)
    await box.slack.wait_until(lambda: _state_is(message, "Done"), timeout=TIMEOUT, describe="done")
    await box.slack.wait_until(
        lambda: any("is prepared" in r.text for r in box.slack.thread(box.channel, message.ts)),
        timeout=TIMEOUT, describe="the prepared package")
    say.show_channel()
    say.say("Nothing has gone out yet: Bob reviews the package's notes list and clicks “Release to requester”")
    await box.user.click(BOB.id, message, RequestButton.RELEASE)
    await box.slack.wait_until(
        lambda: any("released by" in r.text for r in box.slack.thread(box.channel, message.ts)),
        timeout=TIMEOUT, describe="the released package")
    say.show_channel()

    reply = next(r.text for r in box.slack.thread(box.channel, message.ts) if "released by" in r.text)
    match = re.search(r"/exports/[A-Za-z0-9_-]+", reply)
    assert match is not None
    say.say("The requester opens the link (here on the demo's own port) and presses Download")
    async with box.http.get(box.url + match.group(0)) as page:
        form = re.search(r"name=token value='([^']+)'", await page.text())
        assert form is not None
        say.private("the requester", f"HTTP {page.status}: a page with a Download button (link previews stop here)")
    async with box.http.post(box.url + "/exports/download", data={"token": form.group(1)}) as response:
        body = await response.read()
        say.private("the requester", f"HTTP {response.status} {response.headers['Content-Type']}, {len(body):,} bytes")
    archive = zipfile.ZipFile(io.BytesIO(body))
    data = json.loads(archive.read("data.json"))
    contact = data["mautic"]["contacts"][0]
    segments = [s["name"] for s in contact["segments"]]
    say.private("the requester", f"zip: {', '.join(archive.namelist())}; data.json has contact #{contact['id']} "
                f"with {len(contact['timeline']):,} timeline events, segments {segments}, "
                f"{len(contact['notes_for_review'])} note(s) listed for review; summary.html shows the data itself, "
                "purposes, recipients, retention, what it cannot contain and rights")
    say.say("Alice sends Lena the link and clicks “Answer sent to requester”: only now is the request closed")
    edits = len(message.history)
    await box.user.click(ALICE.id, message, RequestButton.RESPOND)
    await box.slack.wait_until(lambda: len(message.history) > edits, timeout=TIMEOUT, describe="answered")
    say.show_channel()
    say.say("Alice lists the open requests")
    say.show_answer("Alice", await box.command(ALICE, "requests"))


async def erasure_request(box: Sandbox, say: Narrator) -> None:
    fake = box.mautic
    first = fake.add_contact(email="omar@example.org", firstname="Omar")
    fake.add_contact(email="Omar@Example.org", firstname="O.")  # a duplicate record of the same person
    fake.add_email_stat(first, read=True)
    message = await _file(box, say, "erase omar@example.org asked by phone, ticket 4412")
    say.say("Bob verifies the identity (he called the requester back on the number on record); Carol "
            "approves (Slack shows a red confirm dialog first)")
    await _verify(box, say, "Bob", BOB.id, message, "other", "called back on the number on record")
    await box.user.click(CAROL.id, message, RequestButton.APPROVE)
    await box.slack.wait_until(lambda: _state_is(message, "awaiting clean-up"), timeout=TIMEOUT,
                               describe="awaiting clean-up")

    def checklist() -> Message | None:
        return next((r for r in box.slack.thread(box.channel, message.ts) if "clean-up checklist" in r.text), None)

    await box.slack.wait_until(lambda: checklist() is not None, timeout=TIMEOUT, describe="the clean-up checklist")
    say.say("Both contacts are deleted in Mautic; the bot purged its own store and redacted its earlier "
            "messages. The erasure is not done yet: a checklist names what Mautic still keeps, and each recipient")
    say.show_channel()
    say.say("Bob deals with each place in Mautic and tells each recipient, ticking every line as he goes")
    posted = checklist()
    assert posted is not None
    while lines := [(b["block_id"], e["value"]) for b in posted.blocks if b.get("type") == "actions"
                    for e in b["elements"] if e["action_id"] == RequestButton.CLEANUP_DONE]:
        await box.user.click(BOB.id, posted, RequestButton.CLEANUP_DONE, lines[0][1], block_id=lines[0][0])
        await box.slack.wait_until(lambda line=lines[0]: line not in [  # type: ignore[misc]
            (b["block_id"], e["value"]) for b in posted.blocks if b.get("type") == "actions" for e in b["elements"]],
            timeout=TIMEOUT, describe="the ticked line")
    await box.slack.wait_until(lambda: _state_is(message, "Done"), timeout=TIMEOUT, describe="done")
    say.show_channel()
    async with unit_of_work(box.services.sessions) as session:
        erased = await is_erased(session, subject_hash(box.services.hash_key, "omar@example.org"))
    say.private("the operator", f"Mautic contacts left with that address: "
                f"{len(await box.services.mautic.find_contacts_by_email('omar@example.org'))}; "
                f"keyed hash recorded as erased: {erased}")


SCENES: list[Scene] = [
    Scene("Access request (DSAR): received by email, filed, verified, extended, delivered, answered",
          access_request),
    Scene("Erasure request: filed, approved, deleted, purged, cleaned up line by line", erasure_request),
]
