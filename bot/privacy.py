"""Personal-data helpers: normalising, validating, masking and keyed hashing of email addresses.

Everything here runs on outside text (log lines, dead-letter bodies, Slack input) and must stay linear in
its length: an attacker controls that text. So no pattern is ever tried from every position of a long
run; :func:`email_spans` jumps from one ``@`` to the next with ``str.find`` and reads the local part
backwards and the domain forwards with possessive (non-backtracking) patterns, so each character is
examined at most twice whatever the input.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator

# Deliberately plain: one @, a dotted domain, no spaces. Mautic stores what forms accept; this only
# catches typos in a slash command, it is not an RFC 5322 parser.
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>.]{2,}$")
# RFC 5321 §4.5.3.1: 64 octets of local part, 255 of domain; longer is not an address we accept.
EMAIL_MAX = 320

# The local part read backwards from an ``@`` (the text reversed), and the domain read forwards from it.
# Possessive quantifiers (Python 3.11+) never give back characters, so a match costs its length plus one.
LOCAL_PART_REVERSED = re.compile(r"[\w.+'%-]++", re.UNICODE)
DOMAIN = re.compile(r"[\w-]++(?:\.[\w-]++)++", re.UNICODE)
# The ways an ``@`` arrives encoded in bodies and log lines: URL-encoding (also twice), HTML character
# references, JSON/Python escapes. Literal alternatives only, so finding them is linear too.
_ENCODED_AT = re.compile(r"%(?:25)?40|&#0*64;|&#[xX]0*40;|&commat;|\\u0040|\\x40", re.IGNORECASE)
# What a masked address may show: never a character Slack or a log reader would take as markup.
_SAFE_DOMAIN = re.compile(r"[\w.-]{1,253}", re.UNICODE)
_DOMAIN_CHARS = re.compile(r"[\w.-]*+", re.UNICODE)


def normalise_email(email: str) -> str:
    """The one exact-match key for an address (subject hashes and Mautic look-ups depend on it): trimmed and
    lower-cased, not accent-folded (jörg@ and jorg@ are different people)."""
    return email.strip().lower()


def is_valid_email(email: str) -> bool:
    email = email.strip()
    return len(email) <= EMAIL_MAX and bool(_EMAIL.match(email))


def mask_email(email: str | None) -> str:
    """``jane@example.com`` → ``j***@example.com``: enough to tell people apart, not to contact them.

    Only a letter or digit of the local part and the leading domain characters are kept, so what follows
    a real domain (``x@evil.example|<!channel>``) never survives into the mask."""
    if not email or "@" not in email:
        return "(no email)"
    local, _, domain = email.strip().rpartition("@")
    first = local[:1] if local[:1].isalnum() else "*"
    safe = _SAFE_DOMAIN.match(domain)
    return f"{first}***@{safe.group(0) if safe else '?'}"


def decode_at_signs(text: str) -> str:
    """``jane%40example.com``, ``jane&#64;example.com``, ``jane\\u0040example.com`` → ``jane@example.com``,
    so an address carried encoded is found (and masked) like a plain one."""
    return _ENCODED_AT.sub("@", text) if ("%" in text or "&" in text or "\\" in text) else text


def email_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every address in ``text``, in order, in time linear in ``len(text)``.

    From each ``@`` the local part is read backwards (over the text reversed once) and the domain forwards;
    neither run can cross another ``@``, so the runs read from different ``@``s never overlap."""
    reversed_text: str | None = None
    length = len(text)
    done = 0
    at = text.find("@")
    while at != -1:
        domain = DOMAIN.match(text, at + 1)
        if domain is not None:
            if reversed_text is None:
                reversed_text = text[::-1]
            local = LOCAL_PART_REVERSED.match(reversed_text, length - at)
            start = max(at - (len(local.group(0)) if local else 0), done)
            if start < at:
                yield start, domain.end()
                done = domain.end()
                at = text.find("@", done)
                continue
        at = text.find("@", at + 1)


def find_emails(text: str) -> list[str]:
    """Every address in free text, plain or with an encoded ``@``, as written (not normalised)."""
    text = decode_at_signs(text)
    return [text[start:end] for start, end in email_spans(text)]


def redact_emails(text: str) -> str:
    """Mask every address in free text (log lines, Slack text) as a last line of defence; an address
    whose ``@`` is encoded (``%40``, ``&#64;``, ``\\u0040``) is masked too."""
    text = decode_at_signs(text)
    parts: list[str] = []
    last = 0
    for start, end in email_spans(text):
        parts.append(text[last:start])
        parts.append(mask_email(text[start:end]))
        last = end
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def cut_then_redact(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text`` (plus a note of how many were cut), then masked.

    Cutting first bounds the work however long the text is. A cut inside an address would leave a
    local part whose domain was cut short, which the mask may no longer recognise, so an address
    running into the cut goes whole."""
    if len(text) <= limit:
        return redact_emails(text)
    head = decode_at_signs(text[:limit])
    at = head.rfind("@", max(0, len(head) - EMAIL_MAX))
    if at != -1 and _DOMAIN_CHARS.match(head, at + 1).end() == len(head):  # type: ignore[union-attr]
        # The cut falls in a domain: the address goes from its local part on.
        head = _without_trailing_local_part(head[:at])
    else:
        # The cut falls in a local part whose @ comes after it: that local part goes.
        after = decode_at_signs(text[limit: limit + EMAIL_MAX + 16])
        rest = LOCAL_PART_REVERSED.match(after)  # the same character class read forwards
        if after[rest.end() if rest else 0:][:1] == "@":
            head = _without_trailing_local_part(head)
    return f"{redact_emails(head)}…[{len(text) - limit} characters cut]"


def _without_trailing_local_part(text: str) -> str:
    local = LOCAL_PART_REVERSED.match(text[-(EMAIL_MAX + 16):][::-1])
    return text[: len(text) - len(local.group(0))] if local else text


def subject_hash(key: str, email: str) -> str:
    """Keyed hash of the normalised address: joins records about one person without storing the address."""
    return hmac.new(key.encode(), normalise_email(email).encode(), hashlib.sha256).hexdigest()
