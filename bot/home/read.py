"""Read what the Home tab shows, in one short read transaction; no Slack calls here."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from bot.home.model import Dashboard, DigestLink, FormShare, OpenAlert, OpenRequest
from bot.requests.view import info_from_row
from storage import digests as digest_store
from storage import home as store
from storage import requests as request_store
from storage.db import unit_of_work
from storage.intake import compliance_counts

if TYPE_CHECKING:
    from bot.services import Services

ALERTS_SHOWN = 15
CONSENT_WEEKS = 8
DIGEST_KINDS = ("retention", "compliance")


async def read_dashboard(services: Services, workspace_url: str) -> Dashboard:
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        requests = [info_from_row(row) for row in await request_store.open_requests(session)]
        alerts, alerts_total = await store.open_alert_leads(session, limit=ALERTS_SHOWN)
        digests = [run for kind in DIGEST_KINDS if (run := await digest_store.last_posted_run(session, kind))]
        forms = (await compliance_counts(session, now - timedelta(weeks=CONSENT_WEEKS), now))["forms"]
        entries, head = await store.ledger_head(session)
    return Dashboard(
        requests=tuple(OpenRequest(r.id, r.kind.value, r.kind.heading, r.subject_masked, r.state.label, r.state.value,
                                   r.due_date, r.filed_by, r.channel, r.message_ts) for r in requests),
        alerts=tuple(OpenAlert(a.id or 0, a.kind, a.title, a.created_at, a.folded_count, a.channel_id, a.message_ts)
                     for a in alerts),
        alerts_total=alerts_total,
        digests=tuple(DigestLink(d.kind, d.posted_at, d.channel, d.message_ts) for d in digests if d.posted_at),
        forms=tuple(FormShare(str(f["form_name"] or ""), int(f["submissions"]), f["consent_share"]) for f in forms),
        ledger_entries=entries,
        ledger_head=head,
        workspace_url=workspace_url,
    )
