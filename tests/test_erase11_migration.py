"""Revision 0011_erase11 on both backends: reasons typed into earlier ledger entries are scrubbed and the chain is
recomputed (``audit verify`` passes, and an appended entry accounts for the old head); requests erased before it
lose the reasons and contact ids the erasure used to leave; the new tables match the models."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel, col, select

import storage.models  # noqa: F401  (every table on the metadata)
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.ledger import GENESIS, AuditEntry, contact_ref, derive_key, use_key, verify
from storage.migrate import MIGRATIONS, migrate, upgrade
from tests.helpers.store_scan import find_in_store

AT = datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC)
TYPED = "Zanzibar: the requester phoned twice"
ledger_table = SQLModel.metadata.tables["audit_ledger"]
requests = SQLModel.metadata.tables["privacy_requests"]
KEY = "0123456789abcdef" * 4  # BOT_SECRET_KEY: the later revision 0012_harden9 re-keys the chain with it
MINE = ("erasure_cleanup", "erased_subjects", "purge_chunks", "purge_requests")


def _plain_hash(**entry: Any) -> str:
    """The chain as the ledger computed it before 0012_harden9 keyed it: plain SHA-256 of canonical JSON."""
    canonical = json.dumps({**entry, "at": entry["at"].isoformat(timespec="microseconds")},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def old_entries() -> list[dict[str, Any]]:
    """Entries as the previous version wrote them: two carry text a person typed."""
    details = [
        ("request.filed", {"kind": "erasure", "contact_ids": [41, 42]}),  # clear ids: 0012 makes them refs
        ("request.reject", {"from": "filed", "to": "rejected", "reason": TYPED}),
        ("request.verify", {"method": "other", "method_note": f"{TYPED} (callback)"}),
        ("request.approve", {"from": "verified", "to": "approved"}),
    ]
    rows, prev = [], GENESIS
    for seq, (action, body) in enumerate(details, start=1):
        at = AT + timedelta(minutes=seq)
        digest = _plain_hash(seq=seq, at=at, actor="U0BOB", action=action, subject="request:1", details=body,
                             prev=prev)
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

        use_key(engine, derive_key(KEY))
        await upgrade(engine, MIGRATIONS, "0011_erase11")
        async with engine.connect() as conn:
            first = (await conn.execute(select(ledger_table.c.hash).where(ledger_table.c.seq == 1))).scalar_one()
        assert first == entries[0]["hash"]  # before the first scrubbed entry nothing changed
        await migrate(engine)  # then 0012_harden9 re-keys the whole chain

        sessions = make_session_factory(engine)
        async with unit_of_work(sessions) as session:
            result = await verify(session)
            rows = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.seq)))).all()
        assert result.ok and result.entries == 6, result.describe()
        assert rows[-1].action == "ledger.rekeyed" and rows[-1].details["old_chain_ok"] is True
        assert rows[-1].details["contact_ids_replaced"] == 1
        assert rows[0].details["contact_ids"] == [contact_ref(derive_key(KEY), 41), contact_ref(derive_key(KEY), 42)]
        assert rows[1].details == {"from": "filed", "to": "rejected", "reason_given": True,
                                   "reason_scrubbed": "0011_erase11"}
        assert rows[2].details["method_note_given"] is True and rows[2].details["method"] == "other"
        rechained = rows[-2]
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
            assert (await verify(session)).entries == 6
    finally:
        await engine.dispose()
