"""What the bot holds about a person goes into the access package without staff (unless ACCESS_INCLUDE_STAFF):
a webhook payload kept as Mautic sent it names the contact's owner and creator, and a dismissal reason is
text a member of staff typed (Art. 15(4))."""

from __future__ import annotations

import json

from bot.requests.execution import STAFF_REASON, _holdings_without_staff
from tests.helpers import mautic_fixture


def test_kept_webhook_payloads_and_alert_reasons_lose_their_staff() -> None:
    payload = json.loads(mautic_fixture("lead_post_delete.json"))  # Mautic's own example: owner "John Doe"
    assert "createdByUser" in json.dumps(payload) and '"owner"' in json.dumps(payload)
    holdings = {
        "webhook_events": [{"type": "mautic.lead_post_save_new", "state": "done", "payload": payload}],
        "alerts": [{"id": 3, "kind": "consent_gap", "reason": "Sam: her husband asked us to", "decision": "dismiss"},
                   {"id": 4, "kind": "consent_gap", "reason": None, "decision": None}],
        "consent_records": [{"form_name": "Newsletter", "values": {"consent": "1"}}],
    }
    cleaned = json.dumps(_holdings_without_staff(holdings))
    for staff in ('"owner"', "createdByUser", "modifiedByUser", '"username"', "husband"):
        assert staff not in cleaned, staff
    alerts = json.loads(cleaned)["alerts"]
    assert alerts[0]["reason"] == STAFF_REASON and alerts[1]["reason"] is None  # no reason, nothing withheld
    assert '"Newsletter"' in cleaned and "Prague" in cleaned  # the person's own data stays
    assert holdings["alerts"][0]["reason"].startswith("Sam")  # the store's copy is not changed
