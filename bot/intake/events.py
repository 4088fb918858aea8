"""Mautic webhook envelopes → plain events with stable dedupe keys (pure: bytes in, data out).

Mautic sends ``{"<type>": [event, ...], ...}`` (queue mode: up to 10 events across types per POST),
the "Send Test Payload" shape (``{"<type>": {single object}, "timestamp": "<now>"}``) and types we do
not know. Events carry no id and may arrive twice, so each gets a dedupe key derived from its type,
timestamp, contact id and a hash of its canonical content (Mautic 5.x ``WebhookModel``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.privacy import find_emails, normalise_email, subject_hash
from bot.values import as_id
from storage.intake import InboxState

FORM_SUBMIT = "mautic.form_on_submit"
SUBSCRIPTION_CHANGED = "mautic.lead_channel_subscription_changed"
EMAIL_SEND = "mautic.email_on_send"
CONTACT_DELETED = "mautic.lead_post_delete"
CONTACT_IDENTIFIED = "mautic.lead_post_save_new"
DEAD_LETTER = "(dead-letter)"

# Every key core Mautic 5.x registers (mautic.md §1.1); anything else is stored and ignored.
KNOWN_TYPES = frozenset({
    "mautic.lead_post_save_new", "mautic.lead_post_save_update", "mautic.lead_points_change",
    "mautic.lead_post_delete", "mautic.lead_channel_subscription_changed", "mautic.lead_company_change",
    "mautic.lead_list_change", "mautic.company_post_save", "mautic.company_post_delete",
    "mautic.form_on_submit", "mautic.email_on_send", "mautic.email_on_open", "mautic.page_on_hit",
    "mautic.sms_on_send",
})
# Types this bot acts on; the rest are recorded for the digest and otherwise left alone.
ACTED_ON = frozenset({FORM_SUBMIT, SUBSCRIPTION_CHANGED, EMAIL_SEND, CONTACT_DELETED, CONTACT_IDENTIFIED})


def sign(raw: bytes, secret: str) -> str:
    """``Webhook-Signature`` = base64(HMAC-SHA256(raw body, secret as-is)), as Mautic sends it
    (app/bundles/WebhookBundle/Http/Client.php: ``base64_encode(hash_hmac('sha256', $jsonPayload, $secret,
    true))``)."""
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode("ascii")


class WebhookSignature:
    """Mautic's ``Webhook-Signature`` checked while the body streams in: the HMAC is fed chunk by chunk,
    so the check needs no joined copy of the body, and a header that cannot be a signature (missing,
    not base64 of 32 bytes) or a missing secret fails before a byte of the body is read."""

    def __init__(self, header: str | None, secret: str) -> None:
        self.expected = _decoded_signature(header)
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256) if secret else None

    @property
    def possible(self) -> bool:
        """False when no body can match: worth refusing before reading it."""
        return self.expected is not None and self._mac is not None

    def update(self, chunk: bytes) -> None:
        if self._mac is not None:
            self._mac.update(chunk)

    def matches(self) -> bool:
        """Compared in constant time; call once the whole body went through :meth:`update`."""
        if self.expected is None or self._mac is None:
            return False
        return hmac.compare_digest(self._mac.digest(), self.expected)


def _decoded_signature(header: str | None) -> bytes | None:
    if not header:
        return None
    try:
        decoded = base64.b64decode(header.strip().encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    return decoded if len(decoded) == hashlib.sha256().digest_size else None


def signature_ok(raw: bytes, header: str | None, secret: str) -> bool:
    """Compared in constant time; a missing header or secret never matches."""
    check = WebhookSignature(header, secret)
    check.update(raw)
    return check.matches()


class Disposition(StrEnum):
    ACT = "act"  # a type this bot processes
    RECORD = "record"  # a known type the bot only records
    UNKNOWN = "unknown"  # not a core Mautic type: stored, ignored


@dataclass(frozen=True)
class InboundEvent:
    """One event of a delivery, with what the inbox needs to store, join and deduplicate it."""

    type: str
    payload: dict[str, Any]
    occurred_at: datetime | None
    contact_id: int | None
    email: str | None
    dedupe_key: str
    disposition: Disposition

    def subject_hash(self, key: str) -> str | None:
        return subject_hash(key, self.email) if self.email else None


@dataclass(frozen=True)
class Envelope:
    """A parsed delivery. ``dead_letter`` holds why a signed body could not be read as events;
    ``overflow`` the events past the cap on events per delivery (``{type: [event, …]}``, as Mautic groups
    them), kept whole for a dead letter rather than processed."""

    events: list[InboundEvent] = field(default_factory=list)
    shape: str = "delivery"  # "delivery", "test" (Send Test Payload) or "dead-letter"
    dead_letter: str | None = None
    body_hash: str = ""
    overflow: dict[str, list[Any]] = field(default_factory=dict)
    overflow_count: int = 0


# What a database cannot store of parsed JSON: NUL (PostgreSQL's text and JSONB refuse it), lone
# surrogates (not encodable as UTF-8; json.loads joins every valid pair into one code point, so any
# surrogate left in a str is lone). A character class: linear time on any input.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """Parsed JSON made storable in both databases: NUL and lone surrogates stripped from every string
    and key, NaN and ±Infinity (which Python's json accepts and PostgreSQL's JSONB refuses) made null."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("", value)
    if isinstance(value, dict):
        return {_UNSTORABLE.sub("", str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _needs_cleaning(text: str) -> bool:
    # NUL and surrogates can only come from \u escapes (raw ones fail to parse), non-finite numbers only
    # from these tokens; a body with none of them is stored as parsed, at no cost.
    return "\\u" in text or "NaN" in text or "Infinity" in text


def parse_timestamp(value: Any) -> datetime | None:
    """Mautic's ``'c'`` dates carry an offset that may be the sender's local zone: keep it, then go UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Mautic stores naive dates in UTC
    return parsed.astimezone(UTC)


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def dedupe_key(event_type: str, timestamp: str, contact_id: int | None, payload: Mapping[str, Any]) -> str:
    """Stable per event: the same event delivered twice hashes alike; any differing byte of content does not."""
    content = hashlib.sha256(canonical(payload)).hexdigest()
    head = f"{event_type}|{timestamp}|{contact_id if contact_id is not None else '-'}|{content}"
    return hashlib.sha256(head.encode()).hexdigest()


def parse_envelope(raw: bytes, max_events: int | None = None) -> Envelope:
    """Every shape Mautic sends, or a dead letter (never an exception) for a body we cannot read.
    Past ``max_events`` events, the rest go to ``overflow`` unparsed."""
    body_hash = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")  # what Mautic sends (json_encode); json.loads would also guess UTF-16/32
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        return Envelope(shape="dead-letter", dead_letter=f"not valid JSON ({type(exc).__name__})",
                        body_hash=body_hash)
    if not isinstance(data, dict):
        return Envelope(shape="dead-letter", dead_letter=f"JSON {type(data).__name__}, expected an object",
                        body_hash=body_hash)
    if _needs_cleaning(text):
        data = storable(data)
    top_timestamp = data.get("timestamp") if isinstance(data.get("timestamp"), str) else None
    shape = "test" if top_timestamp is not None else "delivery"
    found: list[InboundEvent] = []
    overflow: dict[str, list[Any]] = {}
    overflow_count = 0
    for key, value in data.items():
        if key == "timestamp" and isinstance(value, str):
            continue
        items = value if isinstance(value, list) else [value]
        room = len(items) if max_events is None else max(min(max_events - len(found), len(items)), 0)
        found.extend(_event_of(str(key), item, top_timestamp) for item in items[:room])
        if room < len(items):
            overflow[str(key)] = items[room:]
            overflow_count += len(items) - room
    return Envelope(events=found, shape=shape, body_hash=body_hash, overflow=overflow,
                    overflow_count=overflow_count)


def inbox_rows(raw: bytes, hash_key: str, received_at: datetime,
               max_events: int | None = None) -> list[dict[str, Any]]:
    """A delivery's inbox rows: one per event (identical events within a body collapse to one), or one
    dead letter; past ``max_events`` events, one more dead letter holding the rest. Same keys in every row
    (one executemany). Never raises: a body that breaks the parser in an unforeseen way (say, nesting deep
    enough for RecursionError) is a dead letter too."""
    try:
        envelope = parse_envelope(raw, max_events)
    except Exception as exc:
        envelope = Envelope(shape="dead-letter", dead_letter=f"could not be read ({type(exc).__name__})",
                            body_hash=hashlib.sha256(raw).hexdigest())
    if envelope.dead_letter is not None:
        return [dead_letter_row(raw, hash_key, received_at, envelope.dead_letter, dedupe=envelope.body_hash)]
    rows: dict[str, dict[str, Any]] = {}
    for event in envelope.events:
        if event.dedupe_key in rows:
            continue
        rows[event.dedupe_key] = _row(
            dedupe_key=event.dedupe_key, event_type=event.type[:100], received_at=received_at,
            occurred_at=event.occurred_at, contact_id=event.contact_id, subject_hash=event.subject_hash(hash_key),
            subject_hashes=_all_subjects(event, hash_key), payload=event.payload, raw_body=None, note=None,
        )
    if envelope.overflow_count:
        rest = json.dumps(envelope.overflow, ensure_ascii=False, default=str).encode()
        note = (f"{envelope.overflow_count} events past the first {max_events} of one delivery "
                f"(MAX_EVENTS_PER_DELIVERY), not processed")
        row = dead_letter_row(rest, hash_key, received_at, note,
                              dedupe=hashlib.sha256(f"{envelope.body_hash}:overflow".encode()).hexdigest())
        rows[row["dedupe_key"]] = row
    return list(rows.values())


def dead_letter_row(raw: bytes, hash_key: str, received_at: datetime, problem: str, *,
                    dedupe: str | None = None) -> dict[str, Any]:
    """An inbox row keeping ``raw`` as received, reported once in the channel; every address in it is
    hashed so erasure still finds it. ``dedupe`` defaults to the body's hash (a redelivery is one row)."""
    hashes = [subject_hash(hash_key, email) for email in emails_in(raw)]
    return _row(
        dedupe_key=dedupe or hashlib.sha256(raw).hexdigest(), event_type=DEAD_LETTER, received_at=received_at,
        occurred_at=None, contact_id=None, subject_hash=hashes[0] if hashes else None,
        subject_hashes=" ".join(hashes)[:4000] or None, payload=None, raw_body=raw, note=problem[:200],
    )


def _all_subjects(event: InboundEvent, hash_key: str) -> str | None:
    # Unknown types keep their payload, so erasure must find every address in it, wherever it sits.
    if event.disposition is not Disposition.UNKNOWN:
        return None
    text = json.dumps(event.payload, ensure_ascii=False, default=str).encode()
    hashes = [subject_hash(hash_key, email) for email in emails_in(text)]
    return " ".join(hashes)[:4000] or None


def _row(**values: Any) -> dict[str, Any]:
    return {"state": InboxState.PENDING.value, "processed_at": None, **values}


def _event_of(event_type: str, item: Any, top_timestamp: str | None) -> InboundEvent:
    # Real deliveries send lists; Send Test Payload sends single objects for form/email/page types.
    return build_event(event_type, item if isinstance(item, dict) else {"value": item}, top_timestamp)


def build_event(event_type: str, payload: dict[str, Any], fallback_timestamp: str | None = None) -> InboundEvent:
    raw_ts = payload.get("timestamp") if isinstance(payload.get("timestamp"), str) else fallback_timestamp
    contact_id, email = contact_of(event_type, payload)
    if event_type in ACTED_ON:
        disposition = Disposition.ACT
    elif event_type in KNOWN_TYPES:
        disposition = Disposition.RECORD
    else:
        disposition = Disposition.UNKNOWN
    return InboundEvent(
        type=event_type,
        payload=payload,
        occurred_at=parse_timestamp(raw_ts),
        contact_id=contact_id,
        email=email,
        dedupe_key=dedupe_key(event_type, raw_ts or "", contact_id, payload),
        disposition=disposition,
    )


# ---- reading the shapes ---------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def field_value(contact: Mapping[str, Any], alias: str) -> Any:
    """A contact field's value from webhook (``fields.core.<alias>.value``) or API (``fields.all``) shape."""
    fields = _dict(contact.get("fields"))
    flat = _dict(fields.get("all"))
    if alias in flat:
        return flat[alias]
    for group in fields.values():
        entry = _dict(group).get(alias)
        if isinstance(entry, dict):
            return entry.get("value")
    return None


def _email(value: Any) -> str | None:
    # 320: the longest address the columns keep (RFC 5321 allows 254); a longer "address" is none.
    if isinstance(value, str) and "@" in value and value.strip() and len(value) <= 320:
        return normalise_email(value)
    return None


def contact_of(event_type: str, payload: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """The Mautic contact id and email an event is about, wherever this type keeps them."""
    if event_type == FORM_SUBMIT:
        submission = _dict(payload.get("submission"))
        lead = _dict(submission.get("lead"))
        results = _dict(submission.get("results"))
        return as_id(lead.get("id")), _email(field_value(lead, "email")) or _email(results.get("email"))
    if event_type == CONTACT_DELETED:
        # Doctrine has nulled contact.id by then; the top-level id is the deleted one (mautic.md §1.3).
        contact = _dict(payload.get("contact"))
        return as_id(payload.get("id")), _email(field_value(contact, "email"))
    if event_type == "mautic.email_on_open":
        stat = _dict(payload.get("stat"))
        lead = _dict(stat.get("lead"))
        return as_id(lead.get("id")), _email(stat.get("emailAddress")) or _email(field_value(lead, "email"))
    if event_type == "mautic.page_on_hit":
        lead = _dict(_dict(payload.get("hit")).get("lead"))
        return as_id(lead.get("id")), _email(field_value(lead, "email"))
    contact = _dict(payload.get("contact"))
    if contact:
        # mautic.email_on_send carries the mailer's flat contact row ({"id": "26", "email": …}: EmailBundle/
        # EventListener/WebhookSubscriber.php passes EmailSendEvent::getLead()), not the serialised entity.
        email = field_value(contact, "email") if "fields" in contact else contact.get("email")
        return as_id(contact.get("id")), _email(email)
    return None, None


def emails_in(raw: bytes) -> list[str]:
    """Addresses in a body we could not parse, so erasure can still find the dead letter."""
    text = raw.decode("utf-8", "replace")
    return sorted({normalise_email(email) for email in find_emails(text)})


# ---- typed views of the events the bot acts on ----------------------------------------------------


@dataclass(frozen=True)
class FormSubmission:
    submission_id: int | None
    form_id: int | None
    form_name: str
    form_alias: str
    contact_id: int | None
    email: str | None
    results: dict[str, Any]
    submitted_at: datetime | None
    source_ip: str | None
    page_url: str | None = None


def page_url(referer: Any) -> str | None:
    """The page a form was submitted from: the submission's ``referer`` (the form's ``return`` field or the
    HTTP Referer, FormBundle/Model/SubmissionModel.php saveSubmission), scheme, host and path only. The query
    and fragment are dropped: they can carry the visitor's own data (``?email=…``, tracking ids)."""
    if not isinstance(referer, str) or not referer.strip():
        return None
    try:
        parts = urlsplit(referer.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never keep user:password@
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))[:2000]


def form_submission(payload: Mapping[str, Any], fallback_at: datetime | None = None) -> FormSubmission:
    submission = _dict(payload.get("submission"))
    form = _dict(submission.get("form"))
    lead = _dict(submission.get("lead"))
    results = _dict(submission.get("results"))  # empty results arrive as [] (mautic.md §1.2)
    ip = _dict(submission.get("ipAddress"))
    ip_text = ip.get("ipAddress") or ip.get("ip")
    return FormSubmission(
        submission_id=as_id(submission.get("id")),
        form_id=as_id(form.get("id")),
        form_name=str(form.get("name") or "(unnamed form)"),
        form_alias=str(form.get("alias") or ""),
        contact_id=as_id(lead.get("id")),
        email=_email(field_value(lead, "email")) or _email(results.get("email")),
        results=results,
        submitted_at=parse_timestamp(submission.get("dateSubmitted")) or fallback_at,
        source_ip=ip_text[:64] if isinstance(ip_text, str) and ip_text else None,
        page_url=page_url(submission.get("referer")),
    )


CONTACTABLE = "contactable"


@dataclass(frozen=True)
class SubscriptionChange:
    contact_id: int | None
    channel: str
    old_status: str
    new_status: str

    @property
    def withdrawn(self) -> bool:
        return self.new_status != CONTACTABLE

    @property
    def restored(self) -> bool:
        return self.new_status == CONTACTABLE and self.old_status != CONTACTABLE


def subscription_change(payload: Mapping[str, Any]) -> SubscriptionChange:
    contact = _dict(payload.get("contact"))
    return SubscriptionChange(
        contact_id=as_id(contact.get("id")),
        channel=str(payload.get("channel") or "email"),
        old_status=str(payload.get("old_status") or CONTACTABLE),
        new_status=str(payload.get("new_status") or CONTACTABLE),
    )


@dataclass(frozen=True)
class EmailSend:
    email_id: int | None
    email_name: str
    subject: str


def email_send(payload: Mapping[str, Any]) -> EmailSend:
    email = _dict(payload.get("email"))
    return EmailSend(
        email_id=as_id(email.get("id")),
        email_name=str(email.get("name") or payload.get("subject") or "(unnamed email)"),
        subject=str(payload.get("subject") or email.get("subject") or ""),
    )


def summary(event: InboundEvent) -> dict[str, Any]:
    """What the inbox keeps once an event is processed: ids and types, no personal data."""
    out: dict[str, Any] = {"type": event.type}
    if event.type == FORM_SUBMIT:
        sub = form_submission(event.payload)
        out.update(form_id=sub.form_id, submission_id=sub.submission_id)
    elif event.type == SUBSCRIPTION_CHANGED:
        change = subscription_change(event.payload)
        out.update(channel=change.channel, old_status=change.old_status, new_status=change.new_status)
    elif event.type == EMAIL_SEND:
        out.update(email_id=email_send(event.payload).email_id)
    if event.contact_id is not None:
        out["contact_id"] = event.contact_id
    return out
