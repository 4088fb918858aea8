"""Consent evidence records what the person was told: the consent box's label, the form revision (fetched
once per revision), the policy version and the page; a pre-ticked box makes the consent given under it invalid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot.digests.evidence import consent_labels, definition_hash, definition_of, label_for
from bot.intake.events import page_url
from bot.intake.process import enqueue_sweep
from sandbox.harness import ALICE, CAROL, Sandbox, sandbox
from sandbox.mautic import form_submission_event
from storage.db import unit_of_work
from storage.forms import FormFieldSeen, FormRevision
from storage.intake import ConsentRecord
from storage.ledger import AuditEntry
from tests.digests.helpers import Clock
from tests.helpers import test_tuning
from tests.intake.helpers import rows

POLICY = "policy_version: '2026-03'\nforms:\n  - id: 2\n    purpose: marketing\n    legal_basis: consent\n"
CONSENT_BOX = {"alias": "consent", "type": "checkboxgrp", "label": "Newsletter", "isRequired": True,
               "properties": {"optionlist": {"list": [{"label": "Yes, send me the <b>newsletter</b>", "value": "1"}]}}}


def _seed(box: Sandbox) -> None:
    box.mautic.add_form(2, "Webinar", alias="webinar", fields=[
        {"alias": "email", "type": "email", "leadField": "email", "isRequired": True}, CONSENT_BOX])


async def _submit(box: Sandbox, n: int, **extra: Any) -> None:
    event = form_submission_event(contact_id=100 + n, email=f"fan{n}@example.com", submission_id=500 + n,
                                  results={"email": f"fan{n}@example.com", "consent": "1"}, form_id=2,
                                  form_name="Webinar", form_alias="webinar", **extra)
    assert (await box.webhook(event))[0] == 200
    await box.jobs_idle()


async def _invalidations(box: Sandbox) -> list[AuditEntry]:
    query = select(AuditEntry).where(col(AuditEntry.action) == "consent.records_invalidated")
    async with unit_of_work(box.services.sessions) as session:
        return list((await session.exec(query.order_by(col(AuditEntry.seq)))).all())


def _form_calls(box: Sandbox) -> list[str]:
    return [f"{c.path}{'?minimal' if 'minimal' in c.query else ''}" for c in box.mautic.calls
            if c.path.startswith("/api/forms")]


async def test_each_record_carries_the_label_revision_policy_version_and_page(db_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "x", privacy_policy_file=policy) as box:
        _seed(box)
        await _submit(box, 1, referer="https://user:pw@example.com/webinar/?email=fan1%40example.com#form")
        [first] = await rows(box, ConsentRecord)
        assert first.given and first.invalid_at is None and first.evidence_at is not None
        assert first.policy_version == "2026-03"
        assert first.page_url == "https://example.com/webinar/"  # no query, fragment or credentials
        assert first.label_text == "Newsletter: Yes, send me the <b>newsletter</b>"
        form = box.mautic._forms[2]
        assert first.form_hash == definition_hash(definition_of(form)) and first.form_hash is not None
        assert _form_calls(box) == ["/api/forms?minimal", "/api/forms/2"]

        # The same revision again: one cheap look-up, the definition is not fetched a second time.
        await _submit(box, 2)
        assert _form_calls(box) == ["/api/forms?minimal", "/api/forms/2", "/api/forms?minimal"]
        second = (await rows(box, ConsentRecord))[1]
        assert (second.form_revision_id, second.form_hash) == (first.form_revision_id, first.form_hash)

        # Someone pre-ticks the box: a new revision, fetched once; the consent given under it is invalid,
        # the consent given before it stays valid.
        box.mautic.edit_form_field(2, "consent", defaultValue="1")
        await _submit(box, 3)
        assert _form_calls(box)[-2:] == ["/api/forms?minimal", "/api/forms/2"]
        records = await rows(box, ConsentRecord)
        assert [r.invalid_reason for r in records] == [None, None, "prechecked"]
        assert records[2].form_hash != first.form_hash and records[2].form_revision_id != first.form_revision_id
        revisions = await rows(box, FormRevision)
        assert [(r.form_id, r.prechecked) for r in revisions] == [(2, False), (2, True)]
        assert "createdByUser" not in revisions[0].definition  # staff names are no evidence of what was shown
        seen = await rows(box, FormFieldSeen)
        assert sorted(s.field_alias for s in seen) == ["consent", "email"]  # aliases, never values
        assert "fan" not in str([(s.form_name, s.field_alias) for s in seen])


async def test_a_pre_ticked_box_found_by_the_audit_invalidates_earlier_consent(db_url: str, tmp_path: Path) -> None:
    """The evidence job stores the revision with the intake's consent fields; the policy later names the
    pre-ticked box a consent field, and the next audit finds it: the earlier records become invalid."""
    policy = tmp_path / "policy.yml"
    policy.write_text("policy_version: v1\n")
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "x", privacy_policy_file=policy) as box:
        box.mautic.add_form(2, "Webinar", alias="webinar", fields=[
            {"alias": "email", "type": "email", "leadField": "email", "isRequired": True}, CONSENT_BOX,
            {"alias": "partners", "type": "checkboxgrp", "label": "Share with partners", "defaultValue": "1",
             "properties": {"optionlist": {"list": [{"label": "Yes", "value": "1"}]}}}])
        await _submit(box, 1)
        await _submit(box, 2)
        assert [r.invalid_at for r in await rows(box, ConsentRecord)] == [None, None]

        policy.write_text("policy_version: v2\nforms:\n  - id: 2\n    any_of: [consent, partners]\n")
        await box.restart_bot()
        answer = await box.command(ALICE, "forms")
        assert "Checking the Mautic forms" in answer.text
        [posted] = await box.slack.wait_for("chat.postMessage", timeout=10)
        text = str(posted.params["blocks"])
        assert "*Webinar* (form #2): consent box is pre-checked" in text
        assert "*2* consent record(s) were collected while a consent box above was pre-ticked" in text
        records = await rows(box, ConsentRecord)
        assert [r.invalid_reason for r in records] == ["prechecked", "prechecked"]
        [entry] = await _invalidations(box)
        assert entry.details["records"] == 2 and entry.details["found_by"] == "form audit"
        history = (await box.command(CAROL, "consent fan1@example.com")).json["text"]
        assert "~consent~ *invalid*: the box was pre-ticked" in history
        # The label is what the record was judged by when it was collected: the consent box of policy v1.
        assert history.endswith("box read “Newsletter: Yes, send me the &lt;b&gt;newsletter&lt;/b&gt;”")

        # A second audit changes nothing more, and the compliance digest counts them.
        await box.command(CAROL, "digest compliance")
        await box.jobs_idle()
        digest = next(m for m in box.slack.messages(box.channel) if "Compliance digest" in m.text)
        texts = [f["text"] for block in digest.blocks for f in block.get("fields", [])]
        assert "*Consent invalidated (pre-ticked box)*\n2 (2 records in all)" in texts
        assert len(await _invalidations(box)) == 1


def test_label_texts_follow_the_shapes_mautic_stores_options_in() -> None:
    form = {"fields": [
        {"alias": "Consent", "label": " I  agree ", "properties": {"optionlist": {"list": {"1": "Yes"}}}},
        {"alias": "gdpr_consent", "label": "", "properties": {"list": ["Ja", "Nein"]}},
        {"alias": "marketing_consent", "label": "Marketing", "properties": []},
        {"alias": "other", "label": "Not consent"},
    ]}
    labels = consent_labels(form, ["consent", "gdpr_consent", "marketing_consent"])
    assert labels == {"consent": "I agree: Yes", "gdpr_consent": "Ja / Nein", "marketing_consent": "Marketing"}
    assert label_for(labels, ["CONSENT", "marketing_consent", "missing"]) == "I agree: Yes; Marketing"
    assert label_for(labels, ["missing"]) is None


def test_the_page_url_keeps_scheme_host_and_path_only() -> None:
    assert page_url("https://example.com/a/b?x=1#y") == "https://example.com/a/b"
    assert page_url("http://u:p@example.com:8080/") == "http://example.com:8080/"
    assert page_url("javascript:alert(1)") is None and page_url("") is None and page_url(None) is None
    assert page_url("/relative/path") is None and page_url("http://[::1") is None


async def test_the_intake_sweep_retries_evidence_whose_job_failed_for_good(sqlite_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(sqlite_url, tuning=test_tuning(clock), export_dir=tmp_path / "x") as box:
        _seed(box)
        box.mautic.fail("/api/forms", status=400, times=None)  # refused on every attempt of the job
        await _submit(box, 1)
        [record] = await rows(box, ConsentRecord)
        assert record.evidence_at is None and record.given  # intake itself never waits for Mautic
        box.mautic.clear_faults()
        await enqueue_sweep(box.services)
        await box.jobs_idle()
        assert (await rows(box, ConsentRecord))[0].evidence_at is None  # not stale yet: its job may still run
        clock.advance(minutes=11)
        await enqueue_sweep(box.services)
        await box.jobs_idle()
        [record] = await rows(box, ConsentRecord)
        assert record.evidence_at is not None and record.label_text == "Newsletter: Yes, send me the <b>newsletter</b>"


async def test_one_run_gives_evidence_to_more_records_than_a_chunk_holds(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Records get their evidence a chunk per transaction (a thousand at once held the loop for over 100 ms);
    # one run still reaches every waiting record of the form, and pre-ticked consent is invalid in each chunk.
    import bot.digests.evidence as evidence

    monkeypatch.setattr(evidence, "RECORD_CHUNK", 2)
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "x") as box:
        box.mautic.add_form(2, "Webinar", alias="webinar", fields=[
            {"alias": "email", "type": "email", "leadField": "email", "isRequired": True},
            {**CONSENT_BOX, "defaultValue": "1"}])
        await box.services.jobs.stop()  # the five records wait together for one evidence run
        for n in range(5):
            event = form_submission_event(contact_id=100 + n, email=f"fan{n}@example.com", submission_id=500 + n,
                                          results={"email": f"fan{n}@example.com", "consent": "1"}, form_id=2,
                                          form_name="Webinar", form_alias="webinar")
            assert (await box.webhook(event))[0] == 200
        await box.restart_bot()
        await box.jobs_idle()
        records = await rows(box, ConsentRecord)
        assert len(records) == 5 and all(r.evidence_at is not None for r in records)
        assert {r.invalid_reason for r in records} == {"prechecked"}
        assert sum(entry.details["records"] for entry in await _invalidations(box)) == 5
