"""Prometheus metrics: per-process counters in a registry of the app's own, and database gauges read at
scrape time.

The registry belongs to one app (never prometheus-client's process-global default), so several apps in
one process (tests, a benchmark) keep their figures apart. Counters are told by observer hooks (the
messenger's, the Mautic client's, the job runner's settle notices); nothing in the core imports this.
Gauges that describe shared state (backlog, open requests, alerts, the ledger) are read from the
database when scraped, so every replica reports the same whole-system figures; the view gathers them
asynchronously and :func:`render` only formats.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from storage.metrics import GaugeSnapshot

PREFIX = "privacy_bot_"
# The classic text format generate_latest writes; every Prometheus version reads it (prometheus-client itself
# answers with it when a scraper does not negotiate).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
DueBucket = Callable[[date], str]


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.webhook_deliveries = Counter(
            PREFIX + "webhook_deliveries",
            "Mautic webhook deliveries by outcome (accepted, bad_signature, too_large, timeout, busy, error)",
            ["outcome"], registry=r)
        self.webhook_seconds = Histogram(
            PREFIX + "webhook_request_seconds", "Time to verify, commit and answer one Mautic webhook delivery",
            registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.job_failures = Counter(
            PREFIX + "job_failures", "Jobs that failed for good (attempts spent or a permanent error)", ["kind"],
            registry=r)
        self.slack_calls = Counter(
            PREFIX + "slack_calls", "Slack Web API calls by method and outcome (ok, refused, unavailable)",
            ["method", "outcome"], registry=r)
        self.mautic_calls = Counter(
            PREFIX + "mautic_calls", "Mautic API calls by outcome (ok, not_found, refused, auth_error, unavailable)",
            ["outcome"], registry=r)

    # ---- observer hooks, in the shapes the messenger, the Mautic client and the job runner call ----

    def slack_call(self, method: str, outcome: str) -> None:
        self.slack_calls.labels(method=method, outcome=outcome).inc()

    def mautic_call(self, outcome: str) -> None:
        self.mautic_calls.labels(outcome=outcome).inc()

    def job_settled(self, job_id: int, kind: str, outcome: str) -> None:
        if outcome == "failed":
            self.job_failures.labels(kind=kind).inc()

    def webhook_delivery(self, outcome: str, seconds: float) -> None:
        self.webhook_deliveries.labels(outcome=outcome).inc()
        self.webhook_seconds.observe(seconds)

    def render(self, gauges: GaugeSnapshot, due_bucket: DueBucket) -> bytes:
        """The text exposition: this process's counters plus the gauges read for this scrape.
        ``due_bucket`` names a due date's urgency (ok, soon, overdue) by the requests feature's rule."""
        return generate_latest(_Scrape(self.registry, gauges, due_bucket))  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Scrape:
    """A one-off collector: nothing shared is mutated, so concurrent scrapes cannot mix their figures."""

    registry: CollectorRegistry
    gauges: GaugeSnapshot
    due_bucket: DueBucket

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from gauge_families(self.gauges, self.due_bucket)


def gauge_families(gauges: GaugeSnapshot, due_bucket: DueBucket) -> Iterator[Metric]:
    inbox = GaugeMetricFamily(PREFIX + "inbox_pending", "Webhook deliveries and events committed, not yet processed")
    inbox.add_metric([], gauges.inbox_pending)
    yield inbox
    jobs = GaugeMetricFamily(PREFIX + "jobs", "Durable jobs by kind and state", labels=["kind", "state"])
    for (kind, state), n in sorted(gauges.jobs.items()):
        jobs.add_metric([kind, state], n)
    yield jobs
    by_bucket: Tally[tuple[str, str]] = Tally()
    for (kind, due), n in gauges.open_requests_by_due.items():
        by_bucket[(kind, due_bucket(due))] += n
    requests = GaugeMetricFamily(PREFIX + "requests_open", "Open data-subject requests by kind and due (ok, soon, "
                                 "overdue)", labels=["kind", "due"])
    for (kind, bucket), n in sorted(by_bucket.items()):
        requests.add_metric([kind, bucket], n)
    yield requests
    alerts = GaugeMetricFamily(PREFIX + "consent_alerts_open", "Consent alerts waiting for a decision")
    alerts.add_metric([], gauges.consent_alerts_open)
    yield alerts
    ledger = GaugeMetricFamily(PREFIX + "ledger_entries", "Entries in the audit ledger")
    ledger.add_metric([], gauges.ledger_entries)
    yield ledger
