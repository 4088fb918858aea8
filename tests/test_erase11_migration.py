"""Revision 0008_erase11 on both backends: reasons typed into earlier ledger entries are scrubbed and the chain is
recomputed (``audit verify`` passes, and an appended entry accounts for the old head); requests erased before it
lose the reasons and contact ids the erasure used to leave; the new tables match the models."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel, col, select

import storage.models  # noqa: F401  (every table on the metadata)
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.ledger import GENESIS, AuditEntry, entry_hash, verify
from storage.migrate import MIGRATIONS, migrate, upgrade
from tests.helpers.store_scan import find_in_store

AT = datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC)
TYPED = "Zanzibar: the requester phoned twice"
ledger_table = SQLModel.metadata.tables["audit_ledger"]
requests = SQLModel.metadata.tables["privacy_requests"]
MINE = ("erasure_cleanup", "erased_subjects", "purge_chunks", "purge_requests")


def old_entries() -> list[dict[str, Any]]:
    """Entries as the previous version wrote them: two carry text a person typed."""
    details = [
        ("request.filed", {"kind": "erasure"}),
        ("request.reject", {"from": "filed", "to": "rejected", "reason": TYPED}),
        ("request.verify", {"method": "other", "method_note": f"{TYPED} (callback)"}),
        ("request.approve", {"from": "verified", "to": "approved"}),
    ]
    rows, prev = [], GENESIS
    for seq, (action, body) in enumerate(details, start=1):
        at = AT + timedelta(minutes=seq)
        digest = entry_hash(seq=seq, at=at, actor="U0BOB", action=action, subject="request:1", details=body,
                            prev_hash=prev)
        rows.append({"seq": seq, "at": at, "actor": "U0BOB", "action": action, "subject": "request:1",
                     "details": body, "prev_hash": prev, "hash": digest})
        prev = digest
    return rows


async def test_typed_text_leaves_the_ledger_and_the_chain_still_verifies(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await upgrade(engine, MIGRATIONS, "0007_request_deadlines")
        entries = old_entries()
        async with engine.begin() as conn:
            await conn.execute(ledger_table.insert(), entries)
            await conn.execute(requests.insert().values(
                kind="erasure", state="done", regime="gdpr", subject_hash="d" * 64, subject_masked="(erased subject)",
                changes={}, filed_by="U0ALICE", channel="C0PRIVACY", received_at=AT, due_date=date(2026, 2, 5),
                original_due_date=date(2026, 2, 5), result={"deleted": [41, 42]}, contacts_found=[41, 42], runs=1,
                pii_messages=[], updated_at=AT, extension_reason=TYPED, verification_note=TYPED))

        await migrate(engine)

        sessions = make_session_factory(engine)
        async with unit_of_work(sessions) as session:
            result = await verify(session)
            rows = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.seq)))).all()
        assert result.ok and result.entries == 5, result.describe()
        assert rows[0].hash == entries[0]["hash"]  # before the first scrubbed entry nothing changed
        assert rows[1].details == {"from": "filed", "to": "rejected", "reason_given": True,
                                   "reason_scrubbed": "0008_erase11"}
        assert rows[2].details["method_note_given"] is True and rows[2].details["method"] == "other"
        rechained = rows[-1]
        assert (rechained.action, rechained.actor) == ("ledger.rechained", "migration")
        assert rechained.details["previous_head"] == entries[-1]["hash"]
        assert (rechained.details["first_changed_seq"], rechained.details["scrubbed_entries"]) == (2, 2)
        assert await find_in_store(sessions, ["Zanzibar", "[41, 42]"]) == []

        def diff(connection: Any) -> list[Any]:
            changes = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
            return [c for c in changes if any(name in str(c) for name in MINE)]

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
        await migrate(engine)  # a second run changes nothing
        async with unit_of_work(sessions) as session:
            assert (await verify(session)).entries == 5
    finally:
        await engine.dispose()
