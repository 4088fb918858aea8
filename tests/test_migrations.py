"""One revision chain with one head: a fresh database migrates to it, and so does a database that an
earlier version left at the three feature heads (0002_intake, 0003_requests, 0004_digests).

The earlier layout is rebuilt from this repository's own scripts: the core and the three feature
revisions, copied without anything that came after them, are exactly the scripts that version ran (the
test below checks they still branch from the core). Upgrading with that copy writes the same tables and
the same three ``alembic_version`` rows a deployed database of that version holds."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (every table on the metadata)
from storage.db import make_engine
from storage.migrate import MIGRATIONS, alembic_config, current_heads, migrate, script_head, upgrade

NOON = datetime(2026, 1, 1, 12, tzinfo=UTC)
jobs = SQLModel.metadata.tables["jobs"]
OLD_HEADS = {"0002_intake", "0003_requests", "0004_digests"}
OLD_SCRIPTS = ("0001_core.py", "0002_intake.py", "0003_requests.py", "0004_digests.py")


def three_head_scripts(into: Path) -> Path:
    """The migration folder as it was before the branches were merged."""
    (into / "versions").mkdir(parents=True)
    shutil.copy(MIGRATIONS / "env.py", into / "env.py")
    shutil.copy(MIGRATIONS / "script.py.mako", into / "script.py.mako")
    for name in OLD_SCRIPTS:
        shutil.copy(MIGRATIONS / "versions" / name, into / "versions" / name)
    return into


# 0006: Socket Mode's taken deliveries and the App Home viewers; then export uploads, form revisions and
# fields seen, erasure clean-up checklists, exactly-once Slack posts, deliveries moved in from the spool.
TABLES_ADDED_AFTER_THE_MERGE = {
    "slack_deliveries", "app_home_viewers", "slack_export_files", "form_revisions", "form_fields_seen",
    "erasure_cleanup", "slack_posts", "spool_moves"}


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def version_rows(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return sorted((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


def test_the_scripts_form_one_chain_from_the_core() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [script_head()]
    assert scripts.get_bases() == ["0001_core"]
    # Every revision lies on the way from the one head down to the core: nothing dangles.
    reachable = {rev.revision for rev in scripts.iterate_revisions(script_head(), "base")}
    assert reachable == {rev.revision for rev in scripts.walk_revisions()}
    merge = scripts.get_revision("0005_one_chain")
    assert merge is not None and set(merge.down_revision or ()) == OLD_HEADS


def test_the_copied_old_scripts_are_the_three_branch_layout(tmp_path: Path) -> None:
    scripts = ScriptDirectory.from_config(alembic_config(three_head_scripts(tmp_path / "old")))
    assert set(scripts.get_heads()) == OLD_HEADS
    for head in OLD_HEADS:
        revision = scripts.get_revision(head)
        assert revision is not None and revision.down_revision == "0001_core"


async def test_a_fresh_database_migrates_to_the_one_head(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await migrate(engine)
        assert await current_heads(engine) == {script_head()}
        assert await version_rows(engine) == [script_head()]
        assert await table_names(engine) >= set(SQLModel.metadata.tables)
        await migrate(engine)  # idempotent
        assert await version_rows(engine) == [script_head()]
    finally:
        await engine.dispose()


async def test_a_database_at_the_three_old_heads_upgrades_to_the_one_head(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    try:
        await upgrade(engine, three_head_scripts(tmp_path / "old"), "heads")
        assert await current_heads(engine) == OLD_HEADS
        assert await version_rows(engine) == sorted(OLD_HEADS)
        old_tables = await table_names(engine)
        async with engine.begin() as conn:  # data written by the old version must survive the upgrade
            await conn.execute(jobs.insert().values(
                kind="probe", payload={}, state="queued", attempts=0, max_attempts=1, run_after=NOON, progress={},
                created_at=NOON))

        await migrate(engine)

        assert await current_heads(engine) == {script_head()}
        assert await version_rows(engine) == [script_head()]  # the three rows collapsed into one
        # The merge itself changes no table; only the revisions after it add theirs.
        assert await table_names(engine) == old_tables | TABLES_ADDED_AFTER_THE_MERGE
        async with engine.connect() as conn:
            assert (await conn.execute(select(jobs.c.kind, jobs.c.run_after))).all() == [("probe", NOON)]
    finally:
        await engine.dispose()
