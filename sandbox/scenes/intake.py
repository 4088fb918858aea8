"""Demo scenes of the intake feature: what `make demo` shows of it."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from bot.intake.ids import IntakeJob
from bot.privacy import subject_hash
from sandbox.harness import BOB, CAROL
from sandbox.mautic import form_submission_event, merge_payloads, unsubscribe_event
from sandbox.scenes.base import Narrator, Scene
from storage.db import unit_of_work
from storage.intake import consent_history

if TYPE_CHECKING:
    from sandbox.harness import Sandbox


async def gap_and_resolution(box: Sandbox, say: Narrator) -> None:
    jane = box.mautic.add_contact(email="jane@example.com", firstname="Jane")
    kim = box.mautic.add_contact(email="kim@example.com", firstname="Kim")
    say.say("Mautic delivers two Newsletter sign-ups in one signed POST: Kim ticked the consent box, Jane did not")
    batch = merge_payloads(
        form_submission_event(contact_id=kim, email="kim@example.com", submission_id=21,
                              results={"email": "kim@example.com", "consent": "Yes"}),
        form_submission_event(contact_id=jane, email="jane@example.com", submission_id=22,
                              results={"email": "jane@example.com"}),
    )
    status, answer = await box.webhook(batch)
    say.private("Mautic", f"HTTP {status} {answer}   (stored first, answered in milliseconds, no personal data)")
    await box.slack.wait_for("chat.postMessage")
    say.say("Both submissions are kept as consent evidence; only Jane's gap becomes an alert")
    say.show_channel()

    say.say("Mautic retries the same delivery (it is at-least-once): nothing new appears")
    status, answer = await box.webhook(batch)
    say.private("Mautic", f"HTTP {status} {answer}")

    message = box.slack.messages(box.channel)[-1]
    say.say("Bob (an approver) clicks “Mark Do-Not-Contact”")
    await box.user.click(BOB.id, message, "consent_dnc")
    await box.mautic.wait_for("POST", f"/api/contacts/{jane}/dnc/email/add")
    await box.slack.wait_until(
        lambda: len(box.slack.thread(box.channel, message.ts)) == 1 and "Mautic:" in json.dumps(message.blocks),
        timeout=10, describe="thread note and final state",
    )
    say.say("The bot added the DNC in Mautic, noted who/when/what in the thread and closed the alert")
    say.show_channel()

    say.say("Carol clicks the same (now stale) button a moment later")
    stale = dataclasses.replace(message, blocks=message.history[0].blocks)
    await box.user.click(CAROL.id, stale, "consent_dnc")
    await box.slack.wait_for_response(where=lambda r: "already decided" in r.text)
    say.show_responses("Carol")

    say.say("Later Kim unsubscribes in Mautic: recorded as a withdrawal for the digest (no ping by default)")
    await box.webhook(unsubscribe_event(kim, "kim@example.com"))
    await _withdrawal_recorded(box, "kim@example.com")
    say.say("Bob looks up Kim's consent history: `/privacy consent kim@example.com`")
    say.show_answer("Bob", await box.command(BOB, "consent kim@example.com"))


async def _withdrawal_recorded(box: Sandbox, email: str, timeout: float = 10.0) -> None:
    """The withdrawal is processed after the 2xx and posts nothing; wait for the processing, then look."""
    await box.jobs_idle(timeout, kinds=[IntakeJob.PROCESS])
    async with unit_of_work(box.services.sessions) as session:
        withdrawals = (await consent_history(session, subject_hash(box.services.hash_key, email)))["withdrawals"]
    if not withdrawals:
        raise AssertionError("the withdrawal was not processed")


async def burst_folded(box: Sandbox, say: Narrator) -> None:
    say.say("Someone removed the consent checkbox from the Webinar form: 25 sign-ups arrive in three batches")
    for start in (0, 10, 20):
        batch = merge_payloads(*[
            form_submission_event(contact_id=500 + n, email=f"guest{n}@example.org", submission_id=900 + n,
                                  form_id=9, form_name="Webinar", form_alias="webinar",
                                  results={"email": f"guest{n}@example.org"})
            for n in range(start, min(start + 10, 25))
        ])
        await box.webhook(batch)
    await box.slack.wait_for("chat.postMessage", 2)
    await box.slack.wait_until(
        lambda: "24 more" in json.dumps(box.slack.messages(box.channel)[-1].blocks), timeout=10,
        describe="the burst count on the alert",
    )
    say.say("One alert, with the other 24 folded into a count (Slack allows ~1 message/second per channel)")
    say.show_channel()

    message = box.slack.messages(box.channel)[-1]
    say.say("Carol dismisses it with a reason (the form was fixed; marketing will re-ask by email)")
    await box.user.click(CAROL.id, message, "consent_dismiss")
    await box.slack.wait_for("views.open")
    await box.user.submit_view(CAROL.id, box.slack.views[-1], {"reason": {"reason_input": {
        "type": "plain_text_input", "value": "Form fixed at 10:40; guests get a re-consent email"}}})
    await box.slack.wait_until(
        lambda: len(box.slack.thread(box.channel, message.ts)) == 1 and "Dismiss* by" in json.dumps(message.blocks),
        timeout=10, describe="dismissal noted in the thread and on the alert",
    )
    say.show_channel()


SCENES: list[Scene] = [
    Scene("Consent gap: alert, decision, audit trail", gap_and_resolution),
    Scene("A misconfigured form: the burst folds into one alert", burst_folded),
]
