"""``POST /mautic/webhook``: verify, commit every event to the inbox in one transaction, answer 2xx.

Mautic drops events on any non-2xx, unpublishes the webhook on 410, waits without a timeout and
stores our response body in its logs (mautic.md §1.6). So: verify over the raw bytes, store first,
answer fast with counts only, and do the work afterwards from the inbox (handlers/intake_jobs.py).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.app import SERVICES
from bot.intake import (
    DEAD_LETTER,
    Disposition,
    Envelope,
    InboundEvent,
    emails_in,
    parse_envelope,
    signature_ok,
)
from bot.privacy import subject_hash
from handlers.intake_jobs import inbox_writer
from handlers.limits import read_limited
from storage.intake import InboxState

log = logging.getLogger(__name__)


async def mautic_webhook(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    settings = services.settings
    raw = await read_limited(request, settings.webhook_max_bytes)
    secret = settings.mautic_webhook_secret.get_secret_value() if settings.mautic_webhook_secret else ""
    if not signature_ok(raw, request.headers.get("Webhook-Signature"), secret):
        log.warning("mautic webhook: missing or wrong Webhook-Signature (%d bytes), nothing stored", len(raw))
        return web.json_response({"ok": False, "error": "invalid signature"}, status=401)

    envelope = parse_envelope(raw)
    rows = inbox_rows(envelope, raw, services.hash_key, services.clock())
    # Committed (shared with concurrent deliveries) before we answer; processing happens after.
    new = await inbox_writer(services).commit(rows) if rows else 0
    if envelope.dead_letter:
        log.warning("mautic webhook: signed body kept as a dead letter: %s", envelope.dead_letter)
    # Counts only: Mautic writes this body into its webhook log.
    return web.json_response({"ok": True, "events": len(rows), "new": new})


def inbox_rows(envelope: Envelope, raw: bytes, hash_key: str, now: datetime) -> list[dict[str, Any]]:
    """One row per event (identical events within a body collapse to one); same keys in every row."""
    if envelope.dead_letter is not None:
        hashes = [subject_hash(hash_key, email) for email in emails_in(raw)]
        return [_row(
            dedupe_key=envelope.body_hash, event_type=DEAD_LETTER, received_at=now, occurred_at=None,
            contact_id=None, subject_hash=hashes[0] if hashes else None,
            subject_hashes=" ".join(hashes)[:4000] or None, payload=None, raw_body=raw,
            note=envelope.dead_letter[:200],
        )]
    rows: dict[str, dict[str, Any]] = {}
    for event in envelope.events:
        if event.dedupe_key in rows:
            continue
        rows[event.dedupe_key] = _row(
            dedupe_key=event.dedupe_key, event_type=event.type[:100], received_at=now,
            occurred_at=event.occurred_at, contact_id=event.contact_id, subject_hash=event.subject_hash(hash_key),
            subject_hashes=_all_subjects(event, hash_key), payload=event.payload, raw_body=None, note=None,
        )
    return list(rows.values())


def _all_subjects(event: InboundEvent, hash_key: str) -> str | None:
    # Unknown types keep their payload, so erasure must find every address in it, wherever it sits.
    if event.disposition is not Disposition.UNKNOWN:
        return None
    text = json.dumps(event.payload, ensure_ascii=False, default=str).encode()
    hashes = [subject_hash(hash_key, email) for email in emails_in(text)]
    return " ".join(hashes)[:4000] or None


def _row(**values: Any) -> dict[str, Any]:
    return {"state": InboxState.PENDING.value, "processed_at": None, **values}
