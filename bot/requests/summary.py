"""``summary.html``: the access package as a person reads it (GDPR Art. 12(1): concise, intelligible, plain).

It shows the data itself — profile fields by their labels, segments, campaigns and companies by name,
Do-Not-Contact entries, consent records with the form and what the person was shown, a dated timeline —
then the Art. 15(1)(a)-(h) texts of the policy file (``not configured`` where it is silent, never a guessed
default) and what the package cannot contain. One self-contained page: no scripts and no external
resources (its Content-Security-Policy forbids loading any), laid out for a phone and for print.

Everything that came from outside (Mautic, forms, the policy file) goes through :func:`_e`, the one
escaping helper; the page is built here and nowhere else. No template engine: the page is one function
with one escape helper, which a test feeds hostile text through.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from bot.policy import NOT_CONFIGURED, AccessPolicy
from bot.requests import law

LEDGER_ROWS = 200  # ledger entries shown as rows; all are in data.json
CONSENT_ROWS = 200

# Mautic's DoNotContact reasons (LeadBundle/Entity/DoNotContact.php constants).
DNC_REASONS = {0: "contactable", 1: "you unsubscribed", 2: "the address bounced", 3: "set by our staff"}


class NoteForReview(NamedTuple):
    """A note staff wrote on a contact: listed (never its text) until someone reviewed it (Art. 15(4))."""

    id: Any
    contact_id: int
    type: str
    date: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "date": self.date,
                "status": "withheld until reviewed for other people's data (GDPR Art. 15(4))"}


class TimelineRow(NamedTuple):
    when: str
    kind: str
    what: str


def timeline_row(event: dict[str, Any]) -> TimelineRow:
    """One timeline event as a dated row: when, what kind, and its label (Mautic sends a string or
    ``{"label": …, "href": …}``)."""
    label = event.get("eventLabel")
    if isinstance(label, dict):
        label = label.get("label")
    kind = str(event.get("eventType") or event.get("event") or "event")
    return TimelineRow(str(event.get("timestamp") or ""), kind, str(label) if label not in (None, "") else "")


@dataclass
class ContactSummary:
    """What summary.html shows of one Mautic contact; bounded whatever the contact's size."""

    id: int
    found: bool = True
    profile: list[tuple[str, str]] = field(default_factory=list)  # (label, value)
    tags: list[str] = field(default_factory=list)
    ip_addresses: list[str] = field(default_factory=list)
    dnc: list[dict[str, Any]] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    campaigns: list[str] = field(default_factory=list)
    companies: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    notes: list[NoteForReview] = field(default_factory=list)
    timeline_total: int = 0
    timeline_by_type: dict[str, int] = field(default_factory=dict)
    timeline_rows: list[TimelineRow] = field(default_factory=list)

    def take(self, raw: dict[str, Any], *, dnc: list[dict[str, Any]], segments: list[dict[str, Any]],
             campaigns: list[dict[str, Any]], companies: list[dict[str, Any]], devices: list[dict[str, Any]],
             notes: list[dict[str, Any]]) -> None:
        self.profile = _profile(raw)
        self.tags = [str(t.get("tag")) for t in raw.get("tags") or [] if isinstance(t, dict) and t.get("tag")]
        self.ip_addresses = [str(ip.get("ipAddress") or ip.get("ip")) for ip in raw.get("ipAddresses") or []
                             if isinstance(ip, dict) and (ip.get("ipAddress") or ip.get("ip"))]
        self.dnc = list(dnc)
        self.segments = [str(s.get("name") or s.get("alias") or f"segment {s.get('id')}") for s in segments]
        self.campaigns = [str(c.get("name") or f"campaign {c.get('id')}") for c in campaigns]
        self.companies = [str(c.get("companyname") or c.get("name") or f"company {c.get('id')}") for c in companies]
        self.devices = [" ".join(str(d.get(k)) for k in ("device", "deviceBrand", "deviceOsName") if d.get(k))
                        or "a device" for d in devices]
        self.notes = [NoteForReview(n.get("id"), self.id, str(n.get("type") or "note"), str(n.get("dateTime") or ""))
                      for n in notes]


_DATES = (("dateAdded", "Record created"), ("dateIdentified", "Identified"), ("lastActive", "Last active"),
          ("dateModified", "Last changed"))


def _profile(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Every filled-in field by its label (Mautic's field groups; the flat ``all`` map only as a fallback)."""
    rows: list[tuple[str, str]] = []
    groups: dict[str, Any] = raw["fields"] if isinstance(raw.get("fields"), dict) else {}
    for name, group in groups.items():
        if name == "all" or not isinstance(group, dict):
            continue
        for alias, meta in group.items():
            if not isinstance(meta, dict):
                continue
            value = meta.get("normalizedValue", meta.get("value"))
            if value in (None, "", []):
                continue
            rows.append((str(meta.get("label") or alias), _text(value)))
    if not rows and isinstance(groups.get("all"), dict):
        rows = [(str(k), _text(v)) for k, v in groups["all"].items() if v not in (None, "", []) and k != "id"]
    if raw.get("points") not in (None, "") and not any(label.lower() == "points" for label, _ in rows):
        rows.append(("Points", _text(raw["points"])))
    stage = raw.get("stage")
    if isinstance(stage, dict) and stage.get("name"):
        rows.append(("Stage", str(stage["name"])))
    rows.extend((label, _date(raw[key])) for key, label in _DATES if raw.get(key))
    return rows


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value)


def _date(value: Any) -> str:
    """ISO timestamps shortened to what a person reads: ``2026-03-02 14:05``."""
    text = str(value or "")
    if len(text) >= 16 and text[4] == "-" and text[10] in "T ":
        return f"{text[:10]} {text[11:16]}"
    return text


def _e(value: Any) -> str:
    """The one way outside text enters the page."""
    return html.escape(str(value), quote=True)


def _list(items: Iterable[str], *, empty: str = "none") -> str:
    items = list(items)
    if not items:
        return f"<p class='none'>{_e(empty)}</p>"
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _table(caption: str, head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = list(rows)
    if not rows:
        return ""
    cells = "".join("<tr>" + "".join(f"<td data-label='{_e(h)}'>{_e(v)}</td>" for h, v in zip(head, row, strict=True))
                    + "</tr>" for row in rows)
    return (f"<table><caption>{_e(caption)}</caption><thead><tr>"
            + "".join(f"<th scope='col'>{_e(h)}</th>" for h in head) + f"</tr></thead><tbody>{cells}</tbody></table>")


def _configured(value: str | list[str] | None, contact: str) -> str:
    if value is None:
        return (f"<p class='nc'><strong>{NOT_CONFIGURED.capitalize()}.</strong> Our privacy settings do not state "
                f"this yet; ask {_e(contact)} and we will tell you.</p>")
    if isinstance(value, list):
        return _list(value)
    return f"<p>{_e(value)}</p>"


def _contact_section(n: int, total: int, c: ContactSummary) -> str:
    title = f"Marketing record {n} of {total}" if total > 1 else "Your marketing record"
    if not c.found:
        return (f"<section><h3>{_e(title)}</h3><p>This record (Mautic contact number {c.id}) was deleted or merged "
                "into another between our search and the preparation of this package.</p></section>")
    parts = [f"<section><h3>{_e(title)} <small>(Mautic contact number {c.id})</small></h3>",
             "<h4>Profile</h4>"]
    if c.profile:
        parts.append("<dl class='profile'>" + "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>"
                                                     for k, v in c.profile) + "</dl>")
    else:
        parts.append("<p class='none'>no profile fields filled in</p>")
    parts.append("<h4>Tags</h4>" + _list(c.tags))
    parts.append("<h4>IP addresses recorded</h4>" + _list(c.ip_addresses))
    parts.append("<h4>Do-Not-Contact entries</h4>")
    dnc_rows = [(_date(d.get("dateAdded")), d.get("channel") or "", DNC_REASONS.get(_int(d.get("reason")),
                 f"reason {d.get('reason')}"), d.get("comments") or "") for d in c.dnc]
    parts.append(_table("We will not contact you on these channels", ["Since", "Channel", "Why", "Comment"], dnc_rows)
                 or "<p class='none'>none: you may be contacted on the channels you agreed to</p>")
    parts.append("<h4>Segments (lists you are on)</h4>" + _list(c.segments))
    parts.append("<h4>Campaigns</h4>" + _list(c.campaigns))
    parts.append("<h4>Companies</h4>" + _list(c.companies))
    parts.append("<h4>Devices</h4>" + _list(c.devices))
    if c.notes:
        parts.append(f"<h4>Notes</h4><p>Our staff wrote {len(c.notes)} note(s) on this record. Notes can mention "
                     "other people, so each is reviewed before it is sent to you (GDPR Art. 15(4)); we send them "
                     "with our answer or tell you why one was held back.</p>"
                     + _table("Notes under review", ["Written", "Type"], [(_date(x.date), x.type) for x in c.notes]))
    parts.append(_timeline(c))
    parts.append("</section>")
    return "".join(parts)


def _timeline(c: ContactSummary) -> str:
    if not c.timeline_total:
        return "<h4>Activity timeline</h4><p class='none'>no recorded activity</p>"
    by_type = _table("Activity by type", ["What", "How many"], [(k, f"{n:,}") for k, n in c.timeline_by_type.items()])
    shown = len(c.timeline_rows)
    lead = (f"All {c.timeline_total:,} recorded events, newest first."
            if shown >= c.timeline_total else
            f"{c.timeline_total:,} recorded events; the newest {shown} are listed here and every one of them is "
            "in data.json.")
    rows = _table("Recorded activity, newest first", ["Date", "What", "Details"],
                  [(_date(r.when), r.kind, r.what) for r in c.timeline_rows])
    return f"<h4>Activity timeline</h4><p>{_e(lead)}</p>{by_type}{rows}"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _wording(record: dict[str, Any]) -> str:
    """The consent box's label as the evidence job stored it (``ConsentRecord.label_text``)."""
    label = record.get("label_text")
    return _text(label) if label else "not recorded"


def _bot_section(bot: dict[str, Any]) -> str:
    parts = ["<h2 id='tooling'>What our privacy tooling holds about you</h2>",
             "<p>Our privacy tooling keeps evidence of your consent and of your choices, and a record of how we "
             "handled your requests.</p>"]
    consents = [r for r in bot.get("consent_records") or [] if isinstance(r, dict)]
    parts.append("<h3>Consent records</h3>")
    parts.append(_table("What you agreed to, on which form", ["Date", "Form", "What you were shown", "What you "
                        "ticked", "Consent"],
                        [(_date(r.get("submitted_at")), r.get("form_name") or f"form {r.get('form_id')}",
                          _wording(r), _text(r.get("values") or {}) or "nothing",
                          "not valid (the box was pre-ticked)" if r.get("invalid_at")
                          else "given" if r.get("consent_given") else "not given")
                         for r in consents[:CONSENT_ROWS]])
                 or "<p class='none'>none</p>")
    withdrawals = [w for w in bot.get("withdrawals") or [] if isinstance(w, dict)]
    if withdrawals:
        parts.append("<h3>Unsubscribes and other withdrawals</h3>" + _table(
            "Your withdrawals", ["Date", "Channel", "Restored"],
            [(_date(w.get("withdrawn_at")), w.get("channel") or "", _date(w.get("restored_at")) or "no")
             for w in withdrawals]))
    requests = [r for r in bot.get("requests") or [] if isinstance(r, dict)]
    if requests:
        parts.append("<h3>Your requests to us</h3>" + _table(
            "Requests", ["Received", "Type", "State", "Completed"],
            [(_date(r.get("received_at")), r.get("type") or "", r.get("state") or "", _date(r.get("completed_at")))
             for r in requests]))
    alerts = [a for a in bot.get("alerts") or [] if isinstance(a, dict)]
    if alerts:
        kinds = Counter(str(a.get("kind") or "alert") for a in alerts)
        parts.append("<h3>Consent checks about you</h3>" + _list(f"{k}: {n}" for k, n in kinds.items()))
    events = [e for e in bot.get("webhook_events") or [] if isinstance(e, dict)]
    if events:
        kinds = Counter(str(e.get("type") or "event") for e in events)
        parts.append("<h3>Notifications received from our marketing system</h3>"
                     + _list(f"{k}: {n}" for k, n in kinds.items()))
    entries = [e for e in bot.get("ledger_entries") or [] if isinstance(e, dict)]
    parts.append("<h3>Our audit log about you</h3>")
    if entries:
        more = (f" The newest {LEDGER_ROWS} are listed; all {len(entries)} are in data.json."
                if len(entries) > LEDGER_ROWS else "")
        parts.append(f"<p>Every step we took about you is written to a tamper-evident audit log.{_e(more)}</p>"
                     + _table("Audit log entries", ["Date", "What happened"],
                              [(_date(e.get("at")), e.get("action") or "") for e in entries[-LEDGER_ROWS:][::-1]]))
    else:
        parts.append("<p class='none'>none</p>")
    return "".join(parts)


_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:52em;margin:0 auto;padding:1em;
line-height:1.45;color:#111;background:#fff;overflow-wrap:anywhere}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:2px solid #ccc}h3{margin-top:1.4em}h4{margin:1em 0 .3em}
table{border-collapse:collapse;width:100%;margin:.5em 0}caption{text-align:left;font-style:italic;padding:.2em 0}
td,th{border:1px solid #999;padding:.25em .5em;text-align:left;vertical-align:top}
dl.profile{display:grid;grid-template-columns:minmax(8em,1fr) 2fr;margin:0}
dl.profile div{display:contents}dt{font-weight:600;padding:.15em .5em .15em 0}dd{margin:0;padding:.15em 0}
.none,.nc{color:#555}.nc{border-left:4px solid #c60;padding-left:.6em}
nav ul{columns:2}small{font-weight:normal;color:#555}
@media (max-width:36em){
 body{padding:.6em;font-size:16px}nav ul{columns:1}
 dl.profile{display:block}dt{padding-top:.5em}
 table,caption,thead,tbody,tr,td{display:block;width:100%}thead{position:absolute;left:-9999px}
 tr{border:1px solid #999;margin:0 0 .5em}td{border:0;border-bottom:1px solid #ddd}
 td::before{content:attr(data-label) ": ";font-weight:600}
}
@media print{
 body{max-width:none;padding:0;font-size:10pt}nav{display:none}
 h2,h3,h4{break-after:avoid}tr,dl.profile div{break-inside:avoid}
 thead{display:table-header-group}
}
"""


def render_summary(
    summaries: Sequence[ContactSummary], *, request: dict[str, Any], policy: AccessPolicy, generated_at: datetime,
    bot_holdings: dict[str, Any] | None = None, not_included: Sequence[str] = (),
) -> str:
    """The human-readable half of the package: the data itself, Art. 15(1)(a) to (h) and 15(3)."""
    e = _e
    title = f"Your personal data: access request #{e(request.get('id'))}"
    received = e(str(request.get("received_on") or request.get("received_at", ""))[:10])
    regime = str(request.get("regime") or "gdpr")  # the request's own regime names the law it answers under
    rights = "".join(f"<li>{e(line)}</li>" for line in law.rights(regime, policy.authority))
    free = "(Cal. Civ. Code §1798.130(a)(2))" if regime == "ccpa" else "(Art. 15(3))"
    contacts = list(summaries)
    if contacts:
        held = "".join(_contact_section(n, len(contacts), c) for n, c in enumerate(contacts, start=1))
    else:
        held = "<p>We found no contact record with your email address in our marketing system.</p>"
    portable = " (Art. 20)" if regime != "ccpa" else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{title}</title>
<style>{_CSS}</style></head>
<body>
<h1>Your personal data</h1>
<p>This is our answer to your request for access ({e(law.access_basis(regime))}) received on
{received}, prepared on {e(generated_at.date().isoformat())} by {e(policy.controller)}.
This page shows the data we hold about you. The file <code>data.json</code> next to it holds the same data,
with every timeline event, in a structured, machine-readable format you may take to another
service{portable}. Some data cannot be part of this package; the section
<a href="#cannot">What this package cannot contain</a> says which.</p>
<nav><ul><li><a href="#mautic">Our marketing system</a></li><li><a href="#tooling">Our privacy tooling</a></li>
<li><a href="#why">Why and how long</a></li><li><a href="#cannot">What this package cannot contain</a></li>
<li><a href="#rights">Your rights</a></li></ul></nav>
<h2 id="mautic">What our marketing system holds about you</h2>
{held}
{_bot_section(bot_holdings or {})}
<h2 id="why">Why we process it (purposes)</h2>{_configured(policy.purposes, policy.contact)}
<h2>Categories of data</h2>{_configured(policy.categories, policy.contact)}
<h2>Who receives it (recipients)</h2>{_configured(policy.recipients, policy.contact)}
<h3>Transfers outside your country's data-protection area</h3>{_configured(policy.transfers, policy.contact)}
<h2>How long we keep it</h2>{_configured(policy.retention, policy.contact)}
<h2>Where it came from</h2>{_configured(policy.source, policy.contact)}
<h2>Automated decisions and profiling</h2>{_configured(policy.automated_decisions, policy.contact)}
<h2 id="cannot">What this package cannot contain</h2>
<p>This package holds everything our tools could export about you. It cannot hold:</p>{_list(not_included)}
<p>Ask {e(policy.contact)} if you want any of it; we will answer separately.</p>
<h2 id="rights">Your rights</h2>
<ul>{rights}</ul>
<p>Questions: contact {e(policy.contact)}. This first copy is free of charge {free}.</p>
</body></html>
"""
