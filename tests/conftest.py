"""Shared fixtures: a database per test (SQLite file, or a fresh PostgreSQL schema), and the bot's
real service running against the Slack and Mautic stand-ins on loopback."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

# The shared helpers assert too: have pytest explain their failures as it does in test modules.
pytest.register_assert_rewrite("tests.helpers")

if TYPE_CHECKING:
    from sandbox.harness import Sandbox
    from sandbox.slack import FakeSlack

BASE_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _worker_database_url(base: str, worker: str | None) -> str:
    """Under pytest-xdist every worker gets a database of its own (``test_gw0``…): tests drop and recreate the
    ``public`` schema, so two workers sharing one database would wipe each other's tables mid-test."""
    if not worker:
        return base
    from sqlalchemy.engine import make_url

    url = make_url(base)
    return url.set(database=f"{url.database}_{worker}").render_as_string(hide_password=False)


POSTGRES_URL = _worker_database_url(BASE_POSTGRES_URL, os.environ.get("PYTEST_XDIST_WORKER"))
_ENV_TO_CLEAR = (
    "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy",
    "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN",
    "DATABASE_URL", "PRIVACY_CHANNEL", "PRIVACY_APPROVERS", "PRIVACY_REQUESTERS",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Proxies would send loopback traffic elsewhere; Slack OAuth variables make Bolt drop our token.
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)


_postgres_state: dict[str, str | None] = {}


async def _postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers. Checked once per session."""
    if "reason" not in _postgres_state:
        import asyncpg

        try:
            if POSTGRES_URL != BASE_POSTGRES_URL:
                await _create_worker_database()
            conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
            await conn.close()
            _postgres_state["reason"] = None
        except Exception as exc:
            _postgres_state["reason"] = f"PostgreSQL at {POSTGRES_URL} unavailable ({type(exc).__name__})"
    return _postgres_state["reason"]


async def _create_worker_database() -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    name = make_url(POSTGRES_URL).database
    conn = await asyncpg.connect(BASE_POSTGRES_URL, timeout=3)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            # The name is built from our own base name and xdist's worker id, never from outside text.
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def reset_postgres() -> None:
    from sandbox.harness import reset_postgres_schema

    await reset_postgres_schema(POSTGRES_URL)


async def require_postgres() -> None:
    reason = await _postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("REQUIRE_POSTGRES"):
        pytest.fail(f"{reason}; REQUIRE_POSTGRES is set, so the PostgreSQL tests must run")
    pytest.skip(f"{reason}: set TEST_POSTGRES_URL to run the PostgreSQL tests")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Every test that takes this runs on both backends."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bot.db'}"
        return
    await require_postgres()
    await reset_postgres()
    yield POSTGRES_URL


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bot.db'}"


@pytest.fixture
async def postgres_url() -> str:
    await require_postgres()
    await reset_postgres()
    return POSTGRES_URL


# This worker's SQLite database migrated to the head once, copied for every sandbox (tests/conftest.py's
# ``box``): migrating from scratch took 0.3-0.7 s a test on a slow 2-core box, a copy a millisecond.
_sqlite_template: dict[str, Path] = {}


async def _migrated_sqlite(path: Path, template_dir: Path) -> str:
    if "path" not in _sqlite_template:
        from storage.db import make_engine
        from storage.migrate import migrate

        template = template_dir / "migrated.db"
        engine = make_engine(f"sqlite:///{template}")
        await migrate(engine)
        await engine.dispose()  # the last connection closing checkpoints the WAL into the file
        _sqlite_template["path"] = template
    shutil.copyfile(_sqlite_template["path"], path)
    return f"sqlite:///{path}"


async def _emptied_postgres() -> str:
    """This worker's PostgreSQL database at the head with every table empty and every id sequence restarted:
    truncated when the schema is already at the head (0.1 s), else recreated and migrated (0.6-0.8 s)."""
    import asyncpg

    from storage.migrate import script_head

    await require_postgres()
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        at_head = await conn.fetchval(
            "SELECT to_regclass('public.alembic_version') IS NOT NULL") and await conn.fetchval(
            "SELECT version_num FROM alembic_version") == script_head()
        if at_head:
            tables = [row[0] for row in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
            names = ", ".join(f'public."{name}"' for name in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    if not at_head:
        from storage.db import make_engine
        from storage.migrate import migrate

        await reset_postgres()
        engine = make_engine(POSTGRES_URL)
        await migrate(engine)
        await engine.dispose()
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def box(request: pytest.FixtureRequest, tmp_path: Path,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sandbox]:
    """The real bot service on a fresh database (both backends, as ``db_url``), with Slack and Mautic
    stand-ins on loopback. The database is empty but already migrated: the service's own migration on
    start then finds nothing to do."""
    from sandbox.harness import sandbox
    from tests.helpers import test_tuning

    if request.param == "sqlite":
        url = await _migrated_sqlite(tmp_path / "bot.db", tmp_path_factory.getbasetemp())
    else:
        url = await _emptied_postgres()
    async with sandbox(url, tuning=test_tuning(), export_dir=tmp_path / "exports") as running:
        yield running


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The Slack stand-in alone, with the sandbox's workspace (people, channels, the DPO user group)."""
    from sandbox.harness import seed_workspace
    from sandbox.slack import FakeSlack

    async with FakeSlack() as fake:
        seed_workspace(fake)
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session for tests that talk to a stand-in directly."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def waits() -> list[float]:
    """The delays a client under test asked to sleep (its sleep is replaced, so retries are instant)."""
    return []


@pytest.fixture(autouse=True)
def _no_address_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test's log records, formatted as the bot writes them, hold no address in clear or encoded
    (issue 9). pytest captures the records anyway; formatting them costs little (lines are cut short)."""
    from tests.helpers.logs import leaked_in_logs

    yield
    # Teardown too, as far as it has gone: this fixture is set up first, so it is torn down after the
    # sandboxes, whose shutdown logs (jobs cancelled, connections closed) are thus included.
    leaks = leaked_in_logs([*caplog.get_records("setup"), *caplog.get_records("call"),
                            *caplog.get_records("teardown")])
    assert not leaks, "log lines carry an address:\n" + "\n".join(leaks)
