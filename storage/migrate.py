"""Schema migrations with Alembic, driven from async code on the service's own engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade to every head: feature branches each start from the core revision."""

    def _upgrade(sync_connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = sync_connection
        command.upgrade(config, "heads")

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def current_heads(engine: AsyncEngine) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    def _heads(sync_connection: Any) -> set[str]:
        return set(MigrationContext.configure(sync_connection).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(_heads)
