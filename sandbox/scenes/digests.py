"""Demo scenes of the digests feature: what `make demo` shows of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sandbox.harness import ALICE, BOB, CAROL
from sandbox.scenes.base import Narrator, Scene

if TYPE_CHECKING:
    from sandbox.harness import Sandbox


def _seed(box: Sandbox) -> list[int]:
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=box.settings.retention_days)
    mautic = box.mautic
    mautic.add_segment(31, "Trade fair 2021")
    mautic.add_segment(32, "Old newsletter")
    stale = [mautic.add_contact(email=f"old.lead{i}@example.org", last_active=cutoff - timedelta(days=30 + i),
                                date_added=cutoff - timedelta(days=700), segments=[31 if i % 3 else 32])
             for i in range(12)]
    stale += [mautic.add_contact(email=f"never.opened{i}@example.org", date_added=cutoff - timedelta(days=10 + i))
              for i in range(3)]
    for i in range(6):
        mautic.add_contact(email=f"reader{i}@example.org", last_active=now - timedelta(days=3 + i),
                           date_added=cutoff - timedelta(days=100))
    email = {"alias": "email", "type": "email", "leadField": "email", "isRequired": True}
    mautic.add_form(41, "Spring webinar", alias="webinar", fields=[
        email, {"alias": "consent", "type": "checkboxgrp", "leadField": "consent", "isRequired": True,
                "defaultValue": "1"}])
    mautic.add_form(42, "Contact us", alias="contact", fields=[email, {"alias": "message", "type": "textarea"}])
    mautic.add_form(43, "Product updates", alias="updates", fields=[
        email, {"alias": "consent", "type": "checkboxgrp", "leadField": "consent", "isRequired": True}])
    return stale


def _posted(box: Sandbox, fragment: str) -> bool:
    return any(fragment in m.text for m in box.slack.messages(box.channel))


async def retention_and_purge(box: Sandbox, say: Narrator) -> None:
    stale = _seed(box)
    say.say("Mautic holds 12 contacts inactive for over three years, 3 never active and added back then, "
            "and 6 active readers. Bob asks for the retention digest now: `/privacy digest retention`")
    say.show_answer("Bob", await box.command(BOB, "digest retention"))
    await box.slack.wait_until(lambda: _posted(box, "Retention digest:"), timeout=15, describe="retention digest")
    say.say("Counted by Mautic with its own --gdpr filters; only a masked sample and segment counts reach Slack")
    say.show_channel()

    digest = next(m for m in box.slack.messages(box.channel) if m.text.startswith("Retention digest:"))
    say.say("Alice clicks “Purge 15 stale contacts” (and confirms the danger dialog): a bulk erasure request is filed")
    await box.user.click(ALICE.id, digest, "digest_purge_file")
    await box.slack.wait_until(
        lambda: any("Purge request #" in m.text for m in box.slack.thread(box.channel, digest.ts)),
        timeout=10, describe="purge request")
    request = next(m for m in box.slack.thread(box.channel, digest.ts) if "Purge request #" in m.text)
    say.show_channel()

    say.say("Meanwhile one of the old leads comes back and opens an email: it is active again")
    await box.services.mautic.patch_contact(stale[0], {"lastActive": datetime.now(UTC).isoformat()},
                                            overwrite_with_blank=False)
    say.say("Bob approves (he is an approver and did not file it). The batch job re-checks the count, "
            "deletes in chunks of up to 200, and spares the contact that became active")
    await box.user.click(BOB.id, request, "digest_purge_approve")
    await box.slack.wait_until(
        lambda: any("finished" in m.text for m in box.slack.thread(box.channel, digest.ts)),
        timeout=20, describe="purge finished")
    say.show_channel()
    kept = stale[0] in box.mautic.contacts
    say.say(f"The returning lead is still in Mautic: {kept}; every chunk is in the audit ledger as purge.chunk")


async def compliance_and_forms(box: Sandbox, say: Narrator) -> None:
    say.say("Carol (approver through the DPO user group) asks for the compliance digest: "
            "`/privacy digest compliance`")
    say.show_answer("Carol", await box.command(CAROL, "digest compliance"))
    await box.slack.wait_until(lambda: _posted(box, "Compliance digest"), timeout=15, describe="compliance digest")
    say.say("Submissions and consent share with an 8-week trend, gaps, withdrawals, requests, purges, the "
            "ledger's verification and the form audit, for the period since the last digest")
    say.show_channel()
    say.say("Alice runs the form audit on its own: `/privacy forms`")
    say.show_answer("Alice", await box.command(ALICE, "forms"))
    await box.slack.wait_until(lambda: _posted(box, "Form audit:"), timeout=15, describe="form audit")
    say.show_channel()


SCENES: list[Scene] = [
    Scene("Retention digest and a four-eyes bulk purge (GDPR Art. 5(1)(e))", retention_and_purge),
    Scene("Compliance digest and the Mautic form audit (Recital 32)", compliance_and_forms),
]
