"""``/privacy consent <email>``: what the bot holds about one address's consent, for an approver's eyes
only. Every lookup is written to the ledger (who looked up whom, by keyed hash)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bot.errors import BadCommand
from bot.intake.blocks import HistoryAlert, HistoryRecord, HistoryWithdrawal, consent_history_message
from bot.privacy import is_valid_email, mask_email, normalise_email, subject_hash
from bot.slack.blocks import escape
from storage import intake as store
from storage import ledger
from storage.db import unit_of_work

if TYPE_CHECKING:
    from bot.services import Services

USAGE = escape("Usage: `/privacy consent <email>`, e.g. `/privacy consent jane@example.com`")
_MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")


def parse_email(args: str) -> str:
    """The address the command names; raises :class:`BadCommand` (with the usage) for anything else."""
    text = args.strip()
    match = _MAILTO.match(text)  # Slack may send a typed address as <mailto:a@b.c|a@b.c>
    email = match.group(1) if match else text
    if not email or " " in email or not is_valid_email(email):
        raise BadCommand(USAGE)
    return email


async def consent_history(services: Services, user_id: str, args: str) -> dict[str, Any]:
    """The history message for the address in ``args``, looked up for ``user_id`` (an approver)."""
    email = parse_email(args)
    subject = subject_hash(services.hash_key, email)
    async with unit_of_work(services.sessions) as session:
        history = await store.consent_history(session, subject)
        await ledger.record(session, actor=user_id, action="consent.history_viewed",
                            subject=f"subject:{subject[:16]}",
                            details={"records": len(history["records"]), "alerts": len(history["alerts"])})
    return consent_history_message(
        mask_email(normalise_email(email)),
        [HistoryRecord(r.submitted_at, r.form_name, r.given, r.exempt, dict(r.values), r.label_text,
                       r.invalid_at is not None) for r in history["records"]],
        [HistoryWithdrawal(w.withdrawn_at, w.channel, w.new_status, w.restored_at) for w in history["withdrawals"]],
        [HistoryAlert(a.id or 0, a.kind, a.state, a.created_at, a.decision) for a in history["alerts"]],
    )
