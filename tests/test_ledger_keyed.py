"""The audit chain is keyed (HMAC under a key derived from BOT_SECRET_KEY): whoever can write the database
but lacks the key cannot rebuild it over edited entries; revision 0012_harden9 re-keys an existing plain chain."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import select

from sandbox.harness import BOB, Sandbox
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.ledger import GENESIS, AuditEntry, derive_key, entry_hash, registered_key, use_key, verify
from storage.migrate import MIGRATIONS, migrate, upgrade
from tests.helpers import child_env

KEY = "fedcba9876543210" * 4


async def _verify_with(db_url: str, key: bytes) -> Any:
    engine = make_engine(db_url)
    use_key(engine, key)
    try:
        async with unit_of_work(make_session_factory(engine)) as session:
            return await verify(session)
    finally:
        await engine.dispose()


async def test_the_service_keys_its_chain_and_a_rebuilt_chain_without_the_key_fails(box: Sandbox) -> None:
    assert box.settings.bot_secret_key is not None
    key = derive_key(box.settings.bot_secret_key.get_secret_value())
    assert registered_key(box.services.engine) == key
    await box.command(BOB, "dsar jane.keyed@example.com")  # files a request: ledger entries
    await box.jobs_idle()
    url = box.settings.database_url
    assert (await _verify_with(url, key)).ok
    assert not (await _verify_with(url, derive_key("another key " + "9" * 64))).ok

    # An attacker with write access edits entry 1 and rebuilds the whole chain: with plain SHA-256 (what
    # the chain was before) or any key but the right one, verification still fails at entry 1.
    async with box.services.sessions() as session:
        rows = list((await session.exec(select(AuditEntry).order_by(AuditEntry.seq))).all())  # type: ignore[call-overload,arg-type]
    prev = GENESIS
    async with box.services.engine.begin() as conn:
        for row in rows:
            actor = "U0MALLORY" if row.seq == 1 else row.actor
            canonical = json.dumps({"seq": row.seq, "at": row.at.isoformat(timespec="microseconds"), "actor": actor,
                                    "action": row.action, "subject": row.subject, "details": row.details,
                                    "prev": prev}, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                                   default=str)
            forged = hashlib.sha256(canonical.encode()).hexdigest()
            await conn.execute(update(AuditEntry).where(AuditEntry.seq == row.seq)  # type: ignore[arg-type]
                               .values(actor=actor, prev_hash=prev, hash=forged))
            prev = forged
    result = await _verify_with(url, key)
    assert not result.ok and result.first_bad_seq == 1


def _plain_entries(n: int) -> list[dict[str, Any]]:
    """Entries as the ledger wrote them before revision 0012_harden9: chained with plain SHA-256."""
    prev, out = GENESIS, []
    for seq in range(1, n + 1):
        at = datetime(2026, 11, 1, 9, seq, tzinfo=UTC)
        entry = {"seq": seq, "at": at, "actor": "U0BOB", "action": "request.approved", "subject": f"request:{seq}",
                 "details": {"n": seq}}
        canonical = json.dumps({**entry, "at": at.isoformat(timespec="microseconds"), "prev": prev},
                               sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        out.append({**entry, "prev_hash": prev, "hash": digest})
        prev = digest
    return out


async def _old_ledger(db_url: str, entries: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    await upgrade(engine, MIGRATIONS, "0007_request_deadlines")
    async with engine.begin() as conn:
        await conn.execute(AuditEntry.__table__.insert(), entries)  # type: ignore[attr-defined]
    return engine


@pytest.mark.parametrize("tampered", [False, True], ids=["intact", "already-broken"])
async def test_revision_0012_rekeys_an_existing_chain_and_says_how_the_old_one_stood(
    db_url: str, tampered: bool
) -> None:
    entries = _plain_entries(4)
    if tampered:
        entries[2]["actor"] = "U0MALLORY"  # edited before the upgrade: the old chain breaks at entry 3
    engine = await _old_ledger(db_url, entries)
    try:
        with pytest.raises(RuntimeError, match="BOT_SECRET_KEY is needed"):
            await migrate(engine)  # entries to re-key, but no key registered
        use_key(engine, derive_key(KEY))
        await migrate(engine)
        async with unit_of_work(make_session_factory(engine)) as session:
            result = await verify(session)
            last = (await session.exec(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))).one()  # type: ignore[attr-defined,call-overload]
    finally:
        await engine.dispose()
    assert result.ok and result.entries == 5
    assert last.action == "ledger.rekeyed" and last.actor == "migration"
    assert last.details == {"entries": 4, "old_head": entries[-1]["hash"], "old_chain_ok": not tampered,
                            "first_bad_seq": 3 if tampered else None, "contact_ids_replaced": 0}
    assert not (await _verify_with(db_url, derive_key("not the key " + "1" * 64))).ok


def test_entry_hash_depends_on_the_key() -> None:
    fields: dict[str, Any] = {"seq": 1, "at": datetime(2026, 1, 1, tzinfo=UTC), "actor": "a", "action": "b",
                              "subject": None, "details": {}, "prev_hash": GENESIS}
    assert entry_hash(**fields, key=derive_key(KEY)) != entry_hash(**fields, key=derive_key(KEY + "x"))
    assert derive_key(KEY) == derive_key(KEY) and len(derive_key(KEY)) == 32


async def test_cli_audit_verify_needs_the_key(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    await migrate(engine)
    await engine.dispose()
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot", "audit", "verify"], capture_output=True, text=True,
        env=child_env({"DATABASE_URL": sqlite_url}), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "BOT_SECRET_KEY is required" in result.stderr
