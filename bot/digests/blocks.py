"""Block Kit builders of the digests feature: retention digest, compliance digest, form audit, purges.

Pure: plain data in, message dicts (``text`` + ``blocks``) out. Long lists are cut to fit Slack's limits
(50 blocks, 3,000 characters per section text) with a count of what was left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.digests.compliance import ComplianceDigest, sparkline
from bot.digests.forms import FormAudit
from bot.digests.retention import RetentionSnapshot
from bot.digests.ropa import Ropa
from bot.requests.deadlines import DUE_SOON_DAYS
from bot.slack.blocks import (
    Block,
    actions,
    button,
    cap_blocks,
    confirm_dialog,
    context,
    escape,
    fields,
    header,
    section,
)
from bot.slack.buttons import ref_value

TEXT_BUDGET = 2900  # under the 3,000 limit, leaving room for the "…and N more" line
MAX_SEGMENT_LINES = 15
MAX_FORM_LINES = 12
MAX_FINDING_LINES = 20



class PurgeAction(StrEnum):
    """The action ids of the purge buttons: the builders below put them on, the listeners match them."""

    FILE = "digest_purge_file"
    APPROVE = "digest_purge_approve"
    REJECT = "digest_purge_reject"
    RESUME = "digest_purge_resume"


Message = dict[str, Any]


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.0f} %"


def _day(value: datetime) -> str:
    return value.strftime("%d %b %Y")


def cut_lines(lines: Sequence[str], *, max_items: int, what: str, budget: int = TEXT_BUDGET) -> str:
    """Join lines for one section text, keeping at most ``max_items`` and ``budget`` characters."""
    kept: list[str] = []
    used = 0
    for line in lines[:max_items]:
        if used + len(line) + 1 > budget:
            break
        kept.append(line)
        used += len(line) + 1
    left = len(lines) - len(kept)
    if left:
        kept.append(f"…and {_n(left)} more {what} not shown.")
    return "\n".join(kept)


def packed_sections(lines: Sequence[str], *, what: str, max_sections: int) -> list[Block]:
    """Lines packed into as few sections as fit, at most ``max_sections``; the rest counted in a context."""
    out: list[Block] = []
    current: list[str] = []
    used = 0
    shown = 0
    for line in lines:
        if used + len(line) + 1 > TEXT_BUDGET and current:
            if len(out) + 1 >= max_sections:
                break
            out.append(section("\n".join(current)))
            current, used = [], 0
        current.append(line[:TEXT_BUDGET])
        used += len(line) + 1
        shown += 1
    if current:
        out.append(section("\n".join(current)))
    if shown < len(lines):
        out.append(context(f"…and {_n(len(lines) - shown)} more {what} not shown."))
    return out


# ---- retention --------------------------------------------------------------------------------------


def retention_digest(snapshot: RetentionSnapshot, *, run_id: int, title_suffix: str = "") -> Message:
    total = snapshot.total
    years = snapshot.retention_days / 365
    rule = (
        f"Contacts last active before *{_day(snapshot.cutoff)}* ({snapshot.retention_days} days, about "
        f"{years:.1f} years), or never active and added before it: Mautic's own `--gdpr` clean-up rule. "
        "GDPR Art. 5(1)(e): keep personal data no longer than needed."
    )
    text = f"Retention digest: {_n(total)} contacts past the retention period"
    blocks: list[Block] = [header(f"Retention digest{title_suffix}"), section(rule)]
    if total == 0:
        blocks.append(section("✅ No contacts are past the retention period."))
    else:
        blocks.append(fields([
            ("Past retention", _n(total)),
            (f"Inactive > {snapshot.retention_days} days", _n(snapshot.inactive)),
            ("Never active, added before cutoff", _n(snapshot.never_active)),
        ]))
        if snapshot.segments:
            lines = [f"• {escape(s.name)}: {_n(s.contacts)}" for s in snapshot.segments]
            blocks.append(section("*By segment*\n" + cut_lines(lines, max_items=MAX_SEGMENT_LINES, what="segments")))
            if not snapshot.segments_exact:
                blocks.append(context(
                    f"Segment breakdown from the first {_n(snapshot.segments_from)} of {_n(total)} contacts "
                    "(looked up one by one, so only a sample when there are many)."
                ))
        if snapshot.sample:
            blocks.append(section("*Sample* (masked): " + escape(", ".join(snapshot.sample))))
        blocks.append(actions(
            f"digest_purge:{run_id}",
            button(
                f"Purge {_n(total)} stale contacts", PurgeAction.FILE, ref_value(run_id), style="danger",
                confirm=confirm_dialog(
                    "File a bulk erasure?",
                    f"This files a request to delete up to {_n(total)} contacts from Mautic. An approver other "
                    "than you must approve it; contacts active again by then are spared.",
                    "File purge request", danger=True,
                ),
            ),
        ))
    blocks.append(context(f"Digest #{run_id} · counted by Mautic with server-side filters"))
    return {"text": text, "blocks": cap_blocks(blocks, what="parts")}


# ---- compliance -------------------------------------------------------------------------------------


def compliance_digest(digest: ComplianceDigest, *, run_id: int) -> Message:
    period = f"{_day(digest.since)} – {_day(digest.until)}"
    text = (
        f"Compliance digest {period}: {_n(digest.submissions)} submissions, {_pct(digest.consent_share)} with "
        f"consent; ledger {'OK' if digest.ledger_ok else 'BROKEN'}"
    )
    blocks: list[Block] = [header(f"Compliance digest: {period}")]
    weeks = [w.share for w in digest.weeks]
    trend = f"  `{sparkline(weeks)}` consent share, last {len(weeks)} weeks" if weeks else ""
    blocks.append(section(
        f"*Consent at intake*: {_n(digest.submissions)} submissions, {_pct(digest.consent_share)} with consent{trend}"
    ))
    if digest.forms:
        lines = [f"• {escape(f.name)}: {_n(f.submissions)} submissions, {_pct(f.consent_share)} with consent"
                 for f in digest.forms]
        blocks.append(section(cut_lines(lines, max_items=MAX_FORM_LINES, what="forms")))
    blocks.append(fields([
        ("Consent gaps open / resolved", f"{_n(digest.gaps_open)} / {_n(digest.gaps_resolved)}"),
        ("Unsubscribes / all withdrawals", f"{_n(digest.unsubscribes)} / {_n(digest.withdrawals)}"),
        ("Sends after withdrawal", _n(digest.sends_after_withdrawal)),
        ("Erased subjects re-entered", _n(digest.erased_reentries)),
        ("Consent invalidated (pre-ticked box)",
         f"{_n(digest.consent_invalidated)} ({_n(digest.consent_invalid_total)} records in all)"),
    ]))
    r = digest.requests
    median = "–" if r.median_days_to_close is None else f"{r.median_days_to_close:.1f} days"
    blocks.append(fields([
        ("Requests opened / closed", f"{_n(r.opened)} / {_n(r.closed)}"),
        (f"Due within {DUE_SOON_DAYS} days / overdue", f"{_n(r.due_soon)} / {_n(r.overdue)}"),
        ("Median time to close", median),
        ("Erasures awaiting clean-up", _n(r.awaiting_cleanup)),
        ("Bulk purges filed / finished", f"{_n(digest.purges.filed)} / {_n(digest.purges.completed)} "
                                         f"({_n(digest.purges.contacts_deleted)} contacts)"),
    ]))
    blocks.append(section(_own_retention_line(digest.own_retention)))
    mark = "✅" if digest.ledger_ok else "🚨"
    blocks.append(section(f"{mark} *Audit ledger*: {escape(digest.ledger_text)}"))
    blocks.extend(_form_audit_section(digest.form_audit, digest.form_audit_error))
    if digest.missing:
        blocks.append(context("Not tracked yet (shown as 0): " + escape(", ".join(digest.missing))))
    blocks.append(context(f"Digest #{run_id} · period since the previous compliance digest"))
    return {"text": text, "blocks": cap_blocks(blocks, what="parts")}


OWN_RETENTION_KINDS = (("inbox_rows", "inbox rows"), ("dead_letters", "dead letters"),
                       ("finished_jobs", "finished jobs"), ("consent_records", "consent records of deleted contacts"),
                       ("export_files", "expired package files"), ("slack_uploads", "packages in Slack"))


def _own_retention_line(deleted: dict[str, int]) -> str:
    parts = ", ".join(f"{_n(deleted.get(kind, 0))} {label}" for kind, label in OWN_RETENTION_KINDS)
    return f"*Bot's own retention*: deleted {parts}"


def _finding_lines(audit: FormAudit) -> list[str]:
    return [f"• *{escape(f.name)}* (form #{f.form_id}): {escape(f.describe())}" for f in audit.findings]


def _form_audit_section(audit: FormAudit | None, error: str | None) -> list[Block]:
    if audit is None:
        return [section(f"*Form audit*: could not read Mautic forms ({escape(error or 'unknown error')}).")]
    if audit.ok:
        return [section(f"*Form audit*: ✅ {audit.collecting_email} of {audit.forms_checked} forms collect an "
                        "email; all ask for consent with an unticked box, and none makes it a condition.")]
    head = (f"*Form audit*: ⚠️ {len(audit.findings)} of {audit.collecting_email} forms collecting an email "
            "need attention\n")
    return [section(head + cut_lines(_finding_lines(audit), max_items=MAX_FINDING_LINES, what="forms",
                                     budget=TEXT_BUDGET - len(head)))]


def form_audit(audit: FormAudit) -> Message:
    text = (f"Form audit: {len(audit.findings)} of {audit.collecting_email} forms collecting an email need attention"
            if audit.findings else "Form audit: every form that collects an email asks for consent properly")
    blocks: list[Block] = [header("Mautic form audit")]
    if audit.ok:
        blocks.append(section(f"✅ Checked {audit.forms_checked} forms; {audit.collecting_email} collect an email, "
                              "and each has a required consent box that starts unticked."))
    else:
        blocks.append(section(f"Checked {audit.forms_checked} forms; {audit.collecting_email} collect an email and "
                              f"*{len(audit.findings)}* need attention:"))
        # Header, intro, the "more" line and the footer leave 46 blocks for the list.
        blocks.extend(packed_sections(_finding_lines(audit), what="forms", max_sections=46))
    if audit.invalidated:
        blocks.append(section(f"🚫 *{_n(audit.invalidated)}* consent record(s) were collected while a consent box "
                              "above was pre-ticked: they are marked invalid and no longer count as consent."))
    blocks.append(context("GDPR Recital 32: silence, pre-ticked boxes or inactivity are not consent. Consent fields "
                          "are the CONSENT_FIELDS aliases (form field alias or the contact field it maps to)."))
    return {"text": text, "blocks": cap_blocks(blocks, what="parts")}


# ---- record of processing ---------------------------------------------------------------------------


def ropa_summary(ropa: Ropa) -> Message:
    """The message the Markdown and CSV files are attached to: counts, the gaps and the DPIA screening.
    The register itself goes out as files: however many forms there are, no message limit applies."""
    forms = ropa.forms
    text = (f"Record of processing: {len(ropa.purposes)} purpose(s), {len(forms)} form(s), "
            f"{len(ropa.gaps)} gap(s) for the DPO")
    blocks: list[Block] = [header("Record of processing (Art. 30)")]
    lines = [f"• *{escape(purpose)}*: " + ", ".join(f"{escape(f.name)} (form #{f.form_id}, {len(f.fields)} fields)"
                                                    for f in entries)
             for purpose, entries in ropa.purposes.items()]
    blocks.append(section(cut_lines(lines, max_items=MAX_FORM_LINES, what="purposes") if lines
                          else "No forms seen yet, in Mautic or in webhooks."))
    if ropa.gaps:
        head = f"*Gaps for the DPO* ({len(ropa.gaps)}):\n"
        blocks.append(section(head + cut_lines([f"• {escape(g)}" for g in ropa.gaps], max_items=MAX_FINDING_LINES,
                                               what="gaps", budget=TEXT_BUDGET - len(head))))
    else:
        blocks.append(section("*Gaps for the DPO*: none found."))
    blocks.append(section(f"*DPIA screening* (Art. 35(1), WP248 criteria): {escape(ropa.dpia_verdict)}"))
    blocks.append(context("The full record (per purpose: forms and fields, categories, recipients, transfers, "
                          "retention, security measures) and the screening follow as Markdown and CSV files."))
    return {"text": text, "blocks": cap_blocks(blocks, what="parts")}


def ropa_queued() -> str:
    return "Building the record of processing; it will appear in this channel in a moment."


# ---- purge ------------------------------------------------------------------------------------------


def purge_request(
    *, purge_id: int, count: int, cutoff: datetime, filed_by: str, state: str,
    decided_by: str | None = None, reason: str | None = None,
) -> Message:
    what = (f"delete *{_n(count)}* stale contacts from Mautic (last active before {_day(cutoff)}, or never "
            f"active and added before it)")
    filed_by, decided_by = escape(filed_by), escape(decided_by or "")
    lines = [f"🗑️ *Purge request #{purge_id}*: {what}. Filed by <@{filed_by}>."]
    blocks: list[Block] = []
    if state == "pending":
        lines.append(f"Needs a privacy approver other than <@{filed_by}>. Contacts active again by the time it "
                     "runs are spared.")
        blocks = [section("\n".join(lines)), actions(
            f"purge:{purge_id}",
            button(f"Approve: delete {_n(count)}", PurgeAction.APPROVE, ref_value(purge_id), style="danger",
                   confirm=confirm_dialog(
                       "Delete contacts from Mautic?",
                       f"Up to {_n(count)} contacts are deleted in chunks of 200. This cannot be undone. "
                       "Contacts active again since the digest are spared.",
                       "Approve and delete", danger=True)),
            button("Reject", PurgeAction.REJECT, ref_value(purge_id)),
        )]
    else:
        outcome = {
            "approved": f"✅ Approved by <@{decided_by}>; running, progress below.",
            "running": f"✅ Approved by <@{decided_by}>; running, progress below.",
            "done": f"✅ Approved by <@{decided_by}>; finished.",
            "stopped": f"✅ Approved by <@{decided_by}>; stopped: {escape(reason or 'see below')}.",
            "rejected": f"❌ Rejected by <@{decided_by}>. Nothing was deleted.",
            "lapsed": "⌛ Lapsed: not approved within the approval window. Nothing was deleted.",
        }.get(state, escape(state))
        lines.append(outcome)
        blocks = [section("\n".join(lines))]
    return {"text": f"Purge request #{purge_id}: delete {_n(count)} stale contacts ({escape(state)})",
            "blocks": blocks}


def purge_progress(
    *, purge_id: int, state: str, approved: int, recheck: int | None, deleted: int, spared: int, refused: int,
    chunks: int, reason: str | None = None, can_resume: bool = False, skipped: int = 0,
) -> Message:
    head = {
        "running": f"⏳ Purge #{purge_id} running",
        "done": f"✅ Purge #{purge_id} finished",
        "stopped": f"🛑 Purge #{purge_id} stopped",
    }.get(state, f"Purge #{purge_id}: {escape(state)}")
    figures = [
        ("Deleted", f"{_n(deleted)} of {_n(approved)} approved"),
        ("Spared (active again or gone)", _n(spared)),
        ("Refused by Mautic", _n(refused)),
        ("Skipped: open data-subject request", _n(skipped)),
        ("Chunks", _n(chunks)),
    ]
    if recheck is not None:
        figures.append(("Still stale at execution", _n(recheck)))
    blocks: list[Block] = [section(f"*{head}*"), fields(figures)]
    if reason:
        blocks.append(section(f"Reason: {escape(reason)}"))
    if can_resume:
        blocks.append(actions(f"purge_resume:{purge_id}", button(
            "Resume purge", PurgeAction.RESUME, ref_value(purge_id),
            confirm=confirm_dialog("Resume the purge?", "It continues after the last finished chunk, re-checking "
                                   "every contact first.", "Resume", danger=True))))
    blocks.append(context("Each chunk of up to 200 is re-checked against the retention rule just before deletion "
                          "and recorded in the audit ledger. Each deleted contact is erased in the bot too: its "
                          "records go, a keyed hash stays (flagged suppressed if it had Do-Not-Contact) for "
                          "ERASED_HASH_RETENTION (Art. 17(3)(b)/(e)). Contacts with an open data-subject request are "
                          "skipped and left to that request."))
    text = (f"{head}: deleted {_n(deleted)} of {_n(approved)}, spared {_n(spared)}, refused {_n(refused)}, "
            f"skipped {_n(skipped)} (open request)")
    return {"text": text, "blocks": blocks}


def digest_queued(kind: str) -> str:
    return f"Working on the {kind} digest; it will appear in this channel in a moment."


def forms_queued() -> str:
    return "Checking the Mautic forms; the audit will appear in this channel in a moment."
