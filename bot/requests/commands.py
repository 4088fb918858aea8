"""Parsing ``/privacy dsar|erase|rectify`` arguments. Errors say what is wrong and show the right form.

After the address come the request's options, ``received=YYYY-MM-DD`` (the day the controller received
the request, by whatever channel; the clock starts then, not when someone types the command) and
``regime=gdpr|ccpa``; then, for a rectification, the fields to correct; the rest is a free note."""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from bot.errors import BadCommand
from bot.privacy import is_valid_email, mask_email, normalise_email, redact_emails
from bot.requests.deadlines import REGIMES, Regime
from bot.requests.model import IdentityMethod, RequestKind
from bot.slack.blocks import escape
from bot.values import MAX_ID

# The contact fields a stock Mautic 5 ships with that a person may ask to have corrected (as Mautic 5.x's
# contact API lists them). System fields (points, last_active, attribution…) are not personal data a
# subject rectifies. Teams add their own custom aliases with RECTIFY_FIELDS.
CORE_RECTIFIABLE_FIELDS: tuple[str, ...] = (
    "title", "firstname", "lastname", "company", "position", "email", "mobile", "phone", "fax",
    "address1", "address2", "city", "state", "zipcode", "country", "preferred_locale", "timezone",
    "website", "facebook", "twitter", "instagram", "linkedin", "skype", "foursquare",
)
NOTE_MAX = 500
_ALIAS = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
OPTIONS = ("received", "regime")
OPTIONS_USAGE = "[received=YYYY-MM-DD] [regime=gdpr|ccpa]"


@dataclass(frozen=True)
class Usage:
    usage: str
    example: str


USAGE: dict[RequestKind, Usage] = {
    RequestKind.ACCESS: Usage(f"dsar <email> {OPTIONS_USAGE} [note]",
                              "/privacy dsar jane@example.com received=2026-03-02 ticket 4411"),
    RequestKind.ERASURE: Usage(f"erase <email> {OPTIONS_USAGE} [note]", "/privacy erase jane@example.com ticket 4412"),
    RequestKind.RECTIFICATION: Usage(
        f"rectify <email> {OPTIONS_USAGE} <field>=<value> … [note]",
        '/privacy rectify jane@example.com lastname="van Dyke" city=Berlin ticket 4413',
    ),
    RequestKind.RESTRICTION: Usage(f"restrict <email> {OPTIONS_USAGE} [note]",
                                   "/privacy restrict jane@example.com disputes accuracy, ticket 4414"),
    RequestKind.OPT_OUT: Usage("optout <email> [received=YYYY-MM-DD] [note]",
                               "/privacy optout jane@example.com received=2026-03-02 web form"),
    RequestKind.OBJECTION: Usage(f"object <email> {OPTIONS_USAGE} [note]",
                                 "/privacy object jane@example.com received=2026-03-02 replied STOP to the newsletter"),
}


@dataclass(frozen=True)
class ParsedRequest:
    kind: RequestKind
    email: str  # normalised
    note: str | None  # emails in it are masked: notes are shown in the channel
    changes: dict[str, str] = field(default_factory=dict)  # rectification only; "" clears a field
    received: date | None = None  # None: today where the controller is
    regime: Regime | None = None  # None: DSAR_DEADLINE


def right_form(kind: RequestKind) -> str:
    usage = USAGE[kind]  # placeholders such as <email> must be escaped, or Slack shows them as links
    return escape(f"Use `/privacy {usage.usage}`, for example `{usage.example}`.")


# A link Slack made of an address when the command escapes links: <mailto:a@b.com|a@b.com>. Linear pattern.
_SLACK_MAILTO = re.compile(r"<mailto:([^|>\s]*)(?:\|[^>]*)?>")


def slack_unescape(text: str) -> str:
    """Slack sends command text with `&`, `<` and `>` escaped (docs: "Escaping text"); undo that."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _option(kind: RequestKind, token: str, today: date | None) -> tuple[str, date | Regime] | None:
    """``received=…`` or ``regime=…`` parsed, or None when the token is not an option."""
    name, sep, value = token.partition("=")
    name = name.strip().lower()
    if not sep or name not in OPTIONS:
        return None
    value = value.strip()
    if name == "regime":
        if value.lower() not in REGIMES:
            raise BadCommand(f"`regime` is `gdpr` or `ccpa`, not `{escape(value[:20])}`. {right_form(kind)}")
        return name, value.lower()  # type: ignore[return-value]
    try:
        received = date.fromisoformat(value) if _ISO_DAY.match(value) else None
    except ValueError:
        received = None
    if received is None:
        raise BadCommand(f"`received` is a date written YYYY-MM-DD, such as `2026-03-02`, not `{escape(value[:20])}`. "
                         f"{right_form(kind)}")
    if today is not None and received > today:
        raise BadCommand(f"The received date {received.isoformat()} is in the future (today is "
                         f"{today.isoformat()}). {right_form(kind)}")
    return name, received


def _misplaced(kind: RequestKind, option: str) -> str:
    return f"`{option}=` goes right after the email address, before anything else. {right_form(kind)}"


def parse_request(kind: RequestKind, args: str, *, extra_fields: Iterable[str] = (),
                  today: date | None = None) -> ParsedRequest:
    """Parse the text after the sub-command. Raises BadCommand with a helpful message.

    ``today`` is the date where the controller is; a received date after it is refused (the service
    always passes it)."""
    head, *tail_part = _SLACK_MAILTO.sub(r"\1", args or "").split(None, 1) or [""]
    raw_email, tail = slack_unescape(head), slack_unescape(tail_part[0] if tail_part else "")
    try:
        # Only what follows the address is split like a shell line (quoted values with spaces):
        # an address may itself hold quotes or apostrophes (o'brien@example.com).
        rest = shlex.split(tail)
    except ValueError:
        raise BadCommand(f"A quote is not closed in your command. {right_form(kind)}") from None
    if not raw_email:
        raise BadCommand(f"The subject's email address is missing. {right_form(kind)}")
    if not is_valid_email(raw_email):
        shown = raw_email if "@" not in raw_email else mask_email(raw_email)
        raise BadCommand(f"`{escape(shown)}` is not a valid email address. {right_form(kind)}")
    email = normalise_email(raw_email)
    options: dict[str, date | Regime] = {}
    while rest and (option := _option(kind, rest[0], today)) is not None:
        rest.pop(0)
        if option[0] in options:
            raise BadCommand(f"`{option[0]}` is given twice. {right_form(kind)}")
        options[option[0]] = option[1]
    changes: dict[str, str] = {}
    if kind is RequestKind.RECTIFICATION:
        allowed = {*CORE_RECTIFIABLE_FIELDS, *(f.strip().lower() for f in extra_fields if f.strip())}
        while rest and "=" in rest[0]:
            alias, _, value = rest.pop(0).partition("=")
            alias = alias.strip().lower()
            if alias in OPTIONS:
                raise BadCommand(_misplaced(kind, alias))
            if not _ALIAS.match(alias) or alias not in allowed:
                known = ", ".join(f"`{escape(a)}`" for a in sorted(allowed))
                raise BadCommand(f"`{escape(alias) or '(empty)'}` is not a field I can correct. Known fields: {known}. "
                                 f"{right_form(kind)}")
            if alias in changes:
                raise BadCommand(f"`{escape(alias)}` is given twice. {right_form(kind)}")
            value = value.strip()
            if alias == "email":
                if not value:
                    raise BadCommand("The email field cannot be cleared by rectification; use "
                                     "`/privacy erase` to remove the person.")
                if not is_valid_email(value):
                    raise BadCommand(f"The new email `{escape(mask_email(value))}` is not a valid address. "
                                     f"{right_form(kind)}")
                value = normalise_email(value)
                if value == email:
                    raise BadCommand("The new email is the same as the current one. "
                                     f"{right_form(kind)}")
            changes[alias] = value
        if not changes:
            raise BadCommand(f"Say which fields to correct, as `field=value`. {right_form(kind)}")
    # An option typed after the note would otherwise stay in it unseen, and the clock would start today.
    if misplaced := next((name for token in rest if (name := token.partition("=")[0].strip().lower()) in OPTIONS
                          and "=" in token), None):
        raise BadCommand(_misplaced(kind, misplaced))
    note = " ".join(rest).strip() or None
    if note is not None:
        note = redact_emails(note)[:NOTE_MAX]
    received = options.get("received")
    regime = options.get("regime")
    return ParsedRequest(kind=kind, email=email, note=note, changes=changes,
                         received=received if isinstance(received, date) else None,
                         regime=regime if isinstance(regime, str) else None)


IDENTITY_NOTE_MAX = 200


@dataclass(frozen=True)
class IdentityCheck:
    """How the verifier checked the requester's identity; ``note`` says what "other" was."""

    method: IdentityMethod
    note: str | None = None


def parse_identity(method: str, note: str) -> IdentityCheck:
    """The identity modal's answer; BadCommand names what is missing (shown next to the input)."""
    try:
        chosen = IdentityMethod(method)
    except ValueError:
        raise BadCommand("Choose how you verified the requester's identity.") from None
    text = redact_emails(note.strip())[:IDENTITY_NOTE_MAX] or None
    if chosen is IdentityMethod.OTHER and (text is None or len(text) < 3):
        raise BadCommand("Say how you verified the identity (a few words).")
    return IdentityCheck(chosen, text)


def parse_notice(*, confirmed: bool, told_on: str) -> date:
    """The Extend modal's notice: the box must be ticked and the day given."""
    if not confirmed:
        raise BadCommand("Confirm that the requester was told of the extension and its reasons.")
    day = None
    if _ISO_DAY.match(told_on):
        with contextlib.suppress(ValueError):
            day = date.fromisoformat(told_on)
    if day is None:
        raise BadCommand("Pick the day the requester was told.")
    return day


def parse_request_id(args: str, *, usage: str) -> int:
    """``"12"`` or ``"#12"`` → 12, for ``/privacy status``."""
    text = (args or "").strip().lstrip("#")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ID:
        raise BadCommand(f"Give a request number. Use `/privacy {escape(usage)}`, for example `/privacy status 12`.")
    return int(text)
