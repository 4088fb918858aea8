"""Block Kit for the intake feature: alerts (open, folded burst, decided), thread notes, the dismiss
modal and the ``/privacy consent`` history. Pure: plain data in, message dicts out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.intake.ids import AlertAction, Decision, DismissModal, alert_actions_block
from bot.slack import blocks as kit
from bot.slack.blocks import (
    Block,
    actions,
    button,
    cap_blocks,
    confirm_dialog,
    context,
    escape,
    fields,
    section,
    truncate,
)
from bot.slack.buttons import ref_value

# What the dismiss modal accepts as a reason (the listener checks the same bounds on submit).
REASON_MIN = 3
REASON_MAX = 500

DECISION_LABELS: dict[str, str] = {
    Decision.DNC: "Mark Do-Not-Contact",
    Decision.RECONSENT: "Add to re-consent segment",
    Decision.DISMISS: "Dismiss",
}

_TITLES = {
    "consent_gap": (":warning:", "Consent gap"),
    "resubscribed_without_consent": (":rotating_light:", "Re-subscribed without consent"),
    "sent_after_withdrawal": (":rotating_light:", "Email sent after consent was withdrawn"),
    "erased_subject_reentered": (":rotating_light:", "Erased data subject re-entered"),
    "submitted_after_objection": (":rotating_light:", "Form submitted after an objection to direct marketing"),
    "unsubscribe": (":envelope:", "Consent withdrawn"),
    "dead_letter": (":warning:", "Unreadable webhook delivery kept as a dead letter"),
}


@dataclass(frozen=True)
class AlertView:
    """What an alert message shows; built by ``bot.intake.alerts.alert_view`` from the stored alert."""

    id: int
    kind: str
    state: str
    title: str  # form name, email name…
    email_display: str | None
    contact_url: str | None
    contact_id: int | None
    created_at: datetime
    missing_text: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    folded_count: int = 0
    reconsent_available: bool = False
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    outcome: str | None = None


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "unknown time"


def _contact(view: AlertView) -> str:
    who = escape(view.email_display or "(no email)")
    if view.contact_url and view.contact_id is not None:
        return f"{who} (<{escape(view.contact_url)}|contact #{view.contact_id} in Mautic>)"
    return who


def _summary_line(view: AlertView) -> str:
    icon, name = _TITLES.get(view.kind, (":grey_question:", escape(view.kind)))
    d = {key: escape(str(value)) for key, value in view.details.items()}
    title = escape(view.title)
    if view.kind == "consent_gap":
        return f"{icon} *{name}* on form *{title}*" + (f" (id {d['form_id']})" if d.get("form_id") else "")
    if view.kind == "resubscribed_without_consent":
        return (f"{icon} *{name}*: {_contact(view)} is contactable again on `{d.get('channel', 'email')}` "
                f"with no consent record newer than the withdrawal")
    if view.kind == "sent_after_withdrawal":
        return f"{icon} *{name}*: email *{title}* went to {_contact(view)}"
    if view.kind == "erased_subject_reentered":
        back = f"{icon} *{name}*: someone erased earlier is back in Mautic ({d.get('via', 'a webhook')})"
        if d.get("suppressed"):
            back += (". They had Do-Not-Contact when they were erased: keep them suppressed (mark Do-Not-Contact) "
                     "unless they gave consent anew")
        return back
    if view.kind == "submitted_after_objection":
        return (f"{icon} *{name}*: form *{title}* came from someone who objected to direct marketing "
                "(GDPR Art. 21(3)) and gave no new consent; keep them out of marketing")
    if view.kind == "unsubscribe":
        return f"{icon} *{name}*: {_contact(view)} is now `{d.get('new_status')}` on `{d.get('channel')}`"
    if view.kind == "dead_letter":
        return f"{icon} *{name}*"
    return f"{icon} *{name}*"


# Stands for the contact line, which is mrkdwn already (a link), among facts that are plain text.
_CONTACT_MARK = "\x00contact"


def _fact_pairs(view: AlertView) -> list[tuple[str, str]]:
    return [(name, _contact(view) if value is _CONTACT_MARK else escape(value))
            for name, value in _raw_fact_pairs(view, view.details)]


def _raw_fact_pairs(view: AlertView, d: dict[str, Any]) -> list[tuple[str, str]]:
    """Facts as plain text; _fact_pairs escapes them (the contact line is already mrkdwn)."""
    pairs: list[tuple[str, str]] = []
    if view.kind == "dead_letter":
        pairs.append(("Problem", str(d.get("problem", "not valid JSON"))))
        pairs.append(("Size", f"{d.get('bytes', '?')} bytes, kept as dead letter #{d.get('inbox_id', '?')}"))
        pairs.append(("Received", when(view.created_at)))
        return pairs
    if view.kind not in ("resubscribed_without_consent", "sent_after_withdrawal", "unsubscribe"):
        pairs.append(("Contact", _CONTACT_MARK))
    if view.kind == "consent_gap":
        pairs.append(("Missing", view.missing_text or "consent"))
        pairs.append(("Submitted", when(_parse(d.get("submitted_at")) or view.created_at)))
    elif view.kind == "resubscribed_without_consent":
        pairs.append(("Withdrawn", d.get("withdrawn_text") or "no withdrawal on record"))
        pairs.append(("Changed", when(_parse(d.get("changed_at")) or view.created_at)))
    elif view.kind == "sent_after_withdrawal":
        pairs.append(("Withdrawn", d.get("withdrawn_text") or "—"))
        pairs.append(("Sent", when(_parse(d.get("sent_at")) or view.created_at)))
    elif view.kind == "erased_subject_reentered":
        pairs.append(("Seen", when(view.created_at)))
    elif view.kind == "submitted_after_objection":
        pairs.append(("Objection carried out", when(_parse(d.get("objected_at")))))
        pairs.append(("Consent", view.missing_text or "none"))
        pairs.append(("Submitted", when(_parse(d.get("submitted_at")) or view.created_at)))
    elif view.kind == "unsubscribe":
        pairs.append(("When", when(_parse(d.get("withdrawn_at")) or view.created_at)))
    return pairs


def _parse(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _fold_line(view: AlertView) -> str | None:
    if view.folded_count <= 0:
        return None
    what = {
        "consent_gap": "submissions of this form lacked consent",
        "dead_letter": "unreadable deliveries arrived",
        "sent_after_withdrawal": "sends of this email went to withdrawn contacts",
        "unsubscribe": "withdrawals arrived",
    }.get(view.kind, "findings of this kind arrived")
    tail = " A decision here applies to all of them." if view.state == "open" else ""
    since = when(view.created_at)
    return f":package: Burst: {view.folded_count} more {what} since {since}; folded into this alert.{tail}"


def summary_text(view: AlertView) -> str:
    """The alert in one line of plain text (not escaped: fallback_text and dismiss_modal escape it)."""
    _icon, name = _TITLES.get(view.kind, ("", view.kind))
    about = view.title if view.kind in ("consent_gap", "sent_after_withdrawal", "submitted_after_objection") else ""
    who = view.email_display or ""
    parts = [name] + ([f"form {about}"] if view.kind == "consent_gap" else [about] if about else []) + [who]
    extra = f" (+{view.folded_count} more)" if view.folded_count else ""
    return truncate(": ".join(p for p in parts if p) + extra, 300)


def fallback_text(view: AlertView) -> str:
    return escape(summary_text(view))


def alert_message(view: AlertView) -> dict[str, Any]:
    """The alert as posted, and as updated (burst count, decided state)."""
    blocks: list[Block] = [section(_summary_line(view)), fields(_fact_pairs(view))]
    fold = _fold_line(view)
    if fold:
        blocks.append(context(fold))
    if view.state == "open":
        count = view.folded_count + 1
        scope = f" for all {count} contacts" if count > 1 else ""
        buttons = [
            button("Mark Do-Not-Contact", AlertAction.DNC, ref_value(view.id), style="danger",
                   confirm=confirm_dialog("Mark Do-Not-Contact?",
                                          f"Adds a manual Do-Not-Contact (email) in Mautic{scope}.", "Mark DNC",
                                          danger=True)),
        ]
        if view.reconsent_available:
            buttons.append(button("Add to re-consent segment", AlertAction.RECONSENT, ref_value(view.id),
                                  style="primary"))
        buttons.append(button("Dismiss", AlertAction.DISMISS, ref_value(view.id)))
        blocks.append(actions(alert_actions_block(view.id), *buttons))
        blocks.append(context(f"Alert #{view.id} · decisions are written to the audit ledger"))
    elif view.state == "decided":
        blocks.append(section(decision_line(view)))
    else:
        blocks.append(context(f"Alert #{view.id} · for information; also counted in the compliance digest"))
    return {"text": fallback_text(view), "blocks": cap_blocks(blocks)}


def decision_line(view: AlertView) -> str:
    label = escape(DECISION_LABELS.get(view.decision or "", view.decision or "decided"))
    line = f":white_check_mark: *{label}* by <@{escape(view.decided_by or '')}> at {when(view.decided_at)}"
    if view.reason:
        line += f"\n> {escape(truncate(view.reason, 500))}"
    if view.outcome:
        line += f"\n_{escape(view.outcome)}_"
    elif view.decision != "dismiss":
        line += "\n_Applying in Mautic…_"
    return line


def decision_thread_text(view: AlertView, members: int) -> str:
    label = escape(DECISION_LABELS.get(view.decision or "", view.decision or "decided"))
    scope = f" (applies to {members} contacts folded into this alert)" if members > 1 else ""
    text = f"<@{escape(view.decided_by or '')}> chose *{label}* at {when(view.decided_at)}{scope}."
    if view.reason:
        text += f"\nReason: {escape(truncate(view.reason, 500))}"
    if view.outcome:
        text += f"\nResult: {escape(view.outcome)}"
    return text


def already_decided_text(view: AlertView) -> str:
    label = escape(DECISION_LABELS.get(view.decision or "", view.decision or "decided"))
    return (f"Alert #{view.id} was already decided by <@{escape(view.decided_by or '')}> ({label}, "
            f"{when(view.decided_at)}). "
            "Nothing changed.")


def dismiss_modal(alert_id: int, summary: str) -> dict[str, Any]:
    return kit.modal(DismissModal.CALLBACK, ref=ref_value(alert_id), title="Dismiss alert", submit="Dismiss", blocks=[
        section(escape(truncate(summary, 2900))),
        kit.reason_input(DismissModal.REASON_BLOCK, DismissModal.REASON_INPUT, label="Why is no action needed?",
                     placeholder="e.g. consent given by phone, ticket 4411", min_length=REASON_MIN,
                     max_length=REASON_MAX),
    ])


@dataclass(frozen=True)
class HistoryRecord:
    at: datetime
    form: str
    given: bool
    exempt: bool
    values: dict[str, Any]
    label: str | None = None  # the consent box's text on the form revision it was collected under
    invalid: bool = False  # collected while the consent box was pre-ticked


@dataclass(frozen=True)
class HistoryWithdrawal:
    at: datetime
    channel: str
    status: str
    restored_at: datetime | None


@dataclass(frozen=True)
class HistoryAlert:
    id: int
    kind: str
    state: str
    at: datetime
    decision: str | None


def consent_history_message(
    email_display: str, records: list[HistoryRecord], withdrawals: list[HistoryWithdrawal],
    alerts: list[HistoryAlert],
) -> dict[str, Any]:
    title = f"Consent history for {escape(email_display)}"
    if not (records or withdrawals or alerts):
        text = f"{title}: nothing on record (no form submissions, withdrawals or alerts seen by the bot)."
        return {"text": text, "blocks": [section(text)]}
    blocks: list[Block] = [section(f"*{title}*")]
    plain: list[str] = [title]
    if records:
        lines = []
        for r in records:
            mark = "exempt form" if r.exempt else ("consent ✓" if r.given else "*no consent* ✗")
            if r.invalid:
                mark = "~consent~ *invalid*: the box was pre-ticked"
            shown = ", ".join(f"`{escape(k)}`={escape(truncate(str(v), 40))}" for k, v in r.values.items()
                              ) or "no consent field"
            label = f" · box read “{escape(truncate(r.label, 120))}”" if r.label else ""
            lines.append(f"• {when(r.at)} · form *{escape(r.form)}* · {mark} ({shown}){label}")
        blocks.append(section("*Form submissions*\n" + "\n".join(lines)))
        plain += ["Form submissions:", *lines]
    if withdrawals:
        lines = [
            f"• {when(w.at)} · `{escape(w.channel)}` → `{escape(w.status)}`"
            + (f" · contactable again {when(w.restored_at)}" if w.restored_at else "")
            for w in withdrawals
        ]
        blocks.append(section("*Withdrawals*\n" + "\n".join(lines)))
        plain += ["Withdrawals:", *lines]
    if alerts:
        lines = [
            f"• #{a.id} {_TITLES.get(a.kind, ('', escape(a.kind)))[1]} · {when(a.at)} · "
            + escape(DECISION_LABELS.get(a.decision, a.decision) if a.decision else a.state)
            for a in alerts
        ]
        blocks.append(section("*Alerts*\n" + "\n".join(lines)))
        plain += ["Alerts:", *lines]
    blocks.append(context("Only you see this. The lookup is recorded in the audit ledger."))
    return {"text": truncate("\n".join(plain), 3000), "blocks": cap_blocks(blocks)}
