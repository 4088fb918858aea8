"""A plain, read-only picture of one request, what Block Kit builders and answers are made from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bot.requests.model import ANSWERED, RequestKind, RequestState
from storage.requests import ERASED_MASK


@dataclass(frozen=True)
class RequestInfo:
    id: int
    kind: RequestKind
    state: RequestState
    regime: str
    subject_masked: str
    filed_by: str
    received_at: datetime
    due_date: date
    original_due_date: date
    received_on: date | None = None  # None: a row written without it counts from its filing day
    due_note: str | None = None
    note: str | None = None
    changed_fields: tuple[str, ...] = ()
    contacts_found: tuple[int, ...] | None = None  # None: not looked up yet
    verified_by: str | None = None
    verified_at: datetime | None = None
    verification_method: str | None = None
    verification_note: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    rejected_by: str | None = None
    rejected_at: datetime | None = None
    reject_reason: str | None = None
    extended_by: str | None = None
    extended_at: datetime | None = None
    extension_reason: str | None = None
    acknowledgement_due: date | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    extension_notified_on: date | None = None
    responded_at: datetime | None = None
    responded_by: str | None = None
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    released_at: datetime | None = None
    released_by: str | None = None
    failure: str | None = None
    completed_at: datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)
    message_ts: str | None = None
    channel: str = ""

    @property
    def ref(self) -> str:
        """Opaque reference for the audit ledger."""
        return f"request:{self.id}"

    @property
    def received_day(self) -> date:
        """The day the controller received the request, from which every period is counted."""
        return self.received_on or self.received_at.date()

    @property
    def is_open(self) -> bool:
        """Open until carried out or rejected *and* the answer went out; overdue counts until then."""
        return self.awaiting_answer or self.restriction_in_force

    @property
    def awaiting_answer(self) -> bool:
        """Not yet carried out or rejected, or not yet answered: the due date still counts."""
        return self.state.is_open or (self.state in ANSWERED and self.responded_at is None)

    @property
    def restriction_in_force(self) -> bool:
        return self.kind is RequestKind.RESTRICTION and self.state is RequestState.DONE and self.lifted_at is None

    @property
    def package_prepared(self) -> bool:
        """An access package built to be released by an approver (requests answered before the release step
        existed delivered theirs at once and have none)."""
        return self.kind is RequestKind.ACCESS and self.state is RequestState.DONE and "release" in self.result

    @property
    def awaiting_release(self) -> bool:
        """Prepared and not yet released; a subject erased since has no package left to release."""
        return (self.package_prepared and self.released_at is None and not self.erased
                and not self.package_expired)

    @property
    def package_expired(self) -> bool:
        """Deleted unreleased: nobody released it within EXPORT_LINK_TTL of its preparation."""
        return self.package_prepared and self.result.get("release") == "expired"

    @property
    def erased(self) -> bool:
        return self.subject_masked == ERASED_MASK


def info_from_row(row: Any) -> RequestInfo:
    """Build from a ``storage.requests.PrivacyRequest`` (duck-typed so this module stays storage-free)."""
    return RequestInfo(
        id=row.id,
        kind=RequestKind(row.kind),
        state=RequestState(row.state),
        regime=row.regime,
        subject_masked=row.subject_masked,
        filed_by=row.filed_by,
        received_at=row.received_at,
        due_date=row.due_date,
        original_due_date=row.original_due_date,
        received_on=row.received_on,
        due_note=row.due_note,
        note=row.note,
        changed_fields=tuple(sorted((row.changes or {}).keys())) or tuple(row.result.get("fields", ())),
        contacts_found=tuple(row.contacts_found) if row.contacts_found is not None else None,
        verified_by=row.verified_by,
        verified_at=row.verified_at,
        verification_method=row.verification_method,
        verification_note=row.verification_note,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        rejected_by=row.rejected_by,
        rejected_at=row.rejected_at,
        reject_reason=row.reject_reason,
        extended_by=row.extended_by,
        extended_at=row.extended_at,
        extension_reason=row.extension_reason,
        acknowledgement_due=row.acknowledgement_due,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        extension_notified_on=row.extension_notified_on,
        responded_at=row.responded_at,
        responded_by=row.responded_by,
        lifted_at=row.lifted_at,
        lifted_by=row.lifted_by,
        released_at=row.released_at,
        released_by=row.released_by,
        failure=row.failure,
        completed_at=row.completed_at,
        result=dict(row.result or {}),
        message_ts=row.message_ts,
        channel=row.channel,
    )
