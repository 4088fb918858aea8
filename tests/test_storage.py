"""Storage set-up: URL mapping to the async drivers, SQLite in WAL mode, migrations to the one head, and
when a pooled PostgreSQL connection is pinged."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

import storage.db
from storage import intake as intake_store
from storage.db import async_url, make_engine, make_session_factory, unit_of_work
from storage.migrate import current_heads, migrate


def test_plain_urls_map_to_async_drivers() -> None:
    assert async_url("sqlite:///./privacy-bot.db") == "sqlite+aiosqlite:///./privacy-bot.db"
    assert async_url("postgresql://bot@db/privacy") == "postgresql+asyncpg://bot@db/privacy"
    assert async_url("postgres://bot@db/privacy") == "postgresql+asyncpg://bot@db/privacy"
    assert async_url("postgresql+asyncpg://bot@db/x") == "postgresql+asyncpg://bot@db/x"


async def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    async with engine.connect() as conn:
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        timeout = (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one()
    await engine.dispose()
    assert mode == "wal"
    assert timeout == 30000


async def test_migrations_reach_the_one_head(db_url: str) -> None:
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config, script_head

    engine = make_engine(db_url)
    await migrate(engine)
    heads = await current_heads(engine)
    await engine.dispose()
    assert heads == set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert heads == {script_head()}  # one chain: the features' branches are merged


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(postgres_url: str, pid: int) -> None:
    killer = make_engine(postgres_url)
    async with killer.connect() as conn:
        assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()
    await killer.dispose()


@pytest.mark.postgres
async def test_a_pooled_connection_idle_past_the_window_is_pinged_and_replaced(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage.db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle
    engine = make_engine(postgres_url)
    try:
        first = await _backend_pid(engine)
        await _terminate(postgres_url, first)  # the server drops the connection the pool still holds
        # The checkout's ping finds it dead, and the caller gets a fresh connection without an error.
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_connection_used_within_the_window_is_handed_out_without_a_ping(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage.db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    engine = make_engine(postgres_url)
    try:
        first = await _backend_pid(engine)
        await _terminate(postgres_url, first)
        # Not pinged: the statement itself meets the dead connection (the documented trade-off; callers
        # handle a failed transaction), and SQLAlchemy invalidates the pool, so the next checkout is fresh.
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(engine)
        assert failed.value.connection_invalidated
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_sqlite_connections_go_back_to_the_pool_with_no_transaction_open(sqlite_url: str) -> None:
    # The pool does not roll back on return (storage.db), so a unit of work that fails must end its own
    # transaction: otherwise the pooled connection would keep SQLite's one write lock.
    engine = make_engine(sqlite_url)
    await migrate(engine)
    sessions = make_session_factory(engine)
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions) as session:
            await session.exec(text("DELETE FROM inbox_deliveries"))  # type: ignore[call-overload]
            raise RuntimeError("fails mid-transaction")
    other = sqlite3.connect(make_url(sqlite_url).database or "", timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write lock is free at once: SQLITE_BUSY otherwise
        other.execute("ROLLBACK")
    finally:
        other.close()
        await engine.dispose()


async def _engine_with_a_closed_pooled_connection(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncEngine:
    """An engine whose one pooled connection was closed after its last use, and that is handed out unpinged
    (as within the idle window of storage.db's ping)."""
    monkeypatch.setattr(storage.db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    engine = make_engine(postgres_url)
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.close()  # as asyncpg marks a connection whose socket it saw closed
    return engine


@pytest.mark.postgres
async def test_a_group_commit_on_a_connection_closed_since_its_last_use_fails_as_a_database_error(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The webhook's group commit talks to asyncpg directly. A pooled connection closed since its last use
    # (an outage, met before the idle-only ping looks again) must fail as the DBAPI error callers handle
    # (the webhook spools on it), not as asyncpg's own InterfaceError (a 500, which Mautic drops for good),
    # and must not go back to the pool.
    schema = make_engine(postgres_url)
    await migrate(schema)
    await schema.dispose()
    engine = await _engine_with_a_closed_pooled_connection(postgres_url, monkeypatch)
    try:
        sessions = make_session_factory(engine)
        row = {"received_at": datetime(2026, 12, 1, tzinfo=UTC), "body": b"{}", "body_sha256": "0" * 64}
        with pytest.raises(OperationalError) as failed:
            await intake_store.commit_deliveries_autocommit(sessions, [row])
        assert failed.value.connection_invalidated
        assert len(await intake_store.commit_deliveries_autocommit(sessions, [row])) == 1  # a fresh connection
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_health_ping_on_a_closed_pooled_connection_fails_once_and_the_next_reconnects(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The spool's mover probes with this ping every interval; a closed connection handed back to the pool
    # unpinged would otherwise fail every probe after an outage, and the spool would never be moved in.
    engine = await _engine_with_a_closed_pooled_connection(postgres_url, monkeypatch)
    try:
        with pytest.raises(OperationalError):
            await storage.db.ping(engine)
        await storage.db.ping(engine)  # the closed connection was thrown away: a fresh one answers
    finally:
        await engine.dispose()
