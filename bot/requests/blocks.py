"""Block Kit builders of the data-subject-request feature: the request message in every state, its
thread replies, the reject/extend modals, and the `/privacy requests` and `/privacy status` answers.

Pure: data in, dicts out. Subjects appear masked only; button values carry the request id only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from bot.clock import local_day
from bot.privacy import mask_email
from bot.requests import law
from bot.requests.deadlines import Deadline, Urgency, countdown, deadline_label, extension_label
from bot.requests.ids import IdentityInput, NoticeInput, ReasonInput, RequestButton, RequestModal
from bot.requests.model import CleanupPlace, IdentityMethod, RequestKind, RequestState
from bot.requests.view import RequestInfo
from bot.slack.blocks import (
    SECTION_TEXT_LIMIT,
    Block,
    actions,
    button,
    cap_blocks,
    checkbox_input,
    choice_input,
    confirm_dialog,
    context,
    date_input,
    escape,
    fields,
    header,
    modal,
    reason_input,
    section,
    text_input,
    truncate,
)
from bot.slack.buttons import ref_value

REASON_MAX = 1000  # characters of a reject/extend reason; the listener cuts a longer one to this

_STATE_ICON = {
    RequestState.FILED: "🕓",
    RequestState.VERIFIED: "🪪",
    RequestState.APPROVED: "✅",
    RequestState.RUNNING: "⚙️",
    RequestState.CLEANUP: "🧽",
    RequestState.DONE: "✔️",
    RequestState.FAILED: "❗",
    RequestState.REJECTED: "⛔",
    RequestState.LAPSED: "⌛",
}


def _day(moment: datetime | date | None) -> str:
    if moment is None:
        return "—"
    return moment.strftime("%Y-%m-%d %H:%M UTC") if isinstance(moment, datetime) else moment.isoformat()


def _who(user: str | None) -> str:
    return f"<@{escape(user)}>" if user else "the bot"


def due_text(info: RequestInfo, today: date) -> str:
    text = f"{info.due_date.isoformat()} ({deadline_label(info.regime)}"  # type: ignore[arg-type]
    text += ", extended" if info.extended_at else ""
    text += f"; {escape(info.due_note)}, so the next working day)" if info.due_note else ")"
    if info.awaiting_answer:
        text += f" — {countdown(info.due_date, today).text}"
    return text


def told_text(info: RequestInfo, today: date) -> str | None:
    """What the requester has been told so far: receipt confirmed (a sub-deadline under CCPA), the
    extension notice, the answer."""
    lines = []
    if info.acknowledged_at:
        lines.append(f"receipt confirmed {_day(info.acknowledged_at)} by {_who(info.acknowledged_by)}")
    elif info.acknowledgement_due and info.state.is_open:
        left = countdown(info.acknowledgement_due, today)
        # §7021(a): the confirmation also says, in general, how the identity is verified and when to expect the
        # answer (unless the request was already granted or denied).
        lines.append(f"confirm receipt by {info.acknowledgement_due.isoformat()} (CCPA §7021(a): 10 business "
                     f"days; say how you verify identity and when to expect the answer) — {left.text}")
    if info.extension_notified_on:
        lines.append(f"extension notice sent {info.extension_notified_on.isoformat()}")
    if info.responded_at:
        lines.append(f"answer sent {_day(info.responded_at)} by {_who(info.responded_by)}")
    elif info.state in (RequestState.DONE, RequestState.REJECTED):
        lines.append("answer not yet recorded as sent: the request stays open until it is")
    return "\n".join(lines) or None


def contacts_text(info: RequestInfo) -> str:
    found = info.contacts_found
    if info.erased:
        return "not kept after the erasure"
    if found is None:
        return "looking up exact email matches in Mautic…"
    if not found:
        return "none found: no Mautic contact has exactly this address"
    ids = ", ".join(f"#{i}" for i in found[:20]) + (" …" if len(found) > 20 else "")
    return f"{len(found)} ({ids})"


def request_message(info: RequestInfo, *, today: date) -> dict[str, Any]:
    """The request's one message in the privacy channel, as it should look in its current state."""
    icon = _STATE_ICON[info.state]
    title = f"{info.kind.heading} #{info.id}"
    pairs = [
        ("Type", f"{info.kind.heading} ({info.kind.article})"),
        ("Subject", escape(info.subject_masked)),
        ("Filed by", _who(info.filed_by)),
        ("Received", f"{info.received_day.isoformat()} (filed {_day(info.received_at)})"),
        ("Regime", info.regime.upper()),
        ("Legal due date", due_text(info, today)),
        *([("Requester told", told)] if (told := told_text(info, today)) else []),
        ("Mautic contacts", contacts_text(info)),
        ("State", f"{icon} {state_label(info)}"),
    ]
    if info.kind is RequestKind.RECTIFICATION and info.changed_fields:
        pairs.append(("Fields to correct", ", ".join(f"`{escape(f)}`" for f in info.changed_fields)))
    if info.package_prepared:
        pairs.append(("Package", _package_text(info)))
    blocks: list[Block] = [header(title), fields(pairs)]
    if info.note:
        blocks.append(context(f"Note: {escape(truncate(info.note, 500))}"))
    history = decision_lines(info)
    if history:
        blocks.append(context(*history[:10]))
    buttons = _buttons(info)
    if buttons:
        # A new block_id per state so clients redraw the buttons after each update (slack.md §2.6).
        marks = "".join("x" if done else "o" for done in (info.extended_at, info.acknowledged_at, info.responded_at,
                                                           info.lifted_at, info.released_at))
        blocks.append(actions(f"request-{info.id}-{info.state.value}-{marks}", *buttons))
    text = f"{icon} {title}: {escape(info.subject_masked)} — {info.state.label}, due {info.due_date.isoformat()}"
    return {"text": text, "blocks": cap_blocks(blocks)}


def _package_text(info: RequestInfo) -> str:
    if info.released_at:
        return f"released by {_who(info.released_by)} on {_day(info.released_at)}"
    if info.erased:
        return "deleted unreleased: the person was erased since"
    if info.package_expired:
        return ("deleted unreleased: nobody released it in time (EXPORT_LINK_TTL after preparation); "
                "file a new request for a fresh package")
    return "prepared; an approver who did not file the request reviews it and presses *Release to requester*"


def state_label(info: RequestInfo) -> str:
    if info.state is RequestState.FILED and not info.kind.needs_identity:
        return f"Waiting for approval (no identity verification: {info.kind.no_identity_basis})"
    return info.state.label


def marking_done_reply(info: RequestInfo, contact_ids: Sequence[int], tag: str) -> dict[str, Any]:
    if not contact_ids:
        return reply(f"✔️ {info.kind.heading} #{info.id}: no Mautic contact has exactly this address; nothing to "
                     "mark. Tell the requester.")
    ids = ", ".join(f"#{i}" for i in contact_ids[:20])
    return reply(f"✔️ {info.kind.heading} #{info.id} applied to {len(contact_ids)} contact(s) ({ids}): "
                 f"Do-Not-Contact for email and the tag `{escape(tag)}`. Tell the requester it is done.")


def objection_done_reply(info: RequestInfo, contact_ids: Sequence[int], removed: Mapping[str, Sequence[int]],
                         segments_listed: bool) -> dict[str, Any]:
    if not contact_ids:
        return reply(f"✔️ {info.kind.heading} #{info.id}: no Mautic contact has exactly this address; nothing to "
                     "mark. The objection is recorded: a later form submission without new consent is flagged. "
                     "Tell the requester.")
    ids = ", ".join(f"#{i}" for i in contact_ids[:20])
    count = sum(len(v) for v in removed.values())
    if segments_listed:
        segments = f"removed from {count} marketing segment membership(s)"
    else:
        segments = "no marketing segments are listed in the policy file (`marketing_segments`), so none were left"
    return reply(f"✔️ {info.kind.heading} #{info.id} applied to {len(contact_ids)} contact(s) ({ids}): "
                 f"Do-Not-Contact for email (comment \"Art. 21 objection\"); {segments}. A later form submission "
                 "without new consent is flagged. Tell the requester it is done.",
                 more=["Art. 21(3): the data may no longer be processed for direct marketing."])


def lifted_reply(info: RequestInfo, contact_ids: Sequence[int]) -> dict[str, Any]:
    return reply(f"🔓 Restriction #{info.id} lifted by {_who(info.lifted_by)}: Do-Not-Contact and the tag "
                 f"`restricted` removed from {len(contact_ids)} contact(s).",
                 more=["Art. 18(3): the requester must be told before a restriction is lifted."])


def decision_lines(info: RequestInfo) -> list[str]:
    lines = []
    if info.verified_by:
        lines.append(f"🪪 Identity verified by {_who(info.verified_by)} on {_day(info.verified_at)}"
                     f"{_identity_method(info)}")
    if info.extended_by:
        reason = escape(truncate(info.extension_reason or "", 300))
        lines.append(f"⏳ Extended by {_who(info.extended_by)} on {_day(info.extended_at)} "
                     f"(original due {info.original_due_date.isoformat()}): {reason}")
    if info.approved_by:
        lines.append(f"✅ Approved by {_who(info.approved_by)} on {_day(info.approved_at)}")
    if info.rejected_by:
        lines.append(f"⛔ Rejected by {_who(info.rejected_by)} on {_day(info.rejected_at)}: "
                     f"{escape(truncate(info.reject_reason or '', 300))}")
    if info.state is RequestState.FAILED and info.failure:
        lines.append(f"❗ {escape(truncate(info.failure, 300))}")
    if info.state is RequestState.LAPSED:
        lines.append("⌛ The approval lapsed before the request ran; file it again if it is still wanted.")
    if info.completed_at:
        lines.append(f"✔️ Completed on {_day(info.completed_at)}")
    return lines


def _buttons(info: RequestInfo) -> list[Block]:
    value = ref_value(info.id)
    state = info.state
    out: list[Block] = []
    if state is RequestState.FILED and info.kind.needs_identity:
        out.append(button("Identity verified", RequestButton.VERIFY, value))
    if state in (RequestState.FILED, RequestState.VERIFIED):
        if info.kind is RequestKind.ERASURE:
            confirm = confirm_dialog(
                f"Erase request #{info.id}?",
                f"This deletes every Mautic contact with the address {escape(info.subject_masked)} and purges the "
                "bot's own records. It cannot be undone.",
                "Erase",
                danger=True,
            )
            out.append(button("Approve erasure", RequestButton.APPROVE, value, style="danger", confirm=confirm))
        else:
            out.append(button("Approve", RequestButton.APPROVE, value, style="primary"))
        out.append(button("Reject", RequestButton.REJECT, value))
    if (state in (RequestState.FILED, RequestState.VERIFIED, RequestState.APPROVED) and not info.extended_at
            and info.kind.extendable):
        out.append(button("Extend", RequestButton.EXTEND, value))
    if state is RequestState.FAILED:
        out.append(button("Retry", RequestButton.RETRY, value, style="primary"))
    if state.is_open and info.acknowledged_at is None:
        out.append(button("Receipt confirmed to requester", RequestButton.ACKNOWLEDGE, value))
    if info.restriction_in_force:
        out.append(button("Lift restriction", RequestButton.LIFT, value))
    if info.awaiting_release:
        out.append(button("Release to requester", RequestButton.RELEASE, value, style="primary"))
    elif state in (RequestState.DONE, RequestState.REJECTED) and info.responded_at is None:
        out.append(button("Answer sent to requester", RequestButton.RESPOND, value, style="primary"))
    return out


# ---- thread replies ------------------------------------------------------------------------------


def reply(text: str, *, more: Sequence[str] = ()) -> dict[str, Any]:
    blocks: list[Block] = [section(text)]
    if more:
        blocks.append(context(*more[:10]))
    return {"text": truncate(text, 3000), "blocks": blocks}


def _identity_method(info: RequestInfo) -> str:
    if not info.verification_method:
        return ""
    label = IdentityMethod(info.verification_method).label
    return (f" ({label}: {escape(truncate(info.verification_note, 200))})" if info.verification_note
            else f" ({label})")


def decision_reply(info: RequestInfo, action: str, actor: str, *, reason: str | None = None,
                   timezone: str = "UTC") -> dict[str, Any]:
    """``timezone``: DEADLINE_TIMEZONE, whose calendar says whether a rejection came after the first period."""
    who = _who(actor)
    if action == "verify":
        return reply(f"🪪 {who} verified the requester's identity{_identity_method(info)}.")
    if action == "approve":
        return reply(f"✅ {who} approved request #{info.id}. It runs now; progress follows in this thread.")
    if action == "reject":
        late = law.late_rejection_warning(info.regime, info.original_due_date,
                                          local_day(info.rejected_at or info.received_at, timezone),
                                          due=info.due_date)
        return reply(f"⛔ {who} rejected request #{info.id}.\n>*Reason:* {escape(truncate(reason or '', 1000))}",
                     more=[law.rejection_duty(info.regime, info.kind.value), *([late] if late else [])])
    if action == "extend":
        return reply(f"⏳ {who} extended request #{info.id} {extension_label(info.regime)}: new due date "  # type: ignore[arg-type]
                     f"*{info.due_date.isoformat()}* (was {info.original_due_date.isoformat()}).\n"
                     f">*Reason:* {escape(truncate(reason or '', 1000))}",
                     more=[law.extension_duty(info.regime)])  # type: ignore[arg-type]
    if action == "retry":
        return reply(f"🔁 {who} asked for another run of request #{info.id}.")
    if action == "lift":
        return reply(f"🔓 {who} lifted restriction #{info.id}; removing Do-Not-Contact and the tag in Mautic.")
    if action == "acknowledge":
        return reply(f"📨 {who} recorded that receipt of request #{info.id} was confirmed to the requester.")
    if action == "release":
        return reply(f"📤 {who} released the access package of request #{info.id}; the delivery follows here.")
    if action == "respond":
        return reply(f"📬 {who} recorded that the answer to request #{info.id} went out to the requester. "
                     "The request is closed.")
    return reply(f"{who}: {escape(action)}")


def contacts_reply(info: RequestInfo) -> dict[str, Any]:
    found = info.contacts_found or ()
    if not found:
        return reply("🔎 No Mautic contact has exactly this email address. That is a valid outcome: "
                     + {RequestKind.ACCESS: "the answer to the requester is that we hold no marketing record, "
                                            "plus what the bot itself holds.",
                        RequestKind.ERASURE: "there is nothing to delete in Mautic; the bot still purges its own "
                                             "records when the request is approved.",
                        RequestKind.RECTIFICATION: "there is nothing to correct in Mautic."}[info.kind])
    return reply(f"🔎 Mautic contacts with exactly this email address: *{len(found)}* — "
                 + ", ".join(f"#{i}" for i in found[:50]))


def lookup_failed_reply() -> dict[str, Any]:
    return reply("⚠️ Mautic could not be reached to look up contacts; the lookup runs again when the "
                 "request is executed.")


def progress_reply(text: str) -> dict[str, Any]:
    return reply(f"⚙️ Working: {text}")


# A context block holds at most 10 elements (Block Kit reference); the access reply's context needs two of
# them for what the bot holds and the warning not to forward the package in Slack, whatever the contacts.
ACCESS_CONTACT_LINES = 8
ACCESS_SAFETY_LINE = "Send it to the requester over a channel you trust; do not forward it in Slack."


def _contact_lines(counts: dict[str, Any]) -> list[str]:
    contacts = counts.get("contacts", [])
    shown = contacts if len(contacts) <= ACCESS_CONTACT_LINES else contacts[:ACCESS_CONTACT_LINES - 1]
    lines = [f"contact #{c['id']}: " + (
        "no longer in Mautic" if not c.get("found", True) else
        f"{c['fields']} fields, {c['dnc']} DNC, {c['segments']} segments, {c['campaigns']} campaigns, "
        f"{c['companies']} companies, {c['notes']} notes for review, {c['timeline']:,} timeline events")
        for c in shown]
    if len(shown) < len(contacts):
        lines.append(f"…and {len(contacts) - len(shown)} more contacts, all in the package")
    return lines or ["no Mautic contact matched"]


NOTE_LINES = 10


def access_prepared_reply(info: RequestInfo, *, counts: dict[str, Any], notes: Sequence[dict[str, Any]],
                          mautic_url: str | None) -> dict[str, Any]:
    """The package is built and sealed; nothing has gone out. An approver reviews and releases it."""
    bot_items = counts.get("bot_items", {})
    held = escape(", ".join(f"{k.replace('_', ' ')}: {n}" for k, n in bot_items.items()) or "nothing")
    text = (f"📦 Access package for request #{info.id} is prepared (not yet sent): `data.json` and `summary.html` "
            "(the data itself, purposes, recipients, retention, what it cannot contain, and rights). Staff "
            "identities are left out. An approver who did not file the request presses *Release to requester*; "
            "only then is a link made.")
    if notes:
        base = (mautic_url or "").rstrip("/")
        listed = []
        for note in notes[:NOTE_LINES]:
            where = f"<{base}/s/contacts/view/{int(note['contact_id'])}|contact #{int(note['contact_id'])}>" \
                if base else f"contact #{int(note['contact_id'])}"
            listed.append(f"• note {escape(str(note.get('id')))} ({escape(str(note.get('type')))}, "
                          f"{escape(str(note.get('date'))[:10])}) on {where}")
        more = f"\n…and {len(notes) - NOTE_LINES} more" if len(notes) > NOTE_LINES else ""
        text += (f"\n*{len(notes)} staff note(s) are listed for review, not included* (Art. 15(4): they may name "
                 "other people). Read them in Mautic and send what may go with the answer:\n" + "\n".join(listed)
                 + more)
    blocks: list[Block] = [section(truncate(text, SECTION_TEXT_LIMIT)),
                           context(*_contact_lines(counts), f"Held by the bot: {held}")]
    blocks.append(actions(f"release-{info.id}", button("Release to requester", RequestButton.RELEASE,
                                                       ref_value(info.id), style="primary")))
    return {"text": truncate(text, 3000), "blocks": blocks}


def access_released_reply(info: RequestInfo, *, link: str | None, expires: datetime | None,
                          max_downloads: int | None = None) -> dict[str, Any]:
    if link is None:
        where = (f"The package is attached to this thread; it is deleted from Slack on {_day(expires)} "
                 "(or when the person is erased).")
    else:
        cap = f", {max_downloads} download(s)" if max_downloads else ""
        where = (f"Link for the requester (opens a page with a Download button; valid until {_day(expires)}{cap}, "
                 f"every download is audited):\n{link}")
    return reply(f"📬 Access package for request #{info.id}, released by {_who(info.released_by)}.\n{where}",
                 more=[ACCESS_SAFETY_LINE, "Press *Answer sent to requester* once it went out."])


def release_failed_reply(info: RequestInfo, message: str, *, kept_until: datetime | None) -> dict[str, Any]:
    then = (f"The package stays prepared until {_day(kept_until)}: press *Release to requester* to try again; "
            "after that day it is deleted unreleased." if kept_until is not None
            else "The package file is gone; file a new request to prepare a fresh one.")
    return reply(f"❗ The access package of request #{info.id} could not be delivered: "
                 f"{escape(truncate(message, 500))}\n{then}")


def prepared_expired_reply(info: RequestInfo, ttl_days: float) -> dict[str, Any]:
    return reply(f"🗑️ The access package of request #{info.id} was not released within {ttl_days:g} day(s) of its "
                 "preparation (EXPORT_LINK_TTL) and has been deleted; nothing went out. File a new request to "
                 "prepare a fresh package.")


# Why the keyed hash outlives an erasure (README, "What the bot keeps after an erasure").
def kept_after_erasure(hash_retention: timedelta) -> str:
    days = hash_retention.total_seconds() / 86400
    return (
        "The bot keeps only a keyed hash of the address, the request id, its kind, dates and who decided: to show "
        "the erasure was carried out and to defend it (GDPR Art. 17(3)(b) and (e)) and, for a person who had "
        f"Do-Not-Contact, to keep them suppressed if they are imported again. It is deleted after {days:g} days "
        "(ERASED_HASH_RETENTION)."
    )


def erasure_deleted_reply(info: RequestInfo, *, deleted: Sequence[int], purged: dict[str, Any],
                          redacted: int, hash_retention: timedelta) -> dict[str, Any]:
    """The Mautic deletes and the bot's own purge are done; the request now waits for its clean-up checklist."""
    gone = ", ".join(f"#{i}" for i in deleted) or "none (no contact matched)"
    purged_text = escape(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in purged.items()) or "nothing held")
    return reply(
        f"🧹 Erasure #{info.id}: contacts deleted in Mautic ({gone}; the API no longer finds them). The bot's own "
        f"store was purged ({purged_text}) and {redacted} earlier bot message(s) in Slack were redacted.\n"
        "*Not done yet:* Mautic keeps data its API cannot remove, and recipients must be told (Art. 19). "
        "Tick each line of the checklist below once it is dealt with; the erasure is done when every line is.",
        more=[kept_after_erasure(hash_retention)],
    )


_LINE_ICON = {"open": "⬜", "done": "✅", "not_applicable": "➖"}


def cleanup_checklist(request_id: int, lines: Sequence[Any], counted: dict[str, int | None]) -> dict[str, Any]:
    """The checklist message: one section per line, with Done / Not applicable while it is open.

    ``lines``: ``storage.erasure_cleanup.CleanupLine`` rows (duck-typed); ``counted``: rows the stats API
    counted before the delete, per Mautic table (None: not exposed on this instance)."""
    open_count = sum(1 for line in lines if line.state == "open")
    title = (f"Erasure #{request_id}: clean-up checklist ({len(lines) - open_count} of {len(lines)} done)")
    blocks: list[Block] = [header(truncate(title, 150))]
    for line in lines:
        place = CleanupPlace(line.place)
        name = place.label if place is not CleanupPlace.RECIPIENT else f"{place.label}: {escape(line.recipient or '')}"
        text = f"{_LINE_ICON.get(line.state, '⬜')} *{name}*"
        if line.state == "open":
            text += f"\n{place.how}{_counted(place, counted)}"
        else:
            what = "done" if line.state == "done" else "not applicable"
            text += f" — {what}, marked by {_who(line.decided_by)} on {_day(line.decided_at)}"
        blocks.append(section(truncate(text, SECTION_TEXT_LIMIT)))
        if line.state == "open":
            value = ref_value(line.id)
            blocks.append(actions(f"cleanup-{line.id}-open", button("Done", RequestButton.CLEANUP_DONE, value,
                                                                       style="primary"),
                                  button("Not applicable", RequestButton.CLEANUP_NOT_APPLICABLE, value)))
    if open_count == 0:
        blocks.append(context(f"✔️ Every line is ticked: erasure #{request_id} is done."))
    text = f"{title}: " + ", ".join(
        f"{CleanupPlace(line.place).label} ({line.state.replace('_', ' ')})" for line in lines)
    return {"text": truncate(text, 3000), "blocks": cap_blocks(blocks)}


def _counted(place: CleanupPlace, counted: dict[str, int | None]) -> str:
    table = {"email_stats": "email_stats", "form_results": "form_submissions"}.get(place.value)
    if table is None or table not in counted:
        return ""
    n = counted[table]
    if n is None:
        return " This Mautic does not expose the table through its stats API: check it by hand."
    return f" Counted through the stats API before the delete: {n} row(s)."


def erasure_done_reply(info: RequestInfo, *, hash_retention: timedelta) -> dict[str, Any]:
    return reply(f"✔️ Erasure #{info.id} done: every clean-up line is ticked. Record the answer to the requester "
                 "with *Answer sent to requester*.", more=[kept_after_erasure(hash_retention)])


def rectification_reply(info: RequestInfo, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Before/after per contact. Field names and values are shown so approvers can check the correction
    took; email values are masked because the channel must never show a clear address."""
    if not rows:
        return reply(f"✏️ Rectification #{info.id}: no Mautic contact has this address, so nothing was changed.")
    lines = []
    for row in rows:
        lines.append(f"*Contact #{row['id']}*")
        for change in row["changes"]:
            ok = "✅" if change["applied"] else "⚠️ not applied"
            lines.append(f"• `{escape(str(change['field']))}`: {_shown(change['field'], change['before'])} → "
                         f"{_shown(change['field'], change['after'])} {ok}")
    return reply(f"✏️ Rectification #{info.id} applied and read back from Mautic:\n" + "\n".join(lines))


def _shown(field_name: str, value: Any) -> str:
    if value in (None, ""):
        return "_(empty)_"
    text = str(value)
    if field_name == "email" or "@" in text:
        return escape(mask_email(text))
    return f"“{escape(truncate(text, 200))}”"


def failed_reply(info: RequestInfo, error: str, attempts: int) -> dict[str, Any]:
    return reply(f"❗ Request #{info.id} failed after {attempts} attempt(s): {escape(truncate(error, 500))}\n"
                 "Fix the cause, then press *Retry* on the request message.")


def lapsed_reply(info: RequestInfo, ttl_days: float) -> dict[str, Any]:
    return reply(f"⌛ The approval of request #{info.id} lapsed: it was not executed within {ttl_days:g} days "
                 f"(APPROVAL_TTL). The request is back to “{RequestState.VERIFIED.label}” and still due "
                 f"*{info.due_date.isoformat()}*; an approver can approve it again.")


def reminder_reply(info: RequestInfo, today: date) -> dict[str, Any]:
    left = countdown(info.due_date, today)
    icon = "🚨" if left.urgency is Urgency.OVERDUE else "⏰"
    return reply(f"{icon} Request #{info.id} is {left.text} (legal due date {info.due_date.isoformat()}, "
                 f"{law.deadline_basis(info.regime, info.kind.value)}{', extended' if info.extended_at else ''}); "
                 f"state: {info.state.label}.")


def redacted_notice(request_id: int | None = None) -> dict[str, Any]:
    what = f" (erasure request #{request_id})" if request_id else ""
    return {"text": f"🔒 Redacted: this message concerned a data subject who has since been erased{what}.",
            "blocks": [context(f"🔒 Redacted: this message concerned a data subject who has since been erased{what}.")]}


# ---- modals --------------------------------------------------------------------------------------


def _reason_input(label: str, placeholder: str) -> Block:
    return reason_input(ReasonInput.BLOCK, ReasonInput.ACTION, label=label, placeholder=placeholder, min_length=3,
                        max_length=REASON_MAX)


def identity_modal(info: RequestInfo) -> dict[str, Any]:
    """Asks the verifier how the requester's identity was checked; the method is recorded with the decision."""
    return modal(RequestModal.VERIFY, ref=ref_value(info.id), title=f"Verify request #{info.id}", submit="Verified",
                 blocks=[
                     section(f"{info.kind.heading} for {escape(info.subject_masked)}. Confirm that the "
                             "requester is the data subject. Use what you already know about them "
                             "(EDPB Guidelines 01/2022): ask for an ID document only when nothing else works."),
                     choice_input(IdentityInput.METHOD_BLOCK, IdentityInput.METHOD_ACTION,
                                  label="How did you verify it?",
                                  options=[(m.value, m.label) for m in IdentityMethod]),
                     text_input(IdentityInput.NOTE_BLOCK, IdentityInput.NOTE_ACTION,
                                label="Details (required for Other)", max_length=200,
                                placeholder="e.g. called back on the number in our CRM"),
                 ])


def reject_modal(info: RequestInfo, today: date) -> dict[str, Any]:
    late = law.late_rejection_warning(info.regime, info.original_due_date, today, due=info.due_date)
    duty = law.rejection_duty(info.regime, info.kind.value)
    return modal(RequestModal.REJECT, ref=ref_value(info.id), title=f"Reject request #{info.id}", submit="Reject",
                 blocks=[
                     section(f"{info.kind.heading} for {escape(info.subject_masked)}. {duty} "
                             "A reason is required; it is recorded in the audit ledger."),
                     *([section(late)] if late else []),
                     _reason_input("Reason", "e.g. identity could not be verified after two attempts"),
                 ])


def extend_modal(info: RequestInfo, extended: Deadline, today: date) -> dict[str, Any]:
    """``extended``: the due date the extension gives (counted from receipt, rolled forward)."""
    rolled = f"; {escape(extended.note)}, so the next working day" if extended.note else ""
    return modal(RequestModal.EXTEND, ref=ref_value(info.id), title=f"Extend request #{info.id}", submit="Extend",
                 blocks=[
                     section(f"The due date moves from *{info.original_due_date.isoformat()}* to "
                             f"*{extended.due.isoformat()}* ({extension_label(info.regime)}{rolled}). "  # type: ignore[arg-type]
                             "This is possible once, "
                             "and the requester must be told the reasons before the original due date."),
                     _reason_input("Reason (complexity or number of requests)",
                                   "e.g. 14 linked contacts across two brands"),
                     checkbox_input(NoticeInput.CONFIRM_BLOCK, NoticeInput.CONFIRM_ACTION,
                                    label="Notice to the requester", value=NoticeInput.TOLD,
                                    text="The requester was told of the extension and its reasons"),
                     date_input(NoticeInput.DATE_BLOCK, NoticeInput.DATE_ACTION, label="Told on", initial=today),
                 ])


# ---- answers to /privacy requests and /privacy status ---------------------------------------------


# `/privacy requests` lists the most urgent requests (they come ordered by due date) and counts the rest.
# Slack caps a message at 50 blocks, a section's text at 3,000 characters and the message text at 40,000
# (slack.md §2.6; chat.postMessage "msg_too_long"); these keep the answer well inside all three.
LIST_SHOWN_MAX = 100  # request lines in the answer; the rest are counted in "…and N more open requests"
LIST_LINES_PER_SECTION = 10
LIST_TEXT_BUDGET = 20_000  # characters of listed lines in the plain-text fallback
LIST_FOOTER = escape("`/privacy status <id>` shows one request with its history.")


def _list_line(info: RequestInfo, today: date) -> tuple[str, Urgency]:
    if not info.awaiting_answer:  # answered; listed only while its restriction is in force
        return (f"*#{info.id}* {info.kind.heading} · {escape(info.subject_masked)} · restriction in force",
                Urgency.ON_TIME)
    left = countdown(info.due_date, today)
    mark = {Urgency.OVERDUE: "🚨 OVERDUE", Urgency.DUE_SOON: "⏰ due soon", Urgency.ON_TIME: ""}[left.urgency]
    days = f"{left.days_left} day(s) left" if left.days_left >= 0 else f"{-left.days_left} day(s) late"
    line = (f"*#{info.id}* {info.kind.heading} · {escape(info.subject_masked)} · {info.state.label} · "
            f"due {info.due_date.isoformat()} · {days} {mark}").rstrip()
    return truncate(line, 500), left.urgency


def _sections_of(lines: Sequence[str]) -> list[Block]:
    """Lines packed into sections of at most 10 lines and 3,000 characters, never cut mid-line."""
    out: list[list[str]] = []
    for line in lines:
        if out and len(out[-1]) < LIST_LINES_PER_SECTION and len("\n".join([*out[-1], line])) <= SECTION_TEXT_LIMIT:
            out[-1].append(line)
        else:
            out.append([line])
    return [section("\n".join(chunk)) for chunk in out]


def requests_list(infos: Sequence[RequestInfo], *, today: date) -> dict[str, Any]:
    if not infos:
        return {"text": "No open data-subject requests.", "blocks": [section("No open data-subject requests. 🎉")]}
    ordered = sorted(infos, key=lambda info: (info.due_date, info.id))  # most urgent first, as the store gives them
    listed = [_list_line(info, today) for info in ordered]
    overdue = sum(urgency is Urgency.OVERDUE for _, urgency in listed)
    soon = sum(urgency is Urgency.DUE_SOON for _, urgency in listed)
    shown: list[str] = []
    for line, _ in listed[:LIST_SHOWN_MAX]:
        if sum(len(s) + 1 for s in shown) + len(line) > LIST_TEXT_BUDGET:
            break
        shown.append(line)
    hidden = len(listed) - len(shown)
    summary = f"{len(infos)} open request(s): {overdue} overdue, {soon} due soon (≤ 5 days)."
    more = [f"…and {hidden} more open request(s), due later than those above."] if hidden else []
    blocks: list[Block] = [header("Open data-subject requests"), section(summary), *_sections_of(shown),
                           *(context(m) for m in more), context(LIST_FOOTER)]
    text = "\n".join([summary, *shown, *more, LIST_FOOTER])
    return {"text": text, "blocks": cap_blocks(blocks, what="requests")}


def request_status(info: RequestInfo, history: Sequence[tuple[datetime, str, str, str, str | None]], *,
                   today: date) -> dict[str, Any]:
    """``history`` rows: (at, actor, action, outcome, reason)."""
    message = request_message(info, today=today)
    blocks = [b for b in message["blocks"] if b.get("type") != "actions"]
    if history:
        lines = [f"{_day(at)} · {_who(actor)} · {escape(action)}" + ("" if outcome == "accepted" else " (refused)")
                 + (f": {escape(truncate(reason, 200))}" if reason else "")
                 for at, actor, action, outcome, reason in history[-15:]]
        blocks.append(section("*History*\n" + "\n".join(lines)))
    return {"text": message["text"], "blocks": cap_blocks(blocks)}
