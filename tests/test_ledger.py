"""The audit ledger detects edited, deleted and reordered entries, on both backends."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from sqlalchemy import text

from storage.db import make_engine, make_session_factory, unit_of_work
from storage.ledger import AuditEntry, derive_key, record, use_key, verify
from storage.migrate import migrate
from tests.helpers import child_env

# The BOT_SECRET_KEY these ledgers are keyed with.
KEY = "4fafc6af54fdffd1b3868a8658cd085da6da002bfa2c6c34202cd145a1459659"


async def _ledger_with(db_url: str, n: int):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    use_key(engine, derive_key(KEY))
    await migrate(engine)
    sessions = make_session_factory(engine)
    for i in range(n):
        async with unit_of_work(sessions) as session:
            await record(session, actor="U0BOB", action="request.approved", subject=f"request:{i}",
                         details={"n": i, "label": "ok"})
    return engine, sessions


async def _verify(sessions):  # type: ignore[no-untyped-def]
    async with unit_of_work(sessions) as session:
        return await verify(session)


async def test_intact_chain_verifies(db_url: str) -> None:
    engine, sessions = await _ledger_with(db_url, 5)
    result = await _verify(sessions)
    await engine.dispose()
    assert result.ok and result.entries == 5
    assert result.head_hash is not None and len(result.head_hash) == 64
    assert result.describe() == f"ledger OK: 5 entries, chain intact, head {result.head_hash[:16]}"


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "problem"),
    [
        ("UPDATE audit_ledger SET actor = 'U0MALLORY' WHERE seq = 3", 3, "edited"),
        ("UPDATE audit_ledger SET details = '{\"n\": 99}' WHERE seq = 2", 2, "edited"),
        ("DELETE FROM audit_ledger WHERE seq = 4", 4, "missing"),
    ],
)
async def test_tampering_is_named(db_url: str, tamper: str, bad_seq: int, problem: str) -> None:
    engine, sessions = await _ledger_with(db_url, 6)
    async with engine.begin() as conn:
        await conn.execute(text(tamper))
    result = await _verify(sessions)
    await engine.dispose()
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert problem in (result.problem or "")


async def test_reordering_is_detected(db_url: str) -> None:
    engine, sessions = await _ledger_with(db_url, 4)
    # Swap the contents of entries 2 and 3 while keeping their sequence numbers.
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE audit_ledger SET seq = 100 WHERE seq = 2"))
        await conn.execute(text("UPDATE audit_ledger SET seq = 2 WHERE seq = 3"))
        await conn.execute(text("UPDATE audit_ledger SET seq = 3 WHERE seq = 100"))
    result = await _verify(sessions)
    await engine.dispose()
    assert not result.ok and result.first_bad_seq == 2


async def test_concurrent_appenders_keep_one_chain(db_url: str) -> None:
    engine, sessions = await _ledger_with(db_url, 0)

    async def append(i: int) -> None:
        async with unit_of_work(sessions) as session:
            await record(session, actor="system", action="test.concurrent", details={"i": i})

    await asyncio.gather(*(append(i) for i in range(20)))
    result = await _verify(sessions)
    async with unit_of_work(sessions) as session:
        count = len((await session.exec(__import__("sqlmodel").select(AuditEntry))).all())
    await engine.dispose()
    assert count == 20
    assert result.ok, result.describe()


async def test_cli_audit_verify_reports_tampering(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine, _ = await _ledger_with(sqlite_url, 3)
    env = child_env({"DATABASE_URL": sqlite_url, "BOT_SECRET_KEY": KEY})
    ok = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot", "audit", "verify"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ledger OK: 3 entries" in ok.stdout
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE audit_ledger SET action = 'request.rejected' WHERE seq = 2"))
    await engine.dispose()
    bad = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot", "audit", "verify"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert bad.returncode == 1
    assert "BROKEN at entry 2" in bad.stdout
