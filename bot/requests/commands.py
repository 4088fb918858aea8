"""Parsing ``/privacy dsar|erase|rectify`` arguments. Errors say what is wrong and show the right form."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.errors import BadCommand
from bot.privacy import is_valid_email, mask_email, normalise_email, redact_emails
from bot.requests.model import RequestKind
from bot.slack.blocks import escape

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


@dataclass(frozen=True)
class Usage:
    usage: str
    example: str


USAGE: dict[RequestKind, Usage] = {
    RequestKind.ACCESS: Usage("dsar <email> [note]", "/privacy dsar jane@example.com ticket 4411"),
    RequestKind.ERASURE: Usage("erase <email> [note]", "/privacy erase jane@example.com ticket 4412"),
    RequestKind.RECTIFICATION: Usage(
        "rectify <email> <field>=<value> … [note]",
        '/privacy rectify jane@example.com lastname="van Dyke" city=Berlin ticket 4413',
    ),
}


@dataclass(frozen=True)
class ParsedRequest:
    kind: RequestKind
    email: str  # normalised
    note: str | None  # emails in it are masked: notes are shown in the channel
    changes: dict[str, str] = field(default_factory=dict)  # rectification only; "" clears a field


def right_form(kind: RequestKind) -> str:
    usage = USAGE[kind]  # placeholders such as <email> must be escaped, or Slack shows them as links
    return escape(f"Use `/privacy {usage.usage}`, for example `{usage.example}`.")


# A link Slack made of an address when the command escapes links: <mailto:a@b.com|a@b.com>. Linear pattern.
_SLACK_MAILTO = re.compile(r"<mailto:([^|>\s]*)(?:\|[^>]*)?>")


def slack_unescape(text: str) -> str:
    """Slack sends command text with `&`, `<` and `>` escaped (docs: "Escaping text"); undo that."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse_request(kind: RequestKind, args: str, *, extra_fields: Iterable[str] = ()) -> ParsedRequest:
    """Parse the text after the sub-command. Raises BadCommand with a helpful message."""
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
    changes: dict[str, str] = {}
    if kind is RequestKind.RECTIFICATION:
        allowed = {*CORE_RECTIFIABLE_FIELDS, *(f.strip().lower() for f in extra_fields if f.strip())}
        while rest and "=" in rest[0]:
            alias, _, value = rest.pop(0).partition("=")
            alias = alias.strip().lower()
            if not _ALIAS.match(alias) or alias not in allowed:
                known = ", ".join(f"`{a}`" for a in sorted(allowed))
                raise BadCommand(f"`{escape(alias) or '(empty)'}` is not a field I can correct. Known fields: {known}. "
                                 f"{right_form(kind)}")
            if alias in changes:
                raise BadCommand(f"`{alias}` is given twice. {right_form(kind)}")
            value = value.strip()
            if alias == "email":
                if not value:
                    raise BadCommand("The email field cannot be cleared by rectification; use "
                                     "`/privacy erase` to remove the person.")
                if not is_valid_email(value):
                    raise BadCommand(f"The new email `{mask_email(value)}` is not a valid address. "
                                     f"{right_form(kind)}")
                value = normalise_email(value)
                if value == email:
                    raise BadCommand("The new email is the same as the current one. "
                                     f"{right_form(kind)}")
            changes[alias] = value
        if not changes:
            raise BadCommand(f"Say which fields to correct, as `field=value`. {right_form(kind)}")
    note = " ".join(rest).strip() or None
    if note is not None:
        note = redact_emails(note)[:NOTE_MAX]
    return ParsedRequest(kind=kind, email=email, note=note, changes=changes)


def parse_request_id(args: str, *, usage: str) -> int:
    """``"12"`` or ``"#12"`` → 12, for ``/privacy status``."""
    text = (args or "").strip().lstrip("#")
    if not text.isdigit() or int(text) < 1:
        raise BadCommand(f"Give a request number. Use `/privacy {escape(usage)}`, for example `/privacy status 12`.")
    return int(text)
