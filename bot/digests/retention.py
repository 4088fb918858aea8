"""Retention (GDPR Art. 5(1)(e), storage limitation): which Mautic contacts are past the retention period.

The rule is Mautic's own ``mautic:maintenance:cleanup --gdpr`` rule (its ``CleanupMaintenanceCommand``): a contact
is stale when it was last active before the cutoff, or was never active and was added before the cutoff.
It is expressed twice, as Mautic ``where`` filters (so Mautic counts and pages server-side) and as a plain
predicate (so the purge can check every contact again before deleting it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.mautic import Where

SAMPLE_SIZE = 5
# Per-contact segment look-ups are one API call each: do them only up to this many contacts.
SEGMENT_LOOKUP_CAP = 50


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """Start of the retention window, to the second (Mautic stores datetimes to the second, in UTC)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return (now.astimezone(UTC) - timedelta(days=retention_days)).replace(microsecond=0)


def stale_filter(cutoff: datetime) -> list[Where]:
    """``last_active < cutoff OR (last_active IS NULL AND date_added < cutoff)`` as one ``orX`` condition."""
    return [
        Where("", "orX", [
            Where("last_active", "lt", cutoff),
            Where("", "andX", [Where("last_active", "isNull"), Where("date_added", "lt", cutoff)]),
        ])
    ]


def never_active_filter(cutoff: datetime) -> list[Where]:
    """The never-active part of :func:`stale_filter`, counted separately for the digest."""
    return [Where("last_active", "isNull"), Where("date_added", "lt", cutoff)]


def is_stale(last_active: datetime | None, date_added: datetime | None, cutoff: datetime) -> bool:
    """The same rule as :func:`stale_filter`, for one contact already fetched."""
    if last_active is not None:
        return last_active < cutoff
    return date_added is not None and date_added < cutoff


@dataclass(frozen=True)
class SegmentCount:
    name: str
    contacts: int


@dataclass(frozen=True)
class RetentionSnapshot:
    """What the retention digest shows; holds masked addresses only."""

    cutoff: datetime
    retention_days: int
    total: int
    never_active: int
    sample: list[str] = field(default_factory=list)  # masked emails
    segments: list[SegmentCount] = field(default_factory=list)
    segments_from: int = 0  # how many stale contacts the segment breakdown looked at
    api_calls: int = 0

    @property
    def inactive(self) -> int:
        """Stale because their last activity is old (as opposed to never active)."""
        return self.total - self.never_active

    @property
    def segments_exact(self) -> bool:
        return self.segments_from >= self.total

    def summary(self) -> dict[str, object]:
        """Counts only (no addresses): what the digest run row and the ledger keep."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "retention_days": self.retention_days,
            "total": self.total,
            "never_active": self.never_active,
            "segments": [[s.name, s.contacts] for s in self.segments],
            "segments_from": self.segments_from,
        }


def tally_segments(memberships: Sequence[Sequence[str]]) -> list[SegmentCount]:
    """Count contacts per segment name from each contact's segment names; most populated first."""
    counts: dict[str, int] = {}
    for names in memberships:
        for name in set(names) or {"(no segment)"}:
            counts[name] = counts.get(name, 0) + 1
    return [SegmentCount(n, c) for n, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
