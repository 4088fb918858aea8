"""The record of processing (Art. 30(1)) and the DPIA screening: every form seen, in Mautic or in webhooks,
with its fields; gaps for the DPO; posted to Slack as files, written by `python -m bot ropa`."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.cli import ropa_paths
from bot.digests import blocks
from bot.digests.ropa import RopaInputs, build, to_csv, to_markdown
from bot.digests.service import post_ropa
from bot.policy import load_policy
from sandbox.harness import ALICE, CAROL, Sandbox, sandbox
from sandbox.mautic import form_submission_event
from storage import digests as digest_store
from storage.db import unit_of_work
from tests.helpers import test_tuning
from tests.test_cli import _env, _run, _settings_env

POLICY = """policy_version: "2026-03"
forms:
  - id: 1
    purpose: marketing
    legal_basis: consent (Art. 6(1)(a))
  - id: 3
    purpose: support
    exempt: true
access_summary:
  recipients: ["Mautic (self-hosted)"]
"""
EMAIL = {"alias": "email", "type": "email", "leadField": "email", "isRequired": True, "label": "Email"}


def _seed(box: Sandbox) -> None:
    box.mautic.add_form(1, "Newsletter", alias="newsletter", fields=[
        EMAIL, {"alias": "firstname", "type": "text", "leadField": "firstname", "label": "First name"},
        {"alias": "consent", "type": "checkboxgrp", "isRequired": True, "label": "Consent"}])
    box.mautic.add_form(3, "Contact <!channel> us", alias="contact", fields=[
        EMAIL, {"alias": "message", "type": "textarea", "label": "=HYPERLINK(\"http://evil\")"},
        {"alias": "submit", "type": "button", "label": "Send"}])
    box.mautic.add_form(7, "Webinar", alias="webinar", fields=[
        EMAIL, {"alias": "health_notes", "type": "text", "label": "Dietary or health needs"}])


async def _submissions(box: Sandbox) -> None:
    # Form 9 is gone from Mautic; its fields are known only from what its webhook carried.
    for n, (form_id, name, results) in enumerate([
        (1, "Newsletter", {"email": "a@example.com", "firstname": "Ann", "consent": "1", "utm_source": "ad"}),
        (9, "Old survey", {"email": "b@example.com", "company_size": "50"}),
    ]):
        event = form_submission_event(contact_id=10 + n, email=str(results["email"]), results=results,
                                      form_id=form_id, form_name=name, form_alias=name.lower().replace(" ", ""),
                                      submission_id=300 + n)
        assert (await box.webhook(event))[0] == 200
    await box.jobs_idle()


def _uploads(box: Sandbox) -> tuple[str, str]:
    contents = [c.decode() for c in box.slack.uploads.values()]
    [markdown] = [c for c in contents if c.startswith("# Record of processing")]
    [table] = [c for c in contents if c.startswith("purpose,")]
    return markdown, table


async def test_ropa_command_lists_every_form_seen_with_its_fields(db_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "x", privacy_policy_file=policy) as box:
        _seed(box)
        await _submissions(box)
        refused = await box.command(ALICE, "ropa")  # approvers only
        assert "approver" in refused.text.lower()
        answer = await box.command(CAROL, "ropa")
        assert "Building the record of processing" in answer.text
        await box.jobs_idle()
        [summary] = [m for m in box.slack.messages(box.channel) if m.text.startswith("Record of processing")]
        assert summary.text == "Record of processing: 3 purpose(s), 4 form(s), 10 gap(s) for the DPO"
        shown = str(summary.blocks)
        assert "Contact &lt;!channel&gt; us" in shown and "<!channel>" not in shown  # outside text escaped
        assert "no legal basis configured for form 7 (Webinar)" in shown
        completes = box.slack.calls_to("files.completeUploadExternal")
        assert [c.params["thread_ts"] for c in completes] == [summary.ts, summary.ts]

        markdown, table = _uploads(box)
        for heading in ("### Form 1: Newsletter", "### Form 3: Contact &lt;!channel&gt; us (exempt from consent)",
                        "### Form 7: Webinar", "### Form 9: Old survey"):
            assert heading in markdown
        assert "| firstname | First name | text | firstname | Identity (name, title) | Mautic form and webhooks |" \
            in markdown
        assert "| utm_source |  |  |  | Other form answers (utm_source) | webhooks only |" in markdown
        assert "| company_size |" in markdown and "| submit |" not in markdown  # a button collects nothing
        assert "form 9 (Old survey) sent submissions but is no longer in Mautic" in markdown
        assert "| 4 | Sensitive data or data of a highly personal nature | yes | fields: health_notes (form 7) |" \
            in markdown
        assert "Ann" not in markdown + table and "@example.com" not in markdown + table  # aliases, no values
        rows = list(csv.DictReader(io.StringIO(table)))
        assert {(r["form_id"], r["field_alias"]) for r in rows} == {
            ("1", "email"), ("1", "firstname"), ("1", "consent"), ("1", "utm_source"), ("3", "email"),
            ("3", "message"), ("7", "email"), ("7", "health_notes"), ("9", "email"), ("9", "company_size")}
        assert next(r for r in rows if r["field_alias"] == "message")["field_label"].startswith("'=HYPERLINK")

        # A retried job neither posts nor uploads again.
        runs_before = len(box.slack.calls_to("chat.postMessage")), len(completes)
        async with unit_of_work(box.services.sessions) as session:
            [run] = await digest_store.posted_runs(session, "ropa")
        assert run.job_id is not None and run.summary["uploaded"] == ["record-of-processing.md",
                                                                      "record-of-processing.csv"]
        await post_ropa(box.services, job_id=run.job_id, requested_by=CAROL.id)
        assert (len(box.slack.calls_to("chat.postMessage")),
                len(box.slack.calls_to("files.completeUploadExternal"))) == runs_before


async def test_ropa_cli_writes_markdown_and_csv(sqlite_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    async with sandbox(sqlite_url, tuning=test_tuning(), export_dir=tmp_path / "x", privacy_policy_file=policy) as box:
        _seed(box)
        await _submissions(box)
        env = _env({**_settings_env(box), "PRIVACY_POLICY_FILE": str(policy)})
        code, out, err = await _run(["ropa", "--out", str(tmp_path / "ropa.md")], env, tmp_path)
        assert code == 0, out + err
        markdown = (tmp_path / "ropa.md").read_text()
        table = (tmp_path / "ropa.csv").read_text()
        assert "### Form 9: Old survey" in markdown and "company_size" in table
        assert f"wrote {tmp_path / 'ropa.md'} and {tmp_path / 'ropa.csv'}: 3 purpose(s), 4 form(s)" in out
        assert "[gap] no legal basis configured for form 7 (Webinar)" in out


def test_ropa_paths() -> None:
    assert ropa_paths("out/ropa") == (Path("out/ropa.md"), Path("out/ropa.csv"))
    assert ropa_paths("ropa.MD") == (Path("ropa.md"), Path("ropa.csv"))
    assert ropa_paths("ropa.csv") == (Path("ropa.md"), Path("ropa.csv"))
    assert ropa_paths("r.2026") == (Path("r.2026.md"), Path("r.2026.csv"))


def _inputs(tmp_path: Path, text: str, forms: list[dict[str, Any]] | None, **extra: Any) -> RopaInputs:
    path = tmp_path / "p.yml"
    path.write_text(text)
    return RopaInputs(now=datetime(2026, 12, 1, tzinfo=UTC), policy=load_policy(path, ["consent"]),
                      consent_fields=["consent"], retention_days=1095, store_source_ip=False, mautic_forms=forms,
                      **extra)


def test_gaps_name_what_the_dpo_must_configure(tmp_path: Path) -> None:
    form = {"id": 4, "name": "Ebook", "alias": "ebook", "fields": [
        EMAIL, {"alias": "consent", "type": "checkboxgrp", "isRequired": True, "defaultValue": "1"}]}
    ropa = build(_inputs(tmp_path, "forms:\n  - id: 4\n    purpose: download\n  - id: 12\n    purpose: x\n", [form]))
    assert ropa.gaps == [
        "no legal basis configured for form 4 (Ebook): add `legal_basis:` to its rule in the policy file",
        "the policy file has a rule for form 12, which Mautic does not have",
        "form 4 (Ebook): consent box is pre-checked by default (Recital 32: not consent); consent box is required "
        "on a form whose purpose is not marketing (Art. 7(4): consent made a condition is not freely given)",
        "no `policy_version:` in the policy file: consent records cannot say which privacy notice was in force",
        'recipients not configured (`access_summary.recipients` in the policy file): access packages say '
        '"not configured" there',
        'transfers to third countries not configured (`access_summary.transfers` in the policy file): access '
        'packages say "not configured" there',
        'retention not configured (`access_summary.retention` in the policy file): access packages say '
        '"not configured" there',
        "controller not named (PRIVACY_CONTROLLER or `access_summary.controller`)",
    ]
    criteria = {c.number: c.met for c in ropa.dpia}
    assert criteria[9] == "yes" and criteria[6] == "no" and criteria[5] == "unknown"


def test_dpia_screening_reads_what_the_bot_observes(tmp_path: Path) -> None:
    forms = [{"id": i, "name": f"F{i}", "fields": [EMAIL, {"alias": "age", "type": "number", "label": "Your age"}]}
             for i in (1, 2)]
    inputs = _inputs(tmp_path, "", forms, contacts=25_000,
                     event_types={"mautic.lead_points_change": 3, "mautic.page_on_hit": 5})
    ropa = build(inputs)
    met = {c.number: c.met for c in ropa.dpia}
    assert met == {1: "yes", 2: "no", 3: "yes", 4: "no", 5: "yes", 6: "yes", 7: "yes", 8: "no", 9: "no"}
    assert ropa.criteria_met == 5 and ropa.dpia_verdict.startswith("5 of 9 criteria met: a DPIA is likely required")
    # "age" matches as a word only: a "page" field is no hint of vulnerable subjects.
    quiet = build(_inputs(tmp_path, "", [{"id": 1, "name": "F", "fields": [
        EMAIL, {"alias": "landing_page", "type": "text"}]}], contacts=10))
    assert {c.number: c.met for c in quiet.dpia}[7] == "unknown" and quiet.criteria_met == 0


def test_mautic_unreadable_still_lists_the_forms_the_webhooks_carried(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path, "", None, mautic_error="MauticUnavailable",
                     webhook_fields={5: ("Signup | <b>", ["email", "x|y"])}, submissions={5: 2})
    ropa = build(inputs)
    assert "Mautic's forms could not be read (MauticUnavailable): only forms seen in webhooks are listed" in ropa.gaps
    markdown = to_markdown(ropa)
    assert "### Form 5: Signup \\| &lt;b&gt;" in markdown and "| x\\|y |" in markdown
    assert "form 5, 2 submissions kept" in markdown
    assert len(list(csv.reader(io.StringIO(to_csv(ropa))))) == 3


def test_a_large_record_keeps_the_slack_summary_within_block_limits(tmp_path: Path) -> None:
    from tests.digests.test_rules import validate_blocks

    forms = [{"id": i, "name": f"Form {'x' * 80} {i}", "fields": [EMAIL]} for i in range(1, 600)]
    policy = "forms:\n" + "".join(f"  - id: {i}\n    purpose: purpose {i % 40}\n" for i in range(1, 600))
    ropa = build(_inputs(tmp_path, policy, forms))
    message = blocks.ropa_summary(ropa)
    assert validate_blocks(message["blocks"]) == [] and len(message["blocks"]) <= 50
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in message["blocks"])
    assert "more purposes not shown" in str(message["blocks"]) and "more gaps not shown" in str(message["blocks"])
