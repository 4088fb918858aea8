"""Storage set-up: URL mapping to the async drivers, SQLite in WAL mode, and migrations to the one head."""

from __future__ import annotations

from sqlalchemy import text

from storage.db import async_url, make_engine
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
