"""Personal-data helpers: normalising, validating, masking and keyed hashing of email addresses."""

from __future__ import annotations

import hashlib
import hmac
import re

# Deliberately plain: one @, a dotted domain, no spaces. Mautic stores what forms accept; this only
# catches typos in a slash command, it is not an RFC 5322 parser.
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>.]{2,}$")
EMAIL_IN_TEXT = re.compile(r"[\w.+'%-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


def normalise_email(email: str) -> str:
    """The one exact-match key for an address (subject hashes and Mautic look-ups depend on it): trimmed and
    lower-cased, not accent-folded (jörg@ and jorg@ are different people)."""
    return email.strip().lower()


def is_valid_email(email: str) -> bool:
    return bool(_EMAIL.match(email.strip()))


def mask_email(email: str | None) -> str:
    """``jane@example.com`` → ``j***@example.com``: enough to tell people apart, not to contact them."""
    if not email or "@" not in email:
        return "(no email)"
    local, _, domain = email.strip().rpartition("@")
    return f"{local[:1]}***@{domain}"


def subject_hash(key: str, email: str) -> str:
    """Keyed hash of the normalised address: joins records about one person without storing the address."""
    return hmac.new(key.encode(), normalise_email(email).encode(), hashlib.sha256).hexdigest()


def redact_emails(text: str) -> str:
    """Mask every address in free text (log lines, Slack text) as a last line of defence."""
    return EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)
