"""``GET /metrics``: the text format parses with prometheus-client's own parser, the figures move with what
happens, gauges come from the database, and the optional bearer token is enforced."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sandbox.harness import BOB, Sandbox, sandbox
from sandbox.mautic import form_submission_event
from tests.helpers import test_tuning
from tests.intake.helpers import processed

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(box: Sandbox, headers: dict[str, str] | None = None) -> Samples:
    async with box.http.get(f"{box.url}/metrics", headers=headers or {}) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def gap(contact_id: int, email: str) -> dict[str, list[dict[str, object]]]:
    return form_submission_event(contact_id=contact_id, email=email, results={"email": email}, form_id=4,
                                 form_name="Newsletter", submission_id=contact_id,
                                 timestamp="2024-10-24T15:54:35+00:00")


async def test_metrics_parse_and_move_when_a_delivery_arrives(box: Sandbox) -> None:
    before = await scrape(box)
    accepted = ("privacy_bot_webhook_deliveries_total", (("outcome", "accepted"),))
    assert before.get(accepted, 0) == 0
    assert before[("privacy_bot_inbox_pending", ())] == 0
    assert before[("privacy_bot_consent_alerts_open", ())] == 0
    assert before[("privacy_bot_ledger_entries", ())] == 0
    assert before[("privacy_bot_webhook_request_seconds_count", ())] == 0

    status, _ = await box.webhook(gap(1, "jane@example.com"))
    assert status == 200
    await processed(box)
    await box.jobs_idle()

    after = await scrape(box)
    assert after[accepted] == 1
    assert after[("privacy_bot_webhook_request_seconds_count", ())] == 1
    assert after[("privacy_bot_inbox_pending", ())] == 0  # processed by now
    assert after[("privacy_bot_consent_alerts_open", ())] == 1  # the gap is an open alert
    assert after[("privacy_bot_ledger_entries", ())] >= 1
    assert after[("privacy_bot_slack_calls_total", (("method", "chat.postMessage"), ("outcome", "ok")))] >= 1
    done_jobs = [v for (name, labels), v in after.items()
                 if name == "privacy_bot_jobs" and ("state", "done") in labels]
    assert sum(done_jobs) >= 1

    # A delivery with a wrong signature counts as such, and stores nothing.
    status, _ = await box.webhook(gap(2, "joe@example.com"), secret="wrong")
    assert status == 401
    again = await scrape(box)
    assert again[("privacy_bot_webhook_deliveries_total", (("outcome", "bad_signature"),))] == 1
    assert again[accepted] == 1


async def test_open_requests_by_kind_and_due_and_mautic_calls(box: Sandbox) -> None:
    box.mautic.add_contact(email="jane@example.com")
    result = await box.command(BOB, "dsar jane@example.com")
    assert "Filed" in result.text
    await box.jobs_idle()
    samples = await scrape(box)
    assert samples[("privacy_bot_requests_open", (("due", "ok"), ("kind", "access")))] == 1
    assert samples[("privacy_bot_mautic_calls_total", (("outcome", "ok"),))] >= 1


async def test_metrics_token_is_required_when_set_and_each_app_counts_its_own(db_url: str, tmp_path: Path) -> None:
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path, metrics_token="s3cret-scrape") as box:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-scrape"}):
            async with box.http.get(f"{box.url}/metrics", headers=headers) as response:
                assert response.status == 401
                assert "s3cret" not in await response.text()
        status, _ = await box.webhook(gap(1, "jane@example.com"))
        assert status == 200
        samples = await scrape(box, {"Authorization": "Bearer s3cret-scrape"})
        assert samples[("privacy_bot_webhook_deliveries_total", (("outcome", "accepted"),))] == 1
        # A second app in the same process starts from zero: registries are per app, not process-global.
        await box.restart_bot()
        fresh = await scrape(box, {"Authorization": "Bearer s3cret-scrape"})
        assert fresh.get(("privacy_bot_webhook_deliveries_total", (("outcome", "accepted"),)), 0) == 0


def test_counters_follow_their_hooks_and_gauges_bucket_due_dates() -> None:
    from datetime import date

    from bot.metrics import Metrics
    from handlers.metrics import due_buckets
    from storage.metrics import GaugeSnapshot

    metrics = Metrics()
    metrics.job_settled(1, "requests.execute", "retry")  # a retry is not a failure
    metrics.job_settled(1, "requests.execute", "failed")
    metrics.slack_call("chat.update", "unavailable")
    metrics.mautic_call("unavailable")
    today = date(2026, 12, 1)
    gauges = GaugeSnapshot(inbox_pending=3, jobs={("intake.process", "queued"): 2},
                           open_requests_by_due={("erasure", date(2026, 11, 30)): 1, ("erasure", date(2026, 12, 4)): 2,
                                                 ("access", date(2026, 12, 31)): 4},
                           consent_alerts_open=5, ledger_entries=9)
    text = metrics.render(gauges, due_buckets(today)).decode()  # due in 3 days is soon, in 30 ok
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("privacy_bot_job_failures_total", (("kind", "requests.execute"),))] == 1
    assert samples[("privacy_bot_slack_calls_total", (("method", "chat.update"), ("outcome", "unavailable")))] == 1
    assert samples[("privacy_bot_mautic_calls_total", (("outcome", "unavailable"),))] == 1
    assert samples[("privacy_bot_requests_open", (("due", "overdue"), ("kind", "erasure")))] == 1
    assert samples[("privacy_bot_requests_open", (("due", "soon"), ("kind", "erasure")))] == 2
    assert samples[("privacy_bot_requests_open", (("due", "ok"), ("kind", "access")))] == 4
    assert samples[("privacy_bot_jobs", (("kind", "intake.process"), ("state", "queued")))] == 2
    assert samples[("privacy_bot_inbox_pending", ())] == 3
    assert Metrics().registry is not metrics.registry  # each app its own registry
