"""The audit ledger never holds a clear Mautic contact id: ``record()`` replaces them by keyed refs before
hashing, revision 0012_harden9 rewrites the entries written before, and ``bot audit contact 42`` finds the
entries about one contact for whoever holds BOT_SECRET_KEY."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from storage.db import make_engine, make_session_factory, unit_of_work
from storage.ledger import (
    GENESIS,
    AuditEntry,
    contact_ref,
    derive_key,
    entries_about,
    entries_naming_contact,
    record,
    use_key,
    verify,
)
from storage.migrate import MIGRATIONS, migrate, upgrade
from tests.helpers import child_env

KEY = "f54e3752ba48a317d1748713d63c6256c703236155bb582a3f905c31510278ef"  # random, as BOT_SECRET_KEY must be
LEDGER_KEY = derive_key(KEY)


def test_a_ref_is_the_documented_keyed_hash_and_needs_the_key() -> None:
    expected = hmac.new(LEDGER_KEY, b"contact:42", hashlib.sha256).hexdigest()[:16]
    assert contact_ref(LEDGER_KEY, 42) == contact_ref(LEDGER_KEY, "42") == expected
    assert contact_ref(derive_key(KEY[::-1]), 42) != expected and contact_ref(LEDGER_KEY, 43) != expected


async def test_record_replaces_contact_ids_before_hashing(db_url: str) -> None:
    engine = make_engine(db_url)
    use_key(engine, LEDGER_KEY)
    ref = contact_ref(LEDGER_KEY, 42)
    try:
        await migrate(engine)
        sessions = make_session_factory(engine)
        async with unit_of_work(sessions) as session:
            await record(session, actor="bot", action="mautic.contact_rectified", subject="contact:42",
                         details={"contact_id": 42, "fields": ["city"]})
            await record(session, actor="bot", action="request.complete", subject="request:7",
                         details={"contacts": [{"id": 42, "found": True, "fields": 3}, {"id": 43}], "deleted": 2})
            await record(session, actor="system", action="purge.chunk", subject="purge:1",
                         details={"chunk": 1, "deleted": 2, "first_id": 42, "last_id": 43, "contacts": 2})
            await record(session, actor="webhook", action="consent.withdrawn", subject="subject:" + "a" * 16,
                         details={"contact": 42, "withdrawal": 3, "contact_ids": [43, "42"]})
            await record(session, actor="bot", action="request.filed", subject="request:8", details={"contact": None})
        async with unit_of_work(sessions) as session:
            rows = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.seq)))).all()
            assert (await verify(session)).ok  # the hash covers what was stored
            about = await entries_about(session, ["contact:42"])  # a clear id is looked up by its ref
            naming = await entries_naming_contact(session, 42)
    finally:
        await engine.dispose()
    other = contact_ref(LEDGER_KEY, 43)
    assert rows[0].subject == f"contact:{ref}" and rows[0].details == {"contact_id": ref, "fields": ["city"]}
    assert rows[1].details == {"contacts": [{"id": ref, "found": True, "fields": 3}, {"id": other}], "deleted": 2}
    assert rows[2].details == {"chunk": 1, "deleted": 2, "first_id": ref, "last_id": other, "contacts": 2}
    assert rows[3].details == {"contact": ref, "withdrawal": 3, "contact_ids": [other, ref]}
    assert rows[4].details == {"contact": None}
    for row in rows:
        text = json.dumps([row.subject, row.details])
        assert "contact:42" not in text and ": 42" not in text and '"42"' not in text and ": 43" not in text
    assert [e.seq for e in about] == [1]
    assert [e.seq for e in naming] == [1, 2, 3, 4]


def _plain_chain(entries: list[tuple[str, str | None, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Entries as the ledger wrote them before 0012_harden9: plain SHA-256, clear contact ids."""
    prev, out = GENESIS, []
    for seq, (action, subject, details) in enumerate(entries, start=1):
        at = datetime(2026, 11, 1, 9, seq, tzinfo=UTC)
        entry = {"seq": seq, "at": at, "actor": "bot", "action": action, "subject": subject, "details": details}
        canonical = json.dumps({**entry, "at": at.isoformat(timespec="microseconds"), "prev": prev},
                               sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        out.append({**entry, "prev_hash": prev, "hash": digest})
        prev = digest
    return out


async def test_revision_0012_replaces_clear_contact_ids_while_rekeying(db_url: str, tmp_path: Path) -> None:
    entries = _plain_chain([
        ("request.approved", "request:1", {"from": "verified"}),
        ("mautic.contact_deleted", "contact:42", {"inbox": 5}),
        ("purge.chunk", "purge:1", {"first_id": 41, "last_id": 42, "deleted": 2}),
        ("request.complete", "request:1", {"contacts": 2}),
    ])
    engine = make_engine(db_url)
    try:
        await upgrade(engine, MIGRATIONS, "0007_request_deadlines")
        async with engine.begin() as conn:
            await conn.execute(AuditEntry.__table__.insert(), entries)  # type: ignore[attr-defined]
        use_key(engine, LEDGER_KEY)
        await migrate(engine)
        async with unit_of_work(make_session_factory(engine)) as session:
            result = await verify(session)
            rows = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.seq)))).all()
    finally:
        await engine.dispose()
    assert result.ok and result.entries == 5, result.describe()
    ref, other = contact_ref(LEDGER_KEY, 42), contact_ref(LEDGER_KEY, 41)
    assert rows[1].subject == f"contact:{ref}" and rows[1].details == {"inbox": 5}
    assert rows[2].details == {"first_id": other, "last_id": ref, "deleted": 2}
    assert rows[3].details == {"contacts": 2}  # a count stays a count
    rekeyed = rows[-1]
    assert rekeyed.action == "ledger.rekeyed"
    assert rekeyed.details["contact_ids_replaced"] == 2 and rekeyed.details["old_chain_ok"] is True
    assert rekeyed.details["old_head"] == entries[-1]["hash"]

    if db_url.startswith("sqlite"):  # the CLI reads the same store; once is enough
        found = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bot", "audit", "contact", "42"], capture_output=True, text=True,
            env=child_env({"DATABASE_URL": db_url, "BOT_SECRET_KEY": KEY}), cwd=tmp_path, timeout=60)
        assert found.returncode == 0, found.stderr
        lines = found.stdout.splitlines()
        assert lines[0] == f"2 ledger entries about Mautic contact 42 (ref {ref})"
        assert lines[1].startswith("#2 ") and "mautic.contact_deleted" in lines[1] and lines[2].startswith("#3 ")
