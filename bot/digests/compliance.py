"""The compliance digest as plain data: what happened since the last digest, and a trend or two.

Parts that another feature has not built yet arrive as zeros with their name in ``missing`` so the
message can say "not tracked yet" instead of failing or pretending.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.digests.forms import FormAudit
from bot.values import as_int

SPARK = "▁▂▃▄▅▆▇█"
NO_DATA = "·"
DEFAULT_PERIOD = timedelta(days=7)
SPARK_WEEKS = 8


@dataclass(frozen=True)
class FormSubmissions:
    name: str
    submissions: int
    with_consent: int
    exempt: int = 0  # forms the consent policy exempts: not counted for or against the share

    @property
    def consent_share(self) -> float | None:
        judged = self.submissions - self.exempt
        return self.with_consent / judged if judged > 0 else None


@dataclass(frozen=True)
class RequestFigures:
    opened: int = 0
    closed: int = 0
    due_soon: int = 0
    overdue: int = 0
    awaiting_cleanup: int = 0  # erasures deleted in Mautic whose clean-up checklist is not complete
    median_days_to_close: float | None = None


@dataclass(frozen=True)
class PurgeFigures:
    filed: int = 0
    completed: int = 0
    contacts_deleted: int = 0


@dataclass(frozen=True)
class WeekShare:
    week_start: datetime
    submissions: int
    with_consent: int
    exempt: int = 0

    @property
    def share(self) -> float | None:
        judged = self.submissions - self.exempt
        return self.with_consent / judged if judged > 0 else None


@dataclass(frozen=True)
class ComplianceDigest:
    since: datetime
    until: datetime
    forms: list[FormSubmissions] = field(default_factory=list)
    gaps_open: int = 0
    gaps_resolved: int = 0
    unsubscribes: int = 0
    withdrawals: int = 0
    sends_after_withdrawal: int = 0
    erased_reentries: int = 0
    consent_invalidated: int = 0  # consent records found collected under a pre-ticked box, in the period
    consent_invalid_total: int = 0  # … and all such records kept
    requests: RequestFigures = field(default_factory=RequestFigures)
    purges: PurgeFigures = field(default_factory=PurgeFigures)
    ledger_ok: bool = True
    ledger_text: str = ""
    weeks: list[WeekShare] = field(default_factory=list)
    form_audit: FormAudit | None = None
    form_audit_error: str | None = None
    # What the bot's own retention deleted in the period, per kind (inbox_rows, dead_letters, …).
    own_retention: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # parts not built yet: shown as zeros

    @property
    def submissions(self) -> int:
        return sum(f.submissions for f in self.forms)

    @property
    def with_consent(self) -> int:
        return sum(f.with_consent for f in self.forms)

    @property
    def consent_share(self) -> float | None:
        judged = self.submissions - sum(f.exempt for f in self.forms)
        return self.with_consent / judged if judged > 0 else None

    def summary(self) -> dict[str, Any]:
        """Counts only, for the digest run row."""
        return {
            "since": self.since.isoformat(), "until": self.until.isoformat(),
            "submissions": self.submissions, "with_consent": self.with_consent,
            "gaps_open": self.gaps_open, "gaps_resolved": self.gaps_resolved,
            "unsubscribes": self.unsubscribes, "withdrawals": self.withdrawals,
            "sends_after_withdrawal": self.sends_after_withdrawal, "erased_reentries": self.erased_reentries,
            "consent_invalidated": self.consent_invalidated,
            "requests_opened": self.requests.opened, "requests_closed": self.requests.closed,
            "requests_overdue": self.requests.overdue,
            "erasures_awaiting_cleanup": self.requests.awaiting_cleanup, "ledger_ok": self.ledger_ok,
            "form_findings": len(self.form_audit.findings) if self.form_audit else None,
            "own_retention": dict(self.own_retention),
            "missing": list(self.missing),
        }


def sparkline(values: Sequence[float | None], *, low: float = 0.0, high: float = 1.0) -> str:
    """One character per value on a fixed scale (shares: 0 → ▁, 1 → █); ``·`` where there is no data.

    A fixed scale keeps weeks comparable across digests: 60 % reads the same every week.
    """
    out = []
    span = high - low if high > low else 1.0
    for value in values:
        if value is None:
            out.append(NO_DATA)
            continue
        ratio = min(1.0, max(0.0, (value - low) / span))
        out.append(SPARK[min(len(SPARK) - 1, int(ratio * (len(SPARK) - 1) + 0.5))])
    return "".join(out)


def median(values: Iterable[float]) -> float | None:
    data = list(values)
    return float(statistics.median(data)) if data else None


def week_starts(until: datetime, weeks: int = SPARK_WEEKS) -> list[datetime]:
    """Starts of the ``weeks`` seven-day windows ending at ``until``, oldest first."""
    return [until - DEFAULT_PERIOD * (weeks - i) for i in range(weeks)]


def period_since(last_until: datetime | None, until: datetime) -> datetime:
    """The period a digest covers starts where the previous digest of its kind ended (else a week ago)."""
    if last_until is None or last_until >= until:
        return until - DEFAULT_PERIOD
    return last_until


def forms_from_counts(counts: Mapping[str, Any]) -> list[FormSubmissions]:
    """Read ``forms`` from ``storage.intake.compliance_counts``: a list of dicts or a mapping keyed by form."""
    raw = counts.get("forms") or counts.get("submissions_per_form") or []
    items: list[tuple[str, Any]]
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    else:
        items = [(str(v.get("form_name") or v.get("name") or f"form {v.get('form_id')}"), v) for v in raw
                 if isinstance(v, Mapping)]
    forms = []
    for name, value in items:
        if not isinstance(value, Mapping):
            continue
        forms.append(FormSubmissions(
            name=str(value.get("form_name") or value.get("name") or name),
            submissions=as_int(value.get("submissions"), 0),
            with_consent=as_int(value.get("with_consent"), 0),
            exempt=as_int(value.get("exempt"), 0),
        ))
    forms.sort(key=lambda f: (-f.submissions, f.name))
    return forms


def now_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
