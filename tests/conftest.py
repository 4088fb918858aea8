"""Shared fixtures: a database per test (SQLite file, or a fresh PostgreSQL schema), and the bot's
real service running against the Slack and Mautic stand-ins on loopback."""

from __future__ import annotations

import os
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


@pytest.fixture
async def box(db_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    """The real bot service on a fresh database, with Slack and Mautic stand-ins on loopback."""
    from sandbox.harness import sandbox
    from tests.helpers import test_tuning

    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "exports") as running:
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
