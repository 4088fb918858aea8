"""Data-subject requests: the request rows, their decisions, export links.

State changes go through ``bot.approvals.decide`` (``storage.transitions.guarded_update`` and its ledger
entry), an ``UPDATE … WHERE id = … AND state IN (…)`` whose row count tells whether this caller won; two
approvers, a double click or two replicas can never both move the same request. The pure rules (which
action is allowed from which state) live in ``bot.requests.model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Date, and_, func, or_, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.erasures import ErasedSubject
from storage.types import JSONType, UTCDateTime

OPEN_STATES = ("filed", "verified", "approved", "running", "cleanup", "failed")
# Done or rejected, a request stays open until the answer went out to the requester (responded_at).
ANSWERED_STATES = ("done", "rejected")
OBJECTION_KIND = "objection"  # bot.requests.model.RequestKind.OBJECTION (GDPR Art. 21(2)-(3))
ERASED_MASK = "(erased subject)"  # what an erasure leaves in place of the masked address


class PrivacyRequest(SQLModel, table=True):
    __tablename__ = "privacy_requests"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    state: str = Field(max_length=16, index=True)
    regime: str = Field(max_length=8)
    subject_hash: str = Field(max_length=64, index=True)
    # The clear address lives here only while the request needs it; terminal states and erasure clear it.
    subject_email: str | None = Field(default=None, max_length=320)
    subject_masked: str = Field(max_length=320)
    note: str | None = Field(default=None, max_length=500)
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    filed_by: str = Field(max_length=32)
    channel: str = Field(max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))  # when it was filed here
    # The day the controller received the request (any channel, in DEADLINE_TIMEZONE): the clock starts here.
    # Filing always sets it and the migration backfilled it; a row written without it (an older replica
    # during a rolling upgrade) counts from its filing day, as ``RequestInfo.received_day`` does.
    received_on: date | None = Field(default=None, sa_column=Column(Date(), nullable=True))
    due_date: date = Field(sa_column=Column(Date(), nullable=False))
    due_note: str | None = Field(default=None, max_length=200)  # why the due date rolled forward, if it did
    original_due_date: date = Field(sa_column=Column(Date(), nullable=False))
    extended_by: str | None = Field(default=None, max_length=32)
    extended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    extension_reason: str | None = Field(default=None, max_length=1000)
    verified_by: str | None = Field(default=None, max_length=32)
    verified_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    verification_method: str | None = Field(default=None, max_length=16)  # bot.requests.model.IdentityMethod
    verification_note: str | None = Field(default=None, max_length=200)  # what "other" was
    approved_by: str | None = Field(default=None, max_length=32)
    approved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    rejected_by: str | None = Field(default=None, max_length=32)
    rejected_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    reject_reason: str | None = Field(default=None, max_length=1000)
    contacts_found: list[int] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    failure: str | None = Field(default=None, max_length=1000)
    runs: int = 0
    pii_messages: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    # Proof the subject was told: the confirmation of receipt (CCPA §7021(a), due by acknowledgement_due),
    # the extension notice (Art. 12(3), CCPA §7021(b)) and the answer itself.
    acknowledgement_due: date | None = Field(default=None, sa_column=Column(Date(), nullable=True))
    acknowledged_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    acknowledged_by: str | None = Field(default=None, max_length=32)
    extension_notified_on: date | None = Field(default=None, sa_column=Column(Date(), nullable=True))
    responded_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    responded_by: str | None = Field(default=None, max_length=32)
    lifted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))  # restriction
    lifted_by: str | None = Field(default=None, max_length=32)
    # An access package goes out only after an approver released it.
    released_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    released_by: str | None = Field(default=None, max_length=32)
    last_reminded_on: date | None = Field(default=None, sa_column=Column(Date(), nullable=True))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class RequestDecision(SQLModel, table=True):
    """Every click on a request, accepted or refused: the request's own history for `/privacy status`."""

    __tablename__ = "request_decisions"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="privacy_requests.id", index=True)
    actor: str = Field(max_length=32)
    action: str = Field(max_length=16)
    outcome: str = Field(max_length=16)  # accepted | refused
    reason: str | None = Field(default=None, max_length=1000)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ExportLink(SQLModel, table=True):
    """An expiring download of an access package. Only the SHA-256 of the token is stored."""

    __tablename__ = "export_links"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="privacy_requests.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    path: str = Field(max_length=1000)
    size: int = 0
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    downloads: int = 0
    last_download_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


__all__ = ["ErasedSubject", "ExportLink", "PrivacyRequest", "RequestDecision"]


async def add_request(session: AsyncSession, request: PrivacyRequest) -> PrivacyRequest:
    session.add(request)
    await session.flush()
    return request


async def get_request(session: AsyncSession, request_id: int) -> PrivacyRequest | None:
    # populate_existing: a guarded UPDATE earlier in this session must show in the object returned.
    query = select(PrivacyRequest).where(PrivacyRequest.id == request_id).execution_options(populate_existing=True)
    return (await session.exec(query)).first()


async def set_fields(session: AsyncSession, request_id: int, values: dict[str, Any]) -> None:
    """Unguarded bookkeeping (message ts, contacts found, result) that never changes the state."""
    await session.exec(update(PrivacyRequest).where(col(PrivacyRequest.id) == request_id).values(**values))  # type: ignore[call-overload]


async def add_decision(
    session: AsyncSession, *, request_id: int, actor: str, action: str, outcome: str, at: datetime,
    reason: str | None = None,
) -> None:
    session.add(RequestDecision(request_id=request_id, actor=actor, action=action, outcome=outcome,
                                reason=reason, at=at))
    await session.flush()


async def decisions_for(session: AsyncSession, request_id: int) -> list[RequestDecision]:
    query = select(RequestDecision).where(RequestDecision.request_id == request_id).order_by(col(RequestDecision.id))
    return list((await session.exec(query)).all())


def awaiting_answer() -> Any:
    """The SQL condition of a request whose due date still counts: not yet decided and carried out, or
    not yet answered."""
    return or_(col(PrivacyRequest.state).in_(OPEN_STATES),
               and_(col(PrivacyRequest.state).in_(ANSWERED_STATES), col(PrivacyRequest.responded_at).is_(None)))


def is_open() -> Any:
    """The SQL condition of a listed request: awaiting its answer, or a restriction still in force."""
    return or_(awaiting_answer(),
               and_(col(PrivacyRequest.kind) == "restriction", col(PrivacyRequest.state) == "done",
                    col(PrivacyRequest.lifted_at).is_(None)))


async def open_requests(session: AsyncSession) -> list[PrivacyRequest]:
    query = (select(PrivacyRequest).where(is_open())
             .order_by(col(PrivacyRequest.due_date), col(PrivacyRequest.id)))
    return list((await session.exec(query)).all())


async def requests_in_state(session: AsyncSession, state: str) -> list[PrivacyRequest]:
    query = select(PrivacyRequest).where(col(PrivacyRequest.state) == state).order_by(col(PrivacyRequest.id))
    return list((await session.exec(query)).all())


async def requests_for_subject(session: AsyncSession, subject_hash: str) -> list[PrivacyRequest]:
    query = select(PrivacyRequest).where(PrivacyRequest.subject_hash == subject_hash).order_by(col(PrivacyRequest.id))
    return list((await session.exec(query)).all())


async def objections_among(session: AsyncSession, subjects: set[str]) -> dict[str, datetime]:
    """Which of these subjects objected to direct marketing, and when the objection was carried out (the
    latest, if several): one query for a whole chunk of intake events. A completed objection request keeps
    its keyed subject hash, kind and completion time for good (erasure clears only the address and note)."""
    if not subjects:
        return {}
    completed = func.max(col(PrivacyRequest.completed_at))
    query = (select(PrivacyRequest.subject_hash, completed)
             .where(col(PrivacyRequest.kind) == OBJECTION_KIND, col(PrivacyRequest.state) == "done",
                    col(PrivacyRequest.completed_at).is_not(None),
                    col(PrivacyRequest.subject_hash).in_(sorted(subjects)))
             .group_by(col(PrivacyRequest.subject_hash)))
    return {str(subject): at for subject, at in (await session.exec(query)).all() if at is not None}
async def requests_for_subjects(session: AsyncSession, subject_hashes: Sequence[str]) -> list[PrivacyRequest]:
    query = (select(PrivacyRequest).where(col(PrivacyRequest.subject_hash).in_(sorted(set(subject_hashes))))
             .order_by(col(PrivacyRequest.id)))
    return list((await session.exec(query)).all())


async def subjects_with_open_requests(session: AsyncSession, subject_hashes: Sequence[str]) -> set[str]:
    """Which of these subjects have a request still open (a bulk purge must not erase them behind its back)."""
    if not subject_hashes:
        return set()
    query = select(PrivacyRequest.subject_hash).where(
        col(PrivacyRequest.subject_hash).in_(sorted(set(subject_hashes))), is_open())
    return set((await session.exec(query)).all())


async def mark_reminded(session: AsyncSession, request_id: int, today: date) -> bool:
    """Claim today's re-announcement of one request; False if it was already announced today."""
    result = await session.exec(  # type: ignore[call-overload]
        update(PrivacyRequest)
        .where(col(PrivacyRequest.id) == request_id,
               or_(col(PrivacyRequest.last_reminded_on).is_(None), col(PrivacyRequest.last_reminded_on) < today))
        .values(last_reminded_on=today)
    )
    return bool(result.rowcount)


async def add_export_link(session: AsyncSession, link: ExportLink) -> ExportLink:
    session.add(link)
    await session.flush()
    return link


async def export_link_by_hash(session: AsyncSession, token_hash: str) -> ExportLink | None:
    return (await session.exec(select(ExportLink).where(ExportLink.token_hash == token_hash))).first()


async def count_download(session: AsyncSession, link_id: int, now: datetime, *, max_downloads: int) -> bool:
    """Count one download if the link is still valid at ``now`` and has downloads left; False when it
    expired, was revoked or is used up (one guarded UPDATE: two concurrent downloads cannot both take the
    last one)."""
    result = await session.exec(  # type: ignore[call-overload]
        update(ExportLink)
        .where(col(ExportLink.id) == link_id, col(ExportLink.revoked_at).is_(None), col(ExportLink.expires_at) > now,
               col(ExportLink.downloads) < max_downloads)
        .values(downloads=col(ExportLink.downloads) + 1, last_download_at=now)
    )
    return bool(result.rowcount)


async def links_for_requests(session: AsyncSession, request_ids: list[int]) -> list[ExportLink]:
    if not request_ids:
        return []
    query = select(ExportLink).where(col(ExportLink.request_id).in_(request_ids))
    return list((await session.exec(query)).all())


async def linked_package_paths(session: AsyncSession) -> list[str]:
    """The package files some export link still points at (expired ones too, until the daily job forgets them)."""
    query = select(ExportLink.path).where(col(ExportLink.path) != "")
    return [str(path) for path in (await session.exec(query)).all()]


async def prepared_packages(session: AsyncSession) -> list[PrivacyRequest]:
    """Access requests whose sealed package waits on disk for an approver's release (no link names it yet).

    Access requests are few (a handful a month), so the JSON ``result`` is read here rather than queried
    with backend-specific JSON operators; an erased subject's package went with the erasure."""
    query = select(PrivacyRequest).where(col(PrivacyRequest.kind) == "access", col(PrivacyRequest.state) == "done",
                                         col(PrivacyRequest.subject_masked) != ERASED_MASK)
    return [row for row in (await session.exec(query)).all()
            if (row.result or {}).get("release") == "pending" and ((row.result or {}).get("package") or {}).get("path")]


async def expired_links_with_files(session: AsyncSession, now: datetime) -> list[ExportLink]:
    """Links past their expiry (or revoked) whose package file may still be on disk."""
    query = select(ExportLink).where(
        or_(col(ExportLink.expires_at) <= now, col(ExportLink.revoked_at).is_not(None)), col(ExportLink.path) != ""
    )
    return list((await session.exec(query)).all())


async def forget_link_file(session: AsyncSession, link_id: int, *, revoke_at: datetime | None = None) -> None:
    values: dict[str, Any] = {"path": ""}
    if revoke_at is not None:
        values["revoked_at"] = revoke_at
    await session.exec(update(ExportLink).where(col(ExportLink.id) == link_id).values(**values))  # type: ignore[call-overload]


async def unposted_links(session: AsyncSession, request_id: int) -> list[ExportLink]:
    """Links of a request never downloaded nor revoked: a release attempt that stopped before posting one."""
    return list((await session.exec(select(ExportLink).where(
        col(ExportLink.request_id) == request_id, col(ExportLink.revoked_at).is_(None),
        col(ExportLink.downloads) == 0))).all())
