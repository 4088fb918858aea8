"""The compliance digest reads what intake and requests stored; the form audit finds unsafe consent boxes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sandbox.harness import ALICE, CAROL, Sandbox, sandbox
from sandbox.mautic import FakeMautic, form_submission_event, merge_payloads
from tests.digests.helpers import Clock
from tests.helpers import test_tuning


def seed_forms(mautic: FakeMautic) -> None:
    email = {"alias": "email", "type": "email", "leadField": "email", "isRequired": True}
    mautic.add_form(1, "Newsletter", alias="newsletter", fields=[
        email, {"alias": "consent", "type": "checkboxgrp", "leadField": "consent", "isRequired": True}])
    mautic.add_form(2, "Webinar", alias="webinar", fields=[
        email, {"alias": "agree", "type": "checkboxgrp", "leadField": "gdpr_consent", "isRequired": True,
                "defaultValue": "1"}])
    mautic.add_form(3, "Contact us", alias="contact", fields=[
        email, {"alias": "message", "type": "textarea"}])
    mautic.add_form(4, "Ebook", alias="ebook", fields=[
        email, {"alias": "marketing_consent", "type": "checkboxgrp", "isRequired": True}])
    mautic.add_form(6, "Updates", alias="updates", fields=[  # an optional box: freely given, no defect
        email, {"alias": "consent", "type": "checkboxgrp", "isRequired": False}])
    mautic.add_form(5, "Poll", alias="poll", fields=[{"alias": "answer", "type": "radiogrp"}])


def _section_texts(blocks: list[dict[str, Any]]) -> str:
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        out.extend(f["text"] for f in block.get("fields", []))
        out.extend(e.get("text", "") for e in block.get("elements", []) if block["type"] == "context")
    return "\n".join(out)


async def _submissions(box: Sandbox, clock: Clock) -> None:
    when = clock() - timedelta(days=1)
    events = [
        form_submission_event(contact_id=100 + i, email=f"fan{i}@example.com", results={"email": f"fan{i}@example.com",
                              "consent": "1"}, form_id=1, form_name="Newsletter", form_alias="newsletter",
                              submission_id=500 + i, date_submitted=when)
        for i in range(3)
    ]
    events.append(form_submission_event(contact_id=200, email="quiet@example.com",
                                        results={"email": "quiet@example.com"}, form_id=1, form_name="Newsletter",
                                        form_alias="newsletter", submission_id=600, date_submitted=when))
    status, _ = await box.webhook(merge_payloads(*events))
    assert status == 200
    # The submission without consent raises a gap alert: once it is posted, the delivery was processed.
    await box.slack.wait_for("chat.postMessage", timeout=10)


async def test_compliance_digest_figures_trend_ledger_and_form_audit(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        seed_forms(box.mautic)
        await _submissions(box, clock)
        clock.advance(minutes=5)
        answer = await box.command(CAROL, "digest compliance")  # an approver through the DPO user group
        assert "compliance digest" in answer.text.lower()
        await box.slack.wait_for("chat.postMessage", 2, timeout=10)
        digest = next(m for m in box.slack.messages(box.channel) if "Compliance digest" in m.text)
        assert "4 submissions, 75 % with consent" in digest.text and "ledger OK" in digest.text
        text = _section_texts(digest.blocks)
        assert "Newsletter: 4 submissions, 75 % with consent" in text
        assert "Consent gaps open / resolved*\n1 / 0" in text
        # Eight weeks of consent share, the last one at 75 % (▆), the weeks before without data (·).
        assert "`·······▆` consent share, last 8 weeks" in text
        assert "Audit ledger*: ledger OK" in text
        assert "Webinar* (form #2): consent box is pre-checked" in text
        assert "Contact us* (form #3): collects an email but has no consent field" in text
        # Without a policy naming the Ebook form's purpose its required box is not judged, and an optional
        # box (Updates) is no defect at all.
        assert "Ebook*" not in text and "Updates*" not in text and "optional" not in text
        assert "Newsletter* (form #1)" not in text and "Poll" not in text
        assert "Not tracked yet" not in text  # every part it reads exists in this build
        assert "@example.com" not in text


async def test_forms_command_lists_unsafe_forms(sqlite_url: str, tmp_path: Path) -> None:
    clock = Clock()
    policy = tmp_path / "policy.yml"
    policy.write_text("forms:\n  - alias: ebook\n    purpose: ebook download\n"
                      "  - alias: updates\n    purpose: support\n")
    async with sandbox(sqlite_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports",
                       privacy_policy_file=policy) as box:
        seed_forms(box.mautic)
        answer = await box.command(ALICE, "forms")  # anyone in the channel may run the audit
        assert "Checking the Mautic forms" in answer.text
        [posted] = await box.slack.wait_for("chat.postMessage", timeout=10)
        assert posted.params["text"].startswith("Form audit: 3 of 5 forms collecting an email need attention")
        text = _section_texts(posted.params["blocks"])
        lines = [line for line in text.splitlines() if line.startswith("•")]
        assert lines == [
            "• *Contact us* (form #3): collects an email but has no consent field",
            "• *Webinar* (form #2): consent box is pre-checked by default (Recital 32: not consent)",
            "• *Ebook* (form #4): consent box is required on a form whose purpose is not marketing "
            "(Art. 7(4): consent made a condition is not freely given)",
        ]  # Updates' box is optional: not a defect, whatever the form's purpose
        assert [c.path for c in box.mautic.calls if c.path.startswith("/api/forms")] == ["/api/forms"]
