"""Schema migrations with Alembic, driven from async code on the service's own engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(script_location: Path = MIGRATIONS) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    return config


def script_head(script_location: Path = MIGRATIONS) -> str:
    """The one head of the revision chain (Alembic raises if the scripts have grown a second one)."""
    head = ScriptDirectory.from_config(alembic_config(script_location)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts in {script_location}")
    return head


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade to the one head. A database migrated when the features were three branches (three rows in
    ``alembic_version``) gets there through the merge revision 0005_one_chain."""
    await upgrade(engine, MIGRATIONS, "head")


async def upgrade(engine: AsyncEngine, script_location: Path, target: str) -> None:
    from storage.ledger import registered_key

    key = registered_key(engine)

    def _upgrade(sync_connection: Any) -> None:
        config = alembic_config(script_location)
        config.attributes["connection"] = sync_connection
        # How migrations reach BOT_SECRET_KEY: storage sits below the settings, so whoever made the engine
        # registered the ledger key derived from it (storage.ledger.use_key); None when it was not set.
        config.attributes["ledger_key"] = key
        command.upgrade(config, target)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def current_heads(engine: AsyncEngine) -> set[str]:
    """The revisions ``alembic_version`` holds: one after ``migrate``, none on an empty database."""
    from alembic.runtime.migration import MigrationContext

    def _heads(sync_connection: Any) -> set[str]:
        return set(MigrationContext.configure(sync_connection).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(_heads)
