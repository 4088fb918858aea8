"""Tables and queries of the webhook intake: the durable inbox, consent evidence, alerts, withdrawals.

Personal data kept here: the clear email only in ``consent_records.email`` (evidence, until erasure),
in a delivery's raw ``body`` until it is split into inbox rows (seconds, then the delivery is deleted)
and in an inbox row's ``payload`` until that event is processed (then replaced by a PII-free summary);
everything else joins on the keyed subject hash. :func:`purge_subject` removes all of it on erasure.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    and_,
    cast,
    delete,
    func,
    insert,
    or_,
    update,
)
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import SessionFactory, driver_connection, sqlite_writer_lock
from storage.erasures import ErasedSubject, is_erased
from storage.jobs import Job, JobState
from storage.types import JSONType, UTCDateTime


class InboxState(StrEnum):
    PENDING = "pending"  # committed, not yet processed
    DONE = "done"
    FAILED = "failed"  # processing raised; kept with the error class for a person to look at
    DEAD = "dead"  # a signed body we could not read as events (dead letter)


class AlertState(StrEnum):
    OPEN = "open"  # waiting for a decision
    DECIDED = "decided"
    INFO = "info"  # a report without buttons (dead letter, unsubscribe notice)


class AlertKind(StrEnum):
    CONSENT_GAP = "consent_gap"
    RESUBSCRIBED = "resubscribed_without_consent"
    SENT_AFTER_WITHDRAWAL = "sent_after_withdrawal"
    ERASED_REENTERED = "erased_subject_reentered"
    SUBMITTED_AFTER_OBJECTION = "submitted_after_objection"  # GDPR Art. 21(3), no new consent
    UNSUBSCRIBE = "unsubscribe"
    DEAD_LETTER = "dead_letter"


class InboxEvent(SQLModel, table=True):
    __tablename__ = "intake_inbox"
    __table_args__ = (UniqueConstraint("dedupe_key", name="uq_intake_inbox_dedupe_key"),)

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=64)
    event_type: str = Field(max_length=100, index=True)
    state: str = Field(default=InboxState.PENDING, max_length=16, index=True)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    occurred_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    processed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    contact_id: int | None = Field(default=None, index=True)
    subject_hash: str | None = Field(default=None, max_length=64, index=True)
    # Dead letters: every address found in the unreadable body, hashed, so erasure can find them.
    subject_hashes: str | None = Field(default=None, sa_column=Column(String(4000), nullable=True))
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    raw_body: bytes | None = Field(default=None, sa_column=Column(LargeBinary(), nullable=True))
    note: str | None = Field(default=None, max_length=200)


class InboxDelivery(SQLModel, table=True):
    """A signed webhook body exactly as received, until the processing job splits it into inbox rows.

    The webhook view stores only this (no parsing on the request path), so a row's existence is its
    state: splitting inserts the delivery's events and deletes the row in one transaction.
    """

    __tablename__ = "inbox_deliveries"
    # Rows are deleted once split; without AUTOINCREMENT SQLite would hand out the same ids again, and the
    # id is what Mautic's webhook log shows of our answer.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    # For matching a delivery against Mautic's webhook log, and the dead letter's dedupe key.
    body_sha256: str = Field(max_length=64)


class SpoolMove(SQLModel, table=True):
    """A delivery moved from the local spool into the inbox (the database was down when it arrived), by its
    spool record's key: written in the same transaction as the delivery, so a move interrupted by a crash and
    run again skips what it already moved, even once those deliveries have been split and deleted."""

    __tablename__ = "spool_moves"

    key: str = Field(primary_key=True, max_length=64)
    moved_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class ConsentRecord(SQLModel, table=True):
    """Evidence of what a form submission said about consent."""

    __tablename__ = "consent_records"

    id: int | None = Field(default=None, primary_key=True)
    inbox_id: int | None = None
    contact_id: int | None = Field(default=None, index=True)
    subject_hash: str | None = Field(default=None, max_length=64, index=True)
    email: str | None = Field(default=None, max_length=320)
    form_id: int | None = None
    form_name: str = Field(default="", max_length=255)
    form_alias: str = Field(default="", max_length=255)
    submission_id: int | None = None
    fields: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    given: bool = False
    exempt: bool = False
    source_ip: str | None = Field(default=None, max_length=64)
    submitted_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # When the bot learnt that the contact is gone from Mautic; CONSENT_EVIDENCE_DAYS count from here.
    contact_deleted_at: datetime | None = Field(default=None,
                                                sa_column=Column(UTCDateTime(), nullable=True, index=True))
    # What the person was told (Art. 7(1)): the policy version in force and the page the form was on, both
    # known when the submission is processed; the form revision (storage.forms), its definition hash and
    # the consent box's label text, attached by a job moments later (it asks Mautic, never the webhook).
    policy_version: str | None = Field(default=None, max_length=64)
    page_url: str | None = Field(default=None, max_length=2000)
    form_revision_id: int | None = Field(default=None, index=True)
    form_hash: str | None = Field(default=None, max_length=64)
    label_text: str | None = Field(default=None, max_length=2000)
    # Indexed: the evidence job looks for the few records still without it among all kept.
    evidence_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True, index=True))
    # Set when the consent turns out not to be consent (a pre-ticked box: Recital 32); never cleared.
    invalid_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    invalid_reason: str | None = Field(default=None, max_length=64)


class ConsentAlert(SQLModel, table=True):
    """A finding posted to the privacy channel; its state changes only by guarded updates."""

    __tablename__ = "consent_alerts"
    __table_args__ = (UniqueConstraint("dedupe_key", name="uq_consent_alerts_dedupe_key"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40, index=True)
    state: str = Field(default=AlertState.OPEN, max_length=16, index=True)
    dedupe_key: str = Field(max_length=120)
    burst_key: str = Field(max_length=120, index=True)
    burst_of: int | None = Field(default=None, index=True)  # the lead alert this one is folded into
    folded_count: int = 0
    contact_id: int | None = None
    subject_hash: str | None = Field(default=None, max_length=64, index=True)
    email_display: str | None = Field(default=None, max_length=320)
    form_id: int | None = None
    title: str = Field(default="", max_length=255)
    missing: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    inbox_id: int | None = None
    consent_record_id: int | None = None
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    channel_id: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    decision: str | None = Field(default=None, max_length=16)
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    reason: str | None = Field(default=None, max_length=500)
    outcome: str | None = Field(default=None, max_length=500)
    outcome_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class Withdrawal(SQLModel, table=True):
    """A channel's consent withdrawn in Mautic (DNC added), and when it was lifted again."""

    __tablename__ = "consent_withdrawals"

    id: int | None = Field(default=None, primary_key=True)
    inbox_id: int | None = None
    contact_id: int | None = Field(default=None, index=True)
    subject_hash: str | None = Field(default=None, max_length=64, index=True)
    channel: str = Field(default="email", max_length=32)
    old_status: str = Field(default="contactable", max_length=32)
    new_status: str = Field(max_length=32)
    withdrawn_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    restored_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


Index("ix_consent_alerts_burst_lookup", ConsentAlert.burst_key, ConsentAlert.created_at)  # type: ignore[arg-type]


# ---- deliveries (raw bodies, before the split) ----------------------------------------------------------

_deliveries = InboxDelivery.__table__  # type: ignore[attr-defined]
# Built once: SQLAlchemy's compiled cache then serves every group commit; one executemany, ids returned in
# the order of the rows so each request learns its own delivery id.
_INSERT_DELIVERIES = insert(_deliveries).returning(_deliveries.c.id, sort_by_parameter_order=True)


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Store raw deliveries ({received_at, body, body_sha256}); returns their ids in the order given."""
    result = await session.exec(_INSERT_DELIVERIES, params=list(rows))  # type: ignore[call-overload]
    return [row_id for (row_id,) in result.all()]


async def commit_deliveries_autocommit(sessions: SessionFactory, rows: Sequence[dict[str, Any]]) -> list[int]:
    """PostgreSQL: store raw deliveries as ONE autocommitted statement (a single INSERT is atomic and
    durable once the server answers), saving BEGIN and COMMIT round trips; ids in the order given.

    Sent with asyncpg directly, the rows as three arrays: at 50 concurrent senders the bot process is
    CPU-bound, and SQLAlchemy's executemany (insertmanyvalues: a statement rendered per group, ~75 bind
    parameters processed one by one) was a large share of each group commit. The connection still comes
    from the engine's pool, so its ping of idle connections and its limits apply. Outside a transaction
    asyncpg autocommits.
    """
    engine: AsyncEngine = sessions.kw["bind"]
    process = _deliveries.c.received_at.type.bind_processor(engine.dialect)
    received = [row["received_at"] for row in rows]
    if process is not None:
        received = [process(value) for value in received]
    bodies = [row["body"] for row in rows]
    hashes = [row["body_sha256"] for row in rows]
    async with driver_connection(engine) as driver:  # a lost connection: OperationalError, not pooled again
        records = await driver.fetch(_INSERT_DELIVERIES_UNNEST, received, bodies, hashes)
    # Ids come from the sequence in the order the SELECT yields the rows (ORDER BY n), so sorted ids
    # follow the rows (the same assumption SQLAlchemy's sort_by_parameter_order makes for serial keys).
    return sorted(record[0] for record in records)


_INSERT_DELIVERIES_UNNEST = (
    "INSERT INTO inbox_deliveries (received_at, body, body_sha256) "
    "SELECT r, b, s FROM unnest($1::timestamptz[], $2::bytea[], $3::varchar[]) WITH ORDINALITY AS t(r, b, s, n) "
    "ORDER BY n RETURNING id"
)


INSERTMANY_ROWS = 1000  # SQLAlchemy's insertmanyvalues batch size: rows sent as one statement


_INSERT_DELIVERIES_SQLITE = "INSERT INTO inbox_deliveries (received_at, body, body_sha256) VALUES "
# Rows per INSERT statement on SQLite: three parameters each, well under SQLite's limit of 32,766.
SQLITE_INSERT_ROWS = 500


async def commit_deliveries_sqlite(sessions: SessionFactory, rows: Sequence[dict[str, Any]]) -> list[int]:
    """SQLite only: store raw deliveries in a transaction of their own, as ONE call on the driver's thread
    (BEGIN IMMEDIATE, the inserts, COMMIT); returns their ids in the order given.

    Through a session each statement is its own trip to aiosqlite's worker thread, and each trip's answer
    waits behind HTTP work on the event loop; the webhook's group commit spent most of its time there.
    """
    engine: AsyncEngine = sessions.kw["bind"]
    lock = sqlite_writer_lock(sessions)  # the same queue for the writer as unit_of_work's, at its head
    assert lock is not None, "SQLite only"
    process = _deliveries.c.received_at.type.bind_processor(engine.dialect)
    params = [(process(row["received_at"]), row["body"], row["body_sha256"]) for row in rows]
    async with lock.first(), driver_connection(engine) as driver:
        return await _on_sqlite_thread(driver, functools.partial(_insert_deliveries_sync, params))


def _insert_deliveries_sync(params: list[tuple[Any, ...]], db: sqlite3.Connection) -> list[int]:
    # One multi-row INSERT, not one statement per row: each statement gives up Python's GIL while SQLite
    # works and must win it back from a busy event loop (up to the 5 ms switch interval each time); a
    # group commit of 25 rows spent half its time on this thread waiting for that (bench/README.md, wrk).
    db.execute("BEGIN IMMEDIATE")
    try:
        ids: list[int] = []
        for start in range(0, len(params), SQLITE_INSERT_ROWS):
            part = params[start:start + SQLITE_INSERT_ROWS]
            cursor = db.execute(_INSERT_DELIVERIES_SQLITE + ", ".join(["(?, ?, ?)"] * len(part)),
                                [value for row in part for value in row])
            # SQLite gives each row of the statement the next rowid in VALUES order (autoinc.html: one larger
            # than the largest), and BEGIN IMMEDIATE keeps every other writer out meanwhile.
            last = cursor.lastrowid
            assert last is not None
            ids.extend(range(last - len(part) + 1, last + 1))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return ids


async def _on_sqlite_thread(driver: Any, fn: Callable[[sqlite3.Connection], list[int]]) -> list[int]:
    """Run ``fn(sqlite3 connection)`` on aiosqlite's worker thread as one queued call.

    Private aiosqlite API (``_execute``, ``_conn``), kept to this one function: its public methods are one
    statement per call, and the whole point is one trip for the whole transaction.
    """
    result: list[int] = await driver._execute(fn, driver._conn)
    return result


async def move_spooled(session: AsyncSession, rows: Sequence[dict[str, Any]], now: datetime, *,
                       forget_before: datetime) -> list[int]:
    """Store deliveries taken by the local spool ({key, received_at, body, body_sha256}), skipping keys moved
    before (a move that crashed after its commit and runs again); the new deliveries' ids. Keys older than
    ``forget_before`` are forgotten: a spool file is moved within minutes of the database's return."""
    await session.exec(delete(SpoolMove).where(col(SpoolMove.moved_at) < forget_before))  # type: ignore[call-overload]
    if not rows:
        return []
    table = SpoolMove.__table__  # type: ignore[attr-defined]
    statement = _insert(session, SpoolMove).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)
    result = await session.exec(statement, params=[{"key": r["key"], "moved_at": now} for r in rows])  # type: ignore[call-overload]
    new = {key for (key,) in result.all()}
    fresh = [{k: r[k] for k in ("received_at", "body", "body_sha256")} for r in rows if r["key"] in new]
    return await insert_deliveries(session, fresh) if fresh else []


async def read_deliveries(session: AsyncSession, *, limit: int, lock: bool = False) -> list[Any]:
    """The oldest deliveries as plain rows (id, received_at, body). ``lock`` waits for a concurrent
    split of the same rows to finish (PostgreSQL), for callers that must see them split."""
    query = (
        sa_select(_deliveries.c.id, _deliveries.c.received_at, _deliveries.c.body)
        .order_by(_deliveries.c.id).limit(limit)
    )
    if lock:
        query = query.with_for_update()
    return list((await session.exec(query)).all())  # type: ignore[call-overload]


async def read_delivery_chunk(session: AsyncSession, *, limit: int, max_bytes: int) -> tuple[list[Any], bool]:
    """Up to ``limit`` of the oldest deliveries as plain rows (id, received_at, body), each read only while
    the bodies before it total less than ``max_bytes`` (so the first is always read, and a chunk holds at
    most ``max_bytes`` plus one body): ``limit`` bodies of the largest size allowed would otherwise all be
    in memory at once. Also returns whether more deliveries wait (the limit or the budget cut it short)."""
    oldest = (
        sa_select(_deliveries.c.id, _deliveries.c.received_at, _deliveries.c.body)
        .order_by(_deliveries.c.id).limit(limit).subquery()
    )
    size = func.length(oldest.c.body)  # bytes, for SQLite's BLOB and PostgreSQL's bytea alike
    sized = sa_select(oldest, (func.sum(size).over(order_by=oldest.c.id) - size).label("before"),
                      func.count().over().label("among")).subquery()
    query = (
        sa_select(sized.c.id, sized.c.received_at, sized.c.body, sized.c.among)
        .where(sized.c.before < max_bytes).order_by(sized.c.id)
    )
    found = list((await session.exec(query)).all())  # type: ignore[call-overload]
    among = found[0][3] if found else 0  # deliveries in the first `limit`, before the byte budget
    return [row[:3] for row in found], among == limit or len(found) < among


async def take_deliveries(session: AsyncSession, ids: Sequence[int]) -> set[int]:
    """Delete these deliveries; returns the ids this transaction removed (a concurrent splitter that got
    there first has taken the others, and their events with them)."""
    if not ids:
        return set()
    result = await session.exec(  # type: ignore[call-overload]
        delete(_deliveries).where(_deliveries.c.id.in_(list(ids))).returning(_deliveries.c.id)
    )
    return {row_id for (row_id,) in result.all()}


async def has_deliveries(session: AsyncSession) -> bool:
    """Whether any delivery waits to be split (one index probe)."""
    return (await session.exec(sa_select(_deliveries.c.id).limit(1))).first() is not None  # type: ignore[call-overload]


async def oldest_delivery(session: AsyncSession) -> datetime | None:
    oldest: datetime | None = (await session.exec(sa_select(func.min(_deliveries.c.received_at)))).one()[0]  # type: ignore[call-overload]
    return oldest


async def count_deliveries(session: AsyncSession) -> int:
    return int((await session.exec(select(func.count()).select_from(_deliveries))).one())


# ---- inbox -------------------------------------------------------------------------------------------


def _insert(session: AsyncSession, model: Any) -> Any:
    table = model.__table__
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def insert_inbox(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """One executemany INSERT (batched into multi-row VALUES by the driver layer, compiled once) that skips
    rows whose dedupe key is already stored; returns {dedupe_key: new id}."""
    if not rows:
        return {}
    table = InboxEvent.__table__  # type: ignore[attr-defined]
    statement = (
        _insert(session, InboxEvent).on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(table.c.id, table.c.dedupe_key)
    )
    result = await session.exec(statement, params=list(rows))  # type: ignore[call-overload]
    return {key: row_id for row_id, key in result.all()}


async def insert_consent_records(session: AsyncSession, records: Sequence[dict[str, Any]]) -> None:
    """Consent evidence for a chunk in one executemany (ORM objects cost more than the rest of processing)."""
    if records:
        await session.exec(_insert(session, ConsentRecord), params=list(records))  # type: ignore[call-overload]


async def insert_consent_record(session: AsyncSession, record: dict[str, Any]) -> int:
    table = ConsentRecord.__table__  # type: ignore[attr-defined]
    result = await session.exec(  # type: ignore[call-overload]
        _insert(session, ConsentRecord).values(**record).returning(table.c.id)
    )
    return int(result.scalar_one())


async def claim_pending(session: AsyncSession, ids: Sequence[int] | None = None, *, limit: int = 100) -> list[Any]:
    """Pending rows (of ``ids``, or the oldest ``limit``), locked so a second worker skips them (PostgreSQL)
    or waits (SQLite).

    Plain rows (id, event_type, payload, occurred_at, contact_id, subject_hash, note, raw_size), not ORM
    objects: building thousands of those cost more than processing the events.
    """
    query = (
        sa_select(
            col(InboxEvent.id), col(InboxEvent.event_type), col(InboxEvent.payload), col(InboxEvent.occurred_at),
            col(InboxEvent.contact_id), col(InboxEvent.subject_hash), col(InboxEvent.note),
            func.coalesce(func.length(col(InboxEvent.raw_body)), 0),
        )
        .where(col(InboxEvent.state) == InboxState.PENDING)
        .order_by(col(InboxEvent.id))
        .with_for_update(skip_locked=True)
    )
    query = query.where(col(InboxEvent.id).in_(list(ids))) if ids is not None else query.limit(limit)
    return list((await session.exec(query)).all())  # type: ignore[call-overload]


async def queued_job(session: AsyncSession, kind: str) -> int | None:
    """A job of ``kind`` still waiting to start, share-locked so no runner starts it before we commit."""
    query = (
        select(Job.id).where(col(Job.kind) == kind, col(Job.state) == JobState.QUEUED)
        .limit(1).with_for_update(read=True)
    )
    return (await session.exec(query)).first()


async def queued_job_due(session: AsyncSession, kind: str) -> datetime | None:
    """When the first job of ``kind`` still waiting to start is due (None: none waits), share-locked so no
    runner starts it before we commit."""
    query = (
        select(Job.run_after).where(col(Job.kind) == kind, col(Job.state) == JobState.QUEUED)
        .order_by(col(Job.run_after)).limit(1).with_for_update(read=True)
    )
    due: datetime | None = (await session.exec(query)).first()
    return due


async def pending_ids(session: AsyncSession, *, older_than: datetime, limit: int = 500) -> list[int]:
    query = (
        select(InboxEvent.id)
        .where(col(InboxEvent.state) == InboxState.PENDING, col(InboxEvent.received_at) < older_than)
        .order_by(col(InboxEvent.id))
        .limit(limit)
    )
    return [i for i in (await session.exec(query)).all() if i is not None]


async def sends_after(session: AsyncSession, contact_id: int, since: datetime) -> list[InboxEvent]:
    """Email sends to this contact already processed whose time is after ``since``."""
    query = select(InboxEvent).where(
        col(InboxEvent.event_type) == "mautic.email_on_send",
        col(InboxEvent.contact_id) == contact_id,
        col(InboxEvent.state) == InboxState.DONE,
        col(InboxEvent.occurred_at) > since,
    )
    return list((await session.exec(query)).all())


# ---- consent records and withdrawals ----------------------------------------------------------------


def _subject_or_contact(model: Any, subject: str | None, contact_id: int | None) -> Any:
    conditions = []
    if subject:
        conditions.append(col(model.subject_hash) == subject)
    if contact_id is not None:
        conditions.append(col(model.contact_id) == contact_id)
    return or_(*conditions) if conditions else col(model.id) == -1


async def open_withdrawal(
    session: AsyncSession, *, subject: str | None, contact_id: int | None, channel: str, before: datetime | None = None
) -> Withdrawal | None:
    """The latest withdrawal for this person and channel that has not been lifted."""
    query = select(Withdrawal).where(
        _subject_or_contact(Withdrawal, subject, contact_id),
        col(Withdrawal.channel) == channel,
        col(Withdrawal.restored_at).is_(None),
    )
    if before is not None:
        query = query.where(col(Withdrawal.withdrawn_at) <= before)
    query = query.order_by(col(Withdrawal.withdrawn_at).desc(), col(Withdrawal.id).desc()).limit(1)
    return (await session.exec(query)).first()


async def consent_given_since(
    session: AsyncSession, *, subject: str | None, contact_id: int | None, since: datetime | None
) -> ConsentRecord | None:
    query = select(ConsentRecord).where(
        _subject_or_contact(ConsentRecord, subject, contact_id), col(ConsentRecord.given).is_(True),
        col(ConsentRecord.invalid_at).is_(None),  # a pre-ticked box was never consent (Recital 32)
    )
    if since is not None:
        query = query.where(col(ConsentRecord.submitted_at) > since)
    return (await session.exec(query.order_by(col(ConsentRecord.submitted_at).desc()).limit(1))).first()


async def consent_history(session: AsyncSession, subject: str, *, limit: int = 50) -> dict[str, list[Any]]:
    """What ``/privacy consent`` shows: records, withdrawals and alerts about one subject, newest first."""
    records = (await session.exec(
        select(ConsentRecord).where(col(ConsentRecord.subject_hash) == subject)
        .order_by(col(ConsentRecord.submitted_at).desc()).limit(limit)
    )).all()
    withdrawals = (await session.exec(
        select(Withdrawal).where(col(Withdrawal.subject_hash) == subject)
        .order_by(col(Withdrawal.withdrawn_at).desc()).limit(limit)
    )).all()
    alerts = (await session.exec(
        select(ConsentAlert).where(col(ConsentAlert.subject_hash) == subject)
        .order_by(col(ConsentAlert.created_at).desc()).limit(limit)
    )).all()
    return {"records": list(records), "withdrawals": list(withdrawals), "alerts": list(alerts)}


# ---- alerts ------------------------------------------------------------------------------------------


async def find_burst_lead(session: AsyncSession, burst_key: str, since: datetime) -> ConsentAlert | None:
    """The alert new findings of this burst fold into: the newest lead still open (or info) in the window."""
    query = (
        select(ConsentAlert)
        .where(
            col(ConsentAlert.burst_key) == burst_key,
            col(ConsentAlert.burst_of).is_(None),
            col(ConsentAlert.state).in_([AlertState.OPEN, AlertState.INFO]),
            col(ConsentAlert.created_at) >= since,
        )
        .order_by(col(ConsentAlert.created_at).desc(), col(ConsentAlert.id).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()


async def bump_folded(session: AsyncSession, lead_id: int) -> None:
    await session.exec(  # type: ignore[call-overload]
        update(ConsentAlert).where(col(ConsentAlert.id) == lead_id)
        .values(folded_count=ConsentAlert.folded_count + 1)
    )


async def get_alert(session: AsyncSession, alert_id: int) -> ConsentAlert | None:
    return await session.get(ConsentAlert, alert_id)


async def burst_members(session: AsyncSession, lead_id: int) -> list[ConsentAlert]:
    query = select(ConsentAlert).where(
        or_(col(ConsentAlert.id) == lead_id, col(ConsentAlert.burst_of) == lead_id)
    ).order_by(col(ConsentAlert.id))
    return list((await session.exec(query)).all())


async def lock_alert(session: AsyncSession, alert_id: int) -> None:
    """Lock the alert's row until the caller's transaction ends (PostgreSQL; SQLite has one writer).

    Taken before deciding a burst: a finding folding into this lead bumps the lead's folded count, so
    it waits for our commit, and what :func:`count_open_folded` says stays what the decision will move.
    """
    await session.exec(select(ConsentAlert.id).where(col(ConsentAlert.id) == alert_id).with_for_update())


async def count_open_folded(session: AsyncSession, lead_id: int) -> int:
    query = select(func.count()).select_from(ConsentAlert).where(
        col(ConsentAlert.burst_of) == lead_id, col(ConsentAlert.state) == AlertState.OPEN)
    return int((await session.exec(query)).one())


async def decide_folded(session: AsyncSession, lead_id: int, values: dict[str, Any]) -> int:
    """Move the open findings folded into a lead that was just decided along with it; returns how many.

    Only after the lead's own guarded transition won: that one UPDATE is what two concurrent deciders
    race for.
    """
    folded = await session.exec(  # type: ignore[call-overload]
        update(ConsentAlert)
        .where(col(ConsentAlert.burst_of) == lead_id, col(ConsentAlert.state) == AlertState.OPEN)
        .values(**values)
    )
    return int(folded.rowcount or 0)


async def set_message(session: AsyncSession, alert_id: int, channel_id: str, ts: str) -> bool:
    result = await session.exec(  # type: ignore[call-overload]
        update(ConsentAlert)
        .where(col(ConsentAlert.id) == alert_id, col(ConsentAlert.message_ts).is_(None))
        .values(channel_id=channel_id, message_ts=ts)
    )
    return bool(result.rowcount)


async def set_outcome(session: AsyncSession, lead_id: int, outcome: str, at: datetime) -> bool:
    result = await session.exec(  # type: ignore[call-overload]
        update(ConsentAlert)
        .where(or_(col(ConsentAlert.id) == lead_id, col(ConsentAlert.burst_of) == lead_id),
               col(ConsentAlert.outcome).is_(None))
        .values(outcome=outcome[:500], outcome_at=at)
    )
    return bool(result.rowcount)


# ---- for other features: erasure, access packages, digests -----------------------------------------


async def is_erased_subject(session: AsyncSession, subject: str) -> bool:
    """Was this subject erased by a data-subject request before? (the requests feature keeps the hashes)"""
    return await is_erased(session, subject)


async def erased_among(session: AsyncSession, subjects: set[str]) -> dict[str, datetime]:
    """Which of these subjects were erased before, and when (one query for a whole chunk of events)."""
    if not subjects:
        return {}
    rows = await session.exec(
        select(ErasedSubject.subject_hash, ErasedSubject.erased_at)
        .where(col(ErasedSubject.subject_hash).in_(sorted(subjects)))
    )
    return dict(rows.all())


async def subject_messages(session: AsyncSession, subject_hash: str) -> list[tuple[str, str]]:
    """(channel, ts) of the consent alerts posted about this subject, so erasure can redact them;
    read before :func:`purge_subject` anonymises the alerts."""
    query = select(ConsentAlert.channel_id, ConsentAlert.message_ts, ConsentAlert.details).where(
        ConsentAlert.subject_hash == subject_hash, col(ConsentAlert.message_ts).is_not(None))
    out: list[tuple[str, str]] = []
    for channel, ts, details in (await session.exec(query)).all():
        if channel and ts:
            out.append((str(channel), str(ts)))
            # The decision's thread reply, which may quote the reason someone typed.
            if channel and (details or {}).get("reply_ts"):
                out.append((str(channel), str(details["reply_ts"])))
    return out


async def remember_reply(session: AsyncSession, alert_id: int, ts: str) -> None:
    """Keep the ts of the decision's thread reply, so an erasure of the subject can redact it."""
    alert = await session.get(ConsentAlert, alert_id)
    if alert is not None:
        alert.details = {**(alert.details or {}), "reply_ts": ts}
        session.add(alert)
        await session.flush()


async def purge_subject(session: AsyncSession, subject_hash: str) -> dict[str, int]:
    return await purge_subjects(session, [subject_hash])


async def purge_subjects(session: AsyncSession, subject_hashes: Sequence[str]) -> dict[str, int]:
    """Erasure: delete or anonymise every row about this subject, in the caller's transaction.

    Only rows already split are found: the caller splits pending deliveries first, in the same
    transaction (``bot.intake.split.split_all_pending``; splitting needs the keyed hash). Consent records
    and withdrawals are deleted; inbox rows (raw payloads included) are deleted; alerts lose their
    personal fields but keep their decision trail (the ledger refers to them).
    """
    hashes = sorted(set(subject_hashes))
    counts: dict[str, int] = {}
    result = await session.exec(  # type: ignore[call-overload]
        delete(InboxEvent).where(
            or_(col(InboxEvent.subject_hash).in_(hashes),
                *(col(InboxEvent.subject_hashes).like(f"%{h}%") for h in hashes))
        )
    )
    counts["inbox_events"] = int(result.rowcount or 0)
    result = await session.exec(  # type: ignore[call-overload]
        delete(ConsentRecord).where(col(ConsentRecord.subject_hash).in_(hashes))
    )
    counts["consent_records"] = int(result.rowcount or 0)
    result = await session.exec(  # type: ignore[call-overload]
        delete(Withdrawal).where(col(Withdrawal.subject_hash).in_(hashes))
    )
    counts["withdrawals"] = int(result.rowcount or 0)
    result = await session.exec(  # type: ignore[call-overload]
        update(ConsentAlert)
        .where(col(ConsentAlert.subject_hash).in_(hashes))
        # The typed dismiss reason and the outcome (which names contacts) go too; the decision trail stays.
        .values(subject_hash=None, email_display="(erased)", contact_id=None, details={}, reason=None, outcome=None)
    )
    counts["alerts_anonymised"] = int(result.rowcount or 0)
    return counts


async def delete_inbox_rows(session: AsyncSession, ids: Sequence[int]) -> None:
    """Delete inbox rows outright: events that predate their subject's erasure, which it already covers."""
    await session.exec(delete(InboxEvent).where(col(InboxEvent.id).in_(list(ids))))  # type: ignore[call-overload]


async def purge_dead_letters(session: AsyncSession, email: str) -> int:
    """Dead letters (signed bodies that are not events) carry no subject hash; delete those that mention the
    address. They are rare and small (WEBHOOK_MAX_BYTES), so they are read and searched here."""
    needle = email.strip().lower().encode()
    query = select(InboxEvent.id, InboxEvent.raw_body).where(col(InboxEvent.raw_body).is_not(None))
    ids = [row_id for row_id, body in (await session.exec(query)).all() if needle in bytes(body or b"").lower()]
    if ids:
        await session.exec(delete(InboxEvent).where(col(InboxEvent.id).in_(ids)))  # type: ignore[call-overload]
    return len(ids)


def _record_dict(record: ConsentRecord) -> dict[str, Any]:
    return {
        "form_id": record.form_id, "form_name": record.form_name, "form_alias": record.form_alias,
        "submission_id": record.submission_id, "contact_id": record.contact_id, "email": record.email,
        "consent_given": record.given, "exempt_form": record.exempt, "fields": record.fields,
        "values": record.values, "source_ip": record.source_ip,
        "submitted_at": record.submitted_at.isoformat(), "recorded_at": record.recorded_at.isoformat(),
    }


async def subject_records(session: AsyncSession, subject_hash: str) -> dict[str, Any]:
    """Everything intake holds about a subject, as plain JSON-able data for an access package."""
    history = await consent_history(session, subject_hash, limit=10_000)
    inbox = (await session.exec(
        select(InboxEvent).where(
            or_(col(InboxEvent.subject_hash) == subject_hash, col(InboxEvent.subject_hashes).like(f"%{subject_hash}%"))
        ).order_by(col(InboxEvent.id))
    )).all()
    return {
        "consent_records": [_record_dict(r) for r in history["records"]],
        "withdrawals": [
            {"channel": w.channel, "old_status": w.old_status, "new_status": w.new_status,
             "contact_id": w.contact_id, "withdrawn_at": w.withdrawn_at.isoformat(),
             "restored_at": w.restored_at.isoformat() if w.restored_at else None}
            for w in history["withdrawals"]
        ],
        "alerts": [
            {"id": a.id, "kind": a.kind, "state": a.state, "title": a.title, "missing": a.missing,
             "created_at": a.created_at.isoformat(), "decision": a.decision, "reason": a.reason,
             "decided_at": a.decided_at.isoformat() if a.decided_at else None, "outcome": a.outcome}
            for a in history["alerts"]
        ],
        "webhook_events": [
            {"type": e.event_type, "state": e.state, "received_at": e.received_at.isoformat(),
             "occurred_at": e.occurred_at.isoformat() if e.occurred_at else None, "contact_id": e.contact_id,
             "payload": e.payload}
            for e in inbox
        ],
    }


async def compliance_counts(session: AsyncSession, since: datetime, until: datetime) -> dict[str, Any]:
    """Figures for the compliance digest over ``[since, until)``; no personal data."""
    in_window = and_(col(ConsentRecord.submitted_at) >= since, col(ConsentRecord.submitted_at) < until)
    rows = (await session.exec(  # type: ignore[call-overload]
        sa_select(
            col(ConsentRecord.form_id), col(ConsentRecord.form_name), func.count(),
            func.sum(cast(col(ConsentRecord.given), Integer)),
            func.sum(cast(col(ConsentRecord.exempt), Integer)),
        ).where(in_window).group_by(col(ConsentRecord.form_id), col(ConsentRecord.form_name))
    )).all()
    forms: dict[Any, dict[str, Any]] = {}
    for form_id, form_name, total, given, exempt in rows:
        entry = forms.setdefault(form_id, {"form_id": form_id, "form_name": form_name, "submissions": 0,
                                           "with_consent": 0, "exempt": 0})
        entry["submissions"] += int(total)
        entry["with_consent"] += int(given or 0)
        entry["exempt"] += int(exempt or 0)
    for entry in forms.values():
        judged = entry["submissions"] - entry["exempt"]
        entry["consent_share"] = round(entry["with_consent"] / judged, 4) if judged else None

    async def count(query: Any) -> int:
        return int((await session.exec(query)).one() or 0)

    alert_window = and_(col(ConsentAlert.created_at) >= since, col(ConsentAlert.created_at) < until)

    def alerts_of(kind: AlertKind) -> Any:
        return select(func.count()).select_from(ConsentAlert).where(alert_window, col(ConsentAlert.kind) == kind)

    gaps_open = await count(alerts_of(AlertKind.CONSENT_GAP).where(col(ConsentAlert.state) == AlertState.OPEN))
    gaps_resolved = await count(
        alerts_of(AlertKind.CONSENT_GAP).where(col(ConsentAlert.state) == AlertState.DECIDED)
    )
    withdrawals = await count(
        select(func.count()).select_from(Withdrawal)
        .where(col(Withdrawal.withdrawn_at) >= since, col(Withdrawal.withdrawn_at) < until)
    )
    unsubscribes = await count(
        select(func.count()).select_from(Withdrawal)
        .where(col(Withdrawal.withdrawn_at) >= since, col(Withdrawal.withdrawn_at) < until,
               col(Withdrawal.new_status) == "unsubscribed")
    )
    return {
        "forms": sorted(forms.values(), key=lambda f: (-f["submissions"], str(f["form_name"]))),
        "submissions": sum(f["submissions"] for f in forms.values()),
        "gaps_open": gaps_open,
        "gaps_resolved": gaps_resolved,
        "unsubscribes": unsubscribes,
        "withdrawals": withdrawals,
        "sends_after_withdrawal": await count(alerts_of(AlertKind.SENT_AFTER_WITHDRAWAL)),
        "resubscriptions_without_consent": await count(alerts_of(AlertKind.RESUBSCRIBED)),
        "erased_subjects_reentered": await count(alerts_of(AlertKind.ERASED_REENTERED)),
        "dead_letters": await count(
            select(func.count()).select_from(InboxEvent)
            .where(col(InboxEvent.state) == InboxState.DEAD, col(InboxEvent.received_at) >= since,
                   col(InboxEvent.received_at) < until)
        ),
    }


def burst_since(now: datetime, window: timedelta) -> datetime:
    return now - window
