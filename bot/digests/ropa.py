"""Record of processing activities (GDPR Art. 30(1)) and a DPIA screening (Art. 35(1)), from what the bot sees.

The bot knows which Mautic forms exist and which fields they ask for (``/api/forms``), which fields the
form-submit webhooks actually carried (``form_fields_seen``), how many submissions it holds, what the
policy file says each form is for, and what it does itself to protect the data. :func:`gather` reads all
of that (one Mautic form listing, one contact count, a few database queries); :func:`build` turns it
into a :class:`Ropa` (pure), written as Markdown (:func:`to_markdown`) and CSV (:func:`to_csv`), for
``/privacy ropa`` (posted as files: a register outgrows any Slack message) and ``python -m bot ropa``.

What the bot cannot know is listed as a gap for the DPO ("no legal basis configured for form 7"), never
filled in with a guess. The DPIA screening follows the nine criteria of the Article 29 Working Party's
DPIA guidelines (WP248 rev.01, endorsed by the EDPB), each marked from what was observed; two or more
met mean a DPIA is likely required.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.digests.forms import MARKETING, FormAudit, FormPolicy, Problem, audit_forms, consent_aliases, form_fields
from bot.mautic import MauticClient, MauticError
from bot.policy import AccessPolicy, PolicyFile
from storage import digests as digest_store
from storage import forms as store
from storage.db import SessionFactory, unit_of_work

if TYPE_CHECKING:
    from bot.settings import Settings

NO_PURPOSE = "(no purpose configured)"
LARGE_SCALE_CONTACTS = 10_000  # the bot's own threshold: WP248 names factors, not a number

# Contact fields (Mautic's stock aliases) → the category of personal data they hold.
_CATEGORIES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("email",), "Contact data (email address)"),
    (("phone", "mobile", "fax"), "Contact data (phone)"),
    (("firstname", "lastname", "title", "name"), "Identity (name, title)"),
    (("address1", "address2", "city", "state", "zipcode", "country", "address"), "Postal address"),
    (("company", "position", "website"), "Professional data (company, position)"),
    (("facebook", "twitter", "linkedin", "instagram", "skype", "foursquare"), "Social media handles"),
)
# Words in a field's alias or label that suggest special-category or highly personal data (Art. 9, WP248 #4),
# or data about vulnerable people (WP248 #7). A hint for the DPO, not a classification.
_SENSITIVE_WORDS = ("health", "medical", "diagnos", "religio", "ethnic", "racial", "sexual", "politic", "union",
                    "biometric", "genetic", "criminal", "conviction", "gesundheit", "religion", "disab")
_VULNERABLE_WORDS = ("child", "kid", "minor", "school", "pupil", "student", "patient", "employee", "age",
                     "birth", "parent", "guardian")
SECURITY_MEASURES = (
    "Webhooks from Mautic are accepted only with a valid HMAC-SHA256 signature, compared in constant time; "
    "Slack requests are verified with the signing secret",
    "Every Mautic event is committed to the bot's own database before it is acknowledged, so none is lost",
    "Email addresses are masked in Slack and never written to logs; records join on a keyed hash (HMAC) "
    "of the address",
    "Data-subject requests need verified identity and the approval of a second person (four eyes)",
    "Access packages are encrypted at rest (AES-256-GCM) and delivered behind expiring, unguessable links",
    "Every decision is written to an append-only, hash-chained audit ledger (python -m bot audit verify)",
    "Processed webhook payloads keep ids and types only; personal data is dropped once it is not needed",
)

NOT_CONFIGURED = "Not configured"


@dataclass(frozen=True)
class FieldSeen:
    alias: str
    label: str
    type: str
    contact_field: str
    category: str
    in_mautic: bool
    in_webhooks: bool

    @property
    def source(self) -> str:
        return "Mautic form and webhooks" if self.in_mautic and self.in_webhooks else (
            "Mautic form" if self.in_mautic else "webhooks only")


@dataclass(frozen=True)
class FormEntry:
    form_id: int
    name: str
    alias: str
    purpose: str
    legal_basis: str | None
    exempt: bool
    submissions: int
    in_mautic: bool
    fields: list[FieldSeen]

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(f.category for f in self.fields))


@dataclass(frozen=True)
class Criterion:
    number: int
    name: str
    met: str  # "yes", "no" or "unknown"
    evidence: str


@dataclass(frozen=True)
class Ropa:
    generated_at: datetime
    controller: str
    contact: str
    policy_version: str | None
    purposes: dict[str, list[FormEntry]]
    recipients: list[str]
    transfers: str
    retention: str
    retention_figures: str
    security: list[str]
    gaps: list[str]
    dpia: list[Criterion]

    @property
    def forms(self) -> list[FormEntry]:
        return [form for forms in self.purposes.values() for form in forms]

    @property
    def criteria_met(self) -> int:
        return sum(1 for c in self.dpia if c.met == "yes")

    @property
    def dpia_verdict(self) -> str:
        met = self.criteria_met
        if met >= 2:
            return (f"{met} of 9 criteria met: a DPIA is likely required (WP248: two or more criteria), "
                    "before the processing or now if it already runs.")
        unknown = sum(1 for c in self.dpia if c.met == "unknown")
        return (f"{met} of 9 criteria met ({unknown} to confirm): a DPIA is not indicated by what the bot sees; "
                "confirm the open criteria and keep this screening with the record.")


@dataclass
class RopaInputs:
    """Everything :func:`build` reads, gathered from Mautic, the database, the settings and the policy."""

    now: datetime
    policy: PolicyFile
    consent_fields: Sequence[str]
    retention_days: int
    store_source_ip: bool
    mautic_forms: list[dict[str, Any]] | None  # None: Mautic could not be read
    mautic_error: str | None = None
    webhook_fields: dict[int, tuple[str, list[str]]] = field(default_factory=dict)
    submissions: dict[int, int] = field(default_factory=dict)
    event_types: dict[str, int] = field(default_factory=dict)
    contacts: int | None = None
    stale_contacts: int | None = None
    stale_as_of: str | None = None


async def gather(mautic: MauticClient, sessions: SessionFactory, settings: Settings, policy: PolicyFile,
                 now: datetime) -> RopaInputs:
    inputs = RopaInputs(now=now, policy=policy, consent_fields=settings.consent_fields,
                        retention_days=settings.retention_days, store_source_ip=policy.consent.store_source_ip,
                        mautic_forms=None)
    try:
        forms = await mautic.list_forms()
        # The list may abbreviate fields; the record needs them, so fetch any form that lacks them.
        inputs.mautic_forms = [form if "fields" in form or form.get("id") is None
                               else await mautic.get_form(int(form["id"])) or form for form in forms]
        inputs.contacts = await mautic.count_contacts()
    except MauticError as exc:
        inputs.mautic_error = type(exc).__name__
    async with unit_of_work(sessions) as session:
        inputs.webhook_fields = await store.fields_seen(session)
        inputs.submissions = await store.submissions_per_form(session)
        inputs.event_types = await store.event_types_seen(session)
        last = await digest_store.last_posted_run(session, "retention")
    if last is not None and last.summary.get("total") is not None:
        inputs.stale_contacts = int(last.summary["total"])
        inputs.stale_as_of = (last.posted_at or last.period_end).strftime("%Y-%m-%d")
    return inputs


def _category(alias: str, contact_field: str, field_type: str, consent: set[str]) -> str:
    if alias.lower() in consent or contact_field.lower() in consent:
        return "Consent choices"
    if field_type == "email":
        return "Contact data (email address)"
    key = (contact_field or alias).lower()
    for names, category in _CATEGORIES:
        if key in names:
            return category
    if field_type in ("hidden", "button", "freetext", "freehtml", "pagebreak", "captcha"):
        return "Technical / form control"
    return f"Other form answers ({alias})"


def _contact_field(spec: Mapping[str, Any]) -> str:
    for key in ("mappedField", "leadField"):
        value = spec.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _rule(policy: PolicyFile, form_id: int, alias: str | None) -> tuple[str | None, str | None, bool, Sequence[str]]:
    rule = policy.consent.rule_for(form_id, alias)
    return rule.purpose, rule.legal_basis, rule.exempt, rule.fields


def build(inputs: RopaInputs) -> Ropa:
    policy = inputs.policy
    access = policy.access
    defaults = AccessPolicy()
    mautic_forms = {int(f["id"]): f for f in inputs.mautic_forms or [] if f.get("id") is not None}
    form_ids = sorted(set(mautic_forms) | set(inputs.webhook_fields) | set(inputs.submissions))
    purposes: dict[str, list[FormEntry]] = {}
    gaps: list[str] = []
    for form_id in form_ids:
        form = mautic_forms.get(form_id, {})
        seen_name, seen_aliases = inputs.webhook_fields.get(form_id, ("", []))
        name = str(form.get("name") or seen_name or f"form {form_id}")
        alias = str(form.get("alias") or "") or None
        purpose, basis, exempt, rule_fields = _rule(policy, form_id, alias)
        consent = set(consent_aliases(rule_fields) or consent_aliases(inputs.consent_fields))
        fields: list[FieldSeen] = []
        specs = {str(f.get("alias") or ""): f for f in form_fields(form) if f.get("alias")}
        for field_alias, spec in specs.items():
            field_type = str(spec.get("type") or "")
            if field_type in ("button", "freetext", "freehtml", "pagebreak"):
                continue  # shows text or submits: collects nothing
            contact_field = _contact_field(spec)
            fields.append(FieldSeen(field_alias, " ".join(str(spec.get("label") or "").split()), field_type,
                                    contact_field, _category(field_alias, contact_field, field_type, consent),
                                    True, field_alias in seen_aliases))
        for field_alias in seen_aliases:
            if field_alias not in specs:
                fields.append(FieldSeen(field_alias, "", "", "", _category(field_alias, "", "", consent), False, True))
        entry = FormEntry(form_id, name, alias or "", purpose or NO_PURPOSE, basis, exempt,
                          inputs.submissions.get(form_id, 0), form_id in mautic_forms, fields)
        purposes.setdefault(entry.purpose, []).append(entry)
        label = f"form {form_id} ({name})"
        if not basis:
            gaps.append(f"no legal basis configured for {label}: add `legal_basis:` to its rule in the policy file")
        if not purpose:
            gaps.append(f"no purpose configured for {label}: add `purpose:` to its rule in the policy file")
        if inputs.mautic_forms is not None and form_id not in mautic_forms:
            gaps.append(f"{label} sent submissions but is no longer in Mautic: its fields are those the webhooks "
                        "carried")
    for rule_id in sorted(set(policy.consent.by_id) - set(mautic_forms)):
        if inputs.mautic_forms is not None:
            gaps.append(f"the policy file has a rule for form {rule_id}, which Mautic does not have")
    if inputs.mautic_forms is None:
        gaps.append(f"Mautic's forms could not be read ({inputs.mautic_error}): only forms seen in webhooks are "
                    "listed")
    audit = _audit(inputs, mautic_forms.values())
    for finding in audit.findings if audit else []:
        gaps.append(f"form {finding.form_id} ({finding.name}): {finding.describe()}")
    if not policy.version:
        gaps.append("no `policy_version:` in the policy file: consent records cannot say which privacy notice "
                    "was in force")
    for name, label in (("recipients", "recipients"), ("transfers", "transfers to third countries"),
                        ("retention", "retention")):
        if getattr(access, name) is None:
            gaps.append(f"{label} not configured (`access_summary.{name}` in the policy file): access packages "
                        "say \"not configured\" there")
    if access.controller == defaults.controller:
        gaps.append("controller not named (PRIVACY_CONTROLLER or `access_summary.controller`)")
    stale = ("no retention digest posted yet" if inputs.stale_contacts is None else
             f"{inputs.stale_contacts:,} contacts past retention at the last retention digest ({inputs.stale_as_of})")
    contacts = f"{inputs.contacts:,} contacts in Mautic; " if inputs.contacts is not None else ""
    return Ropa(
        generated_at=inputs.now, controller=access.controller, contact=access.contact, policy_version=policy.version,
        purposes=dict(sorted(purposes.items(), key=lambda item: (item[0] == NO_PURPOSE, item[0].lower()))),
        recipients=list(access.recipients or []), transfers=access.transfers or NOT_CONFIGURED,
        retention=(f"{access.retention or NOT_CONFIGURED + '.'} Contacts inactive for {inputs.retention_days} "
                   "days are listed by the weekly retention digest for an approved purge."),
        retention_figures=contacts + stale, security=list(SECURITY_MEASURES), gaps=gaps,
        dpia=screen(inputs, purposes, audit),
    )


def _audit(inputs: RopaInputs, forms: Iterable[Mapping[str, Any]]) -> FormAudit | None:
    if inputs.mautic_forms is None:
        return None

    def rule_for(form_id: int | None, alias: str | None) -> FormPolicy:
        rule = inputs.policy.consent.rule_for(form_id, alias)
        return FormPolicy(rule.fields, rule.exempt, rule.purpose)

    return audit_forms(list(forms), consent_aliases(inputs.consent_fields), rule_for=rule_for)


def _matches(entries: Iterable[FormEntry], words: Sequence[str]) -> list[str]:
    hits = []
    for entry in entries:
        for f in entry.fields:
            text = f"{f.alias} {f.label} {f.contact_field}".lower()
            # Whole words for short ones ("age" is not "page"), substrings for stems ("diagnos").
            tokens = set("".join(c if c.isalnum() else " " for c in text).split())
            if any((w in tokens) if len(w) <= 4 else (w in text) for w in words):
                hits.append(f"{f.alias} (form {entry.form_id})")
    return list(dict.fromkeys(hits))


def screen(inputs: RopaInputs, purposes: Mapping[str, list[FormEntry]], audit: FormAudit | None) -> list[Criterion]:
    """The nine WP248 criteria, each pre-filled from what the bot observes."""
    entries = [e for forms in purposes.values() for e in forms]
    events = inputs.event_types
    points = events.get("mautic.lead_points_change", 0)
    tracking = events.get("mautic.page_on_hit", 0) + events.get("mautic.email_on_open", 0)
    sensitive = _matches(entries, _SENSITIVE_WORDS)
    vulnerable = _matches(entries, _VULNERABLE_WORDS)
    email_forms = [e for e in entries if any(f.category == "Contact data (email address)" for f in e.fields)]
    conditional = [f for f in (audit.findings if audit else []) if Problem.CONDITIONAL in f.problems]
    contacts = inputs.contacts
    return [
        Criterion(1, "Evaluation or scoring (including profiling)", "yes" if points else "unknown",
                  f"{points:,} points changes received from Mautic (lead scoring)" if points else
                  "no points changes received; Mautic scores contacts when points actions or campaigns are set up"),
        Criterion(2, "Automated decision-making with legal or similarly significant effect", "no",
                  "the bot decides nothing automatically; Mautic campaigns choose what to send, with no legal effect"
                  " (confirm no campaign gates offers or prices)"),
        Criterion(3, "Systematic monitoring", "yes" if tracking else "unknown",
                  f"{tracking:,} page visits and email opens received from Mautic's tracking" if tracking else
                  "no tracking events received; Mautic records page visits and email opens when its tracking "
                  "script and pixels are used"),
        Criterion(4, "Sensitive data or data of a highly personal nature", "yes" if sensitive else "no",
                  "fields: " + ", ".join(sensitive) if sensitive else "no form field suggests it"),
        Criterion(5, "Data processed on a large scale",
                  "unknown" if contacts is None else ("yes" if contacts >= LARGE_SCALE_CONTACTS else "no"),
                  "contacts could not be counted" if contacts is None else
                  f"{contacts:,} contacts in Mautic (the bot's threshold: {LARGE_SCALE_CONTACTS:,})"),
        Criterion(6, "Matching or combining datasets", "yes" if len(email_forms) >= 2 else "no",
                  f"{len(email_forms)} forms feed the same contact records (Mautic merges them by email)"),
        Criterion(7, "Data concerning vulnerable data subjects", "yes" if vulnerable else "unknown",
                  "fields: " + ", ".join(vulnerable) if vulnerable else
                  "no form field suggests children, employees or patients; confirm the audience"),
        Criterion(8, "Innovative use or applying new technological or organisational solutions", "no",
                  "standard marketing automation"),
        Criterion(9, "Processing that prevents exercising a right or using a service or a contract",
                  "yes" if conditional else "no",
                  "consent made a condition on: " + ", ".join(f"form {f.form_id}" for f in conditional)
                  if conditional else f"no form makes consent a condition (purpose other than {MARKETING})"),
    ]


# ---- writing it out -----------------------------------------------------------------------------------


def _md(text: object) -> str:
    """Outside text in a Markdown table cell or line: no HTML, no table breaks, no line breaks."""
    value = " ".join(str(text).split())
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def to_markdown(ropa: Ropa) -> str:
    out = [
        "# Record of processing activities (GDPR Art. 30(1))", "",
        f"Generated {ropa.generated_at:%Y-%m-%d %H:%M} UTC by mautic-privacy-bot from Mautic's forms, the form "
        "submissions it received and the policy file.", "",
        f"- **Controller**: {_md(ropa.controller)}",
        f"- **Contact**: {_md(ropa.contact)}",
        f"- **Privacy notice version** (`policy_version`): {_md(ropa.policy_version or 'not configured')}", "",
        "## Gaps for the DPO", "",
    ]
    out.extend(f"- {_md(gap)}" for gap in ropa.gaps) if ropa.gaps else out.append("- none found")
    for purpose, forms in ropa.purposes.items():
        out += ["", f"## Purpose: {_md(purpose)}", ""]
        categories = list(dict.fromkeys(c for form in forms for c in form.categories))
        out += [
            f"- **Legal basis**: {_md(', '.join(sorted({f.legal_basis or 'not configured' for f in forms})))}",
            "- **Categories of data subjects**: people who submitted "
            + ", ".join(f"{_md(f.name)} (form {f.form_id}, {f.submissions:,} submissions kept)" for f in forms),
            f"- **Categories of personal data**: {_md(', '.join(categories) or 'none seen')}",
            f"- **Recipients**: {_md('; '.join(ropa.recipients))}",
            f"- **Transfers to third countries**: {_md(ropa.transfers)}",
            f"- **Retention**: {_md(ropa.retention)} Figures: {_md(ropa.retention_figures)}.", "",
        ]
        for form in forms:
            flag = " (exempt from consent)" if form.exempt else ""
            out += [f"### Form {form.form_id}: {_md(form.name)}{flag}", "",
                    "| field | label | type | contact field | category | seen in |",
                    "|---|---|---|---|---|---|"]
            out += [f"| {_md(f.alias)} | {_md(f.label)} | {_md(f.type)} | {_md(f.contact_field)} | "
                    f"{_md(f.category)} | {_md(f.source)} |" for f in form.fields]
            out.append("")
    out += ["## Technical and organisational security measures (Art. 32) the bot applies", ""]
    out += [f"- {_md(m)}" for m in ropa.security]
    out += ["", "## DPIA screening (Art. 35(1); WP248 rev.01 criteria, endorsed by the EDPB)", "",
            "| # | criterion | met | what the bot observed |", "|---|---|---|---|"]
    out += [f"| {c.number} | {_md(c.name)} | {c.met} | {_md(c.evidence)} |" for c in ropa.dpia]
    out += ["", f"**Screening result**: {_md(ropa.dpia_verdict)}", ""]
    return "\n".join(out)


CSV_COLUMNS = ("purpose", "legal_basis", "form_id", "form_name", "field_alias", "field_label", "field_type",
               "contact_field", "data_category", "seen_in", "subjects", "recipients", "transfers", "retention")


def _cell(value: object) -> str:
    """A spreadsheet must not run outside text as a formula (CSV injection): such cells get a leading '."""
    text = " ".join(str(value).split())
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def to_csv(ropa: Ropa) -> str:
    """One row per form field: the register as a table a DPO can filter."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    recipients = "; ".join(ropa.recipients)
    for purpose, forms in ropa.purposes.items():
        for form in forms:
            subjects = f"people who submitted {form.name}"
            for f in form.fields or [FieldSeen("", "", "", "", "", form.in_mautic, False)]:
                writer.writerow([_cell(v) for v in (
                    purpose, form.legal_basis or "not configured", form.form_id, form.name, f.alias, f.label,
                    f.type, f.contact_field, f.category, f.source, subjects, recipients, ropa.transfers,
                    ropa.retention)])
    return buffer.getvalue()
