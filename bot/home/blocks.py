"""The Home tab's view: pure, plain data in, a ``views.publish`` view out. Outside text is escaped."""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.home.model import Dashboard, DigestLink, OpenAlert, OpenRequest, Viewer
from bot.requests.deadlines import countdown
from bot.slack.blocks import Block, context, divider, escape, header, section, truncate

VIEW_BLOCK_LIMIT = 100  # Slack's limit for a Home tab view
LIST_LIMIT = 15  # rows per list; the rest is counted
DECIDABLE = ("filed", "verified")  # states in which an approver has something to decide
MEMBERS_ONLY = ("Only privacy requesters and approvers see the open requests, alerts and forms here. "
                "Ask a privacy approver if you need access.")


def message_link(workspace_url: str, channel: str | None, ts: str | None, label: str) -> str:
    """A link to a channel message: ``<workspace>/archives/<channel>/p<ts without the dot>``."""
    if not channel or not ts or not workspace_url:
        return label
    url = escape(f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}")
    return f"<{url}|{escape(label)}>"


def _request_line(r: OpenRequest, today: date, url: str) -> str:
    left = countdown(r.due_date, today)
    mark = {"overdue": "🚨 ", "due_soon": "⏰ "}.get(left.urgency.value, "")
    link = message_link(url, r.channel, r.message_ts, f"#{r.id}")
    return (f"{mark}{link} {escape(r.heading)} · {escape(r.subject_masked)} · {left.text} "
            f"(due {r.due_date.isoformat()}) · {escape(r.state_label)}")


def _alert_line(a: OpenAlert, url: str) -> str:
    folded = f" (+{a.folded} folded)" if a.folded else ""
    link = message_link(url, a.channel, a.message_ts, f"alert #{a.id}")
    kind = escape(a.kind.replace("_", " "))
    return f"{link} {kind}: {escape(truncate(a.title, 120))}{folded} · {a.created_at:%Y-%m-%d}"


def _digest_line(d: DigestLink, url: str) -> str:
    label = f"{d.kind.title()} digest"
    return f"{message_link(url, d.channel, d.message_ts, label)} · posted {d.posted_at:%Y-%m-%d %H:%M} UTC"


def _list(lines: list[str], empty: str) -> list[Block]:
    if not lines:
        return [context(empty)]
    blocks = [section("\n".join(lines[i:i + 5])) for i in range(0, min(len(lines), LIST_LIMIT), 5)]
    if len(lines) > LIST_LIMIT:
        blocks.append(context(f"…and {len(lines) - LIST_LIMIT} more."))
    return blocks


def home_view(board: Dashboard, viewer: Viewer, *, today: date) -> dict[str, Any]:
    url = board.workspace_url
    blocks: list[Block] = [header("Privacy operations"),
                           context(f"As of {today.isoformat()} · refreshed when something changes")]
    if not viewer.is_member:
        return {"type": "home", "blocks": [*blocks, section(MEMBERS_ONLY)]}
    if viewer.is_approver:
        mine = [r for r in board.requests if r.state in DECIDABLE and r.filed_by != viewer.user_id]
        blocks += [section("*Waiting for your decision*"),
                   *_list([_request_line(r, today, url) for r in mine]
                          + [_alert_line(a, url) for a in board.alerts],
                          "Nothing waits for your decision."),
                   divider()]
    blocks += [section(f"*Open requests* ({len(board.requests)})"),
               *_list([_request_line(r, today, url) for r in board.requests], "No open requests."),
               divider(),
               section(f"*Open consent alerts* ({board.alerts_total})"),
               *_list([_alert_line(a, url) for a in board.alerts], "No open consent alerts."),
               divider(),
               section("*Last digests*"),
               *_list([_digest_line(d, url) for d in board.digests], "No digest posted yet."),
               divider(),
               section("*Consent share per form, last 8 weeks*"),
               *_list([f"{escape(truncate(f.form_name or 'unnamed form', 80))}: "
                       + (f"{f.consent_share:.0%}" if f.consent_share is not None else "all exempt")
                       + f" of {f.submissions} submission{'s' if f.submissions != 1 else ''}"
                       for f in board.forms], "No form submissions in the last 8 weeks."),
               divider(),
               context(f"Audit ledger: {board.ledger_entries} entries · head "
                       + (f"`{escape(board.ledger_head[:16])}…`" if board.ledger_head else "none yet"))]
    if len(blocks) > VIEW_BLOCK_LIMIT:
        blocks = [*blocks[:VIEW_BLOCK_LIMIT - 1], context("…more than a Home tab can show.")]
    return {"type": "home", "blocks": blocks}
