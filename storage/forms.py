"""Form revisions (what a form showed when consent was given) and the form fields the webhooks carried.

A consent record proves what the person was told only together with the form as it stood then
(Art. 7(1), Planet49 C-673/17): each revision of a Mautic form (``dateModified``, or ``dateAdded`` for a
form never edited) is stored once with a hash of its definition, the consent boxes' label texts and
whether a consent box was pre-ticked. Consent records point at the revision they were collected under;
when a revision turns out to have had a pre-ticked box, the consent records collected under it are
marked invalid (Recital 32), never deleted: they still show what happened.

``form_fields_seen`` lists the field aliases each form's submissions carried (no values), for the
record of processing (Art. 30).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, UniqueConstraint, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.intake import ConsentRecord, InboxEvent, queued_job
from storage.jobs import enqueue
from storage.types import JSONType, UTCDateTime

EVIDENCE_JOB = "consent.evidence"
"""The durable job that attaches form revisions to new consent records (a job: it calls Mautic)."""

PRECHECKED = "prechecked"  # ConsentRecord.invalid_reason of a record collected under a pre-ticked box


class FormRevision(SQLModel, table=True):
    __tablename__ = "form_revisions"
    __table_args__ = (UniqueConstraint("form_id", "revision", name="uq_form_revisions_form_revision"),)

    id: int | None = Field(default=None, primary_key=True)
    form_id: int = Field(index=True)
    revision: str = Field(max_length=64)  # Mautic's dateModified (dateAdded for a form never edited)
    name: str = Field(default="", max_length=255)
    definition_hash: str = Field(max_length=64)  # SHA-256 of the canonical JSON of `definition`
    definition: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    consent_labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    prechecked: bool = False
    fetched_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class FormFieldSeen(SQLModel, table=True):
    __tablename__ = "form_fields_seen"
    __table_args__ = (UniqueConstraint("form_id", "field_alias", name="uq_form_fields_seen_form_field"),)

    id: int | None = Field(default=None, primary_key=True)
    form_id: int = Field(index=True)
    form_name: str = Field(default="", max_length=255)
    field_alias: str = Field(max_length=191)
    first_seen_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


def _insert(session: AsyncSession, model: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model.__table__)


async def note_fields_seen(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Record {form_id, form_name, field_alias, first_seen_at} rows; a pair already known is left alone
    (insert-or-ignore: replicas processing the same form at once do not collide)."""
    if not rows:
        return
    statement = _insert(session, FormFieldSeen).on_conflict_do_nothing(index_elements=["form_id", "field_alias"])
    await session.exec(statement, params=list(rows))  # type: ignore[call-overload]


async def fields_seen(session: AsyncSession) -> dict[int, tuple[str, list[str]]]:
    """{form_id: (latest form name, field aliases in the order first seen)}."""
    rows = (await session.exec(select(FormFieldSeen).order_by(col(FormFieldSeen.form_id),
                                                             col(FormFieldSeen.id)))).all()
    out: dict[int, tuple[str, list[str]]] = {}
    for row in rows:
        name, aliases = out.get(row.form_id, (row.form_name, []))
        aliases.append(row.field_alias)
        out[row.form_id] = (row.form_name or name, aliases)
    return out


async def request_evidence(session: AsyncSession) -> bool:
    """Queue the evidence job in the caller's transaction unless one already waits; True if queued."""
    if await queued_job(session, EVIDENCE_JOB) is not None:
        return False
    await enqueue(session, EVIDENCE_JOB, {}, max_attempts=5)
    return True


async def forms_awaiting_evidence(session: AsyncSession, limit: int = 50,
                                  older_than: datetime | None = None) -> list[int]:
    """Forms with consent records still waiting for their revision (recorded before ``older_than``)."""
    query = (select(ConsentRecord.form_id)
             .where(col(ConsentRecord.evidence_at).is_(None), col(ConsentRecord.form_id).is_not(None))
             .distinct().limit(limit))
    if older_than is not None:
        query = query.where(col(ConsentRecord.recorded_at) < older_than)
    return [int(form_id) for form_id in (await session.exec(query)).all() if form_id is not None]


async def revision(session: AsyncSession, form_id: int, revision_key: str) -> FormRevision | None:
    query = select(FormRevision).where(col(FormRevision.form_id) == form_id,
                                       col(FormRevision.revision) == revision_key)
    return (await session.exec(query)).first()


async def store_revision(session: AsyncSession, values: dict[str, Any]) -> FormRevision:
    """The revision row for (form_id, revision), inserted once whoever gets there first."""
    statement = _insert(session, FormRevision).values(**values).on_conflict_do_nothing(
        index_elements=["form_id", "revision"])
    await session.exec(statement)
    stored = await revision(session, int(values["form_id"]), str(values["revision"]))
    assert stored is not None
    if values.get("prechecked") and not stored.prechecked:  # a later audit judged the same revision
        stored.prechecked = True
        session.add(stored)
        await session.flush()
    return stored


async def pending_records(session: AsyncSession, form_id: int, limit: int = 1000) -> list[tuple[int, list[str]]]:
    """(id, consent field aliases) of this form's records still without evidence."""
    query = (select(ConsentRecord.id, ConsentRecord.fields)
             .where(col(ConsentRecord.form_id) == form_id, col(ConsentRecord.evidence_at).is_(None))
             .order_by(col(ConsentRecord.id)).limit(limit))
    return [(int(row_id), list(fields or [])) for row_id, fields in (await session.exec(query)).all()
            if row_id is not None]


async def attach_evidence(session: AsyncSession, record_ids: Iterable[int], *, revision_row: FormRevision | None,
                          label_text: str | None, now: datetime) -> None:
    """Point records at the revision they were collected under (guarded: a record gets evidence once)."""
    ids = list(record_ids)
    if not ids:
        return
    values: dict[str, Any] = {"evidence_at": now, "label_text": label_text}
    if revision_row is not None:
        values.update(form_revision_id=revision_row.id, form_hash=revision_row.definition_hash)
    await session.exec(update(ConsentRecord).where(  # type: ignore[call-overload]
        col(ConsentRecord.id).in_(ids), col(ConsentRecord.evidence_at).is_(None)).values(**values))


async def invalidate_prechecked(session: AsyncSession, revision_ids: Iterable[int], *, now: datetime) -> int:
    """Mark the consent given under these (pre-ticked) revisions invalid; returns how many records changed."""
    ids = list(revision_ids)
    if not ids:
        return 0
    result = await session.exec(update(ConsentRecord).where(  # type: ignore[call-overload]
        col(ConsentRecord.form_revision_id).in_(ids), col(ConsentRecord.invalid_at).is_(None),
        col(ConsentRecord.given).is_(True),
    ).values(invalid_at=now, invalid_reason=PRECHECKED))
    return int(result.rowcount or 0)


async def invalid_under(session: AsyncSession, revision_id: int) -> int:
    """How many consent records collected under this revision are marked invalid for its pre-ticked box."""
    query = select(func.count()).select_from(ConsentRecord).where(
        col(ConsentRecord.form_revision_id) == revision_id, col(ConsentRecord.invalid_reason) == PRECHECKED)
    return int((await session.exec(query)).one())


async def prechecked_revisions(session: AsyncSession, form_id: int) -> list[int]:
    query = select(FormRevision.id).where(col(FormRevision.form_id) == form_id, col(FormRevision.prechecked))
    return [int(i) for i in (await session.exec(query)).all() if i is not None]


async def invalidated_counts(session: AsyncSession, since: datetime) -> tuple[int, int]:
    """(records invalidated since ``since``, including by the audit the digest has just run; all invalid)."""
    in_period = select(func.count()).select_from(ConsentRecord).where(col(ConsentRecord.invalid_at) >= since)
    total = select(func.count()).select_from(ConsentRecord).where(col(ConsentRecord.invalid_at).is_not(None))
    return int((await session.exec(in_period)).one()), int((await session.exec(total)).one())


async def submissions_per_form(session: AsyncSession) -> dict[int, int]:
    """Consent records (one per submission) kept per form id."""
    query = select(ConsentRecord.form_id, func.count()).where(
        col(ConsentRecord.form_id).is_not(None)).group_by(col(ConsentRecord.form_id))
    return {int(form_id): int(n) for form_id, n in (await session.exec(query)).all() if form_id is not None}


async def event_types_seen(session: AsyncSession) -> dict[str, int]:
    """How many webhook events of each type the inbox holds (what Mautic tells the bot it tracks)."""
    query = select(InboxEvent.event_type, func.count()).group_by(col(InboxEvent.event_type))
    return {str(kind): int(n) for kind, n in (await session.exec(query)).all()}
