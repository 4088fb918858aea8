"""Gaps found reviewing issue 9's hardening: an option value echoed into an answer unescaped, a loopback
test fooled by a URL's fragment, SQL parameters (bodies, addresses) quoted in database errors, the Home tab
listing requests to people who may not run `/privacy requests`, a traceback for a database that is not there."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bot.errors import UserFacingError
from bot.home.blocks import MEMBERS_ONLY, home_view
from bot.home.model import Dashboard, FormShare, OpenRequest, Viewer
from bot.logs import JsonFormatter
from bot.permissions import Permissions, SlackAudience
from bot.requests.commands import parse_request
from bot.requests.model import RequestKind
from bot.settings import ConfigError, Settings, is_loopback_url, load_settings
from sandbox.harness import ALICE, MALLORY, sandbox
from storage.db import make_engine
from tests.helpers import child_env, test_tuning
from tests.helpers.slack import CountingGroups
from tests.ops.test_app_home import home_shows, open_home
from tests.requests.helpers import file_request

MARKUP = ("<!channel>", "<https://evil.example")
PASSWORD = "pg-s3cret-Pa55"
KEY = "4fafc6af54fdffd1b3868a8658cd085da6da002bfa2c6c34202cd145a1459659"


@pytest.mark.parametrize("option", ["regime=&lt;!channel&gt;", "received=&lt;https://evil.example|x&gt;",
                                    "regime=<!channel>", "received=<https://evil.example|x>"])
def test_a_bad_option_value_is_echoed_escaped(option: str) -> None:
    # Slack sends command text escaped; the parser unescapes it, so the echo must escape it again.
    with pytest.raises(UserFacingError) as refused:
        parse_request(RequestKind.ACCESS, f"jane@example.com {option}")
    message = refused.value.message
    assert "not `&lt;" in message
    assert not any(markup in message for markup in MARKUP)


@pytest.mark.parametrize("url", ["http://evil.example#@127.0.0.1", "http://evil.example?@localhost/",
                                 "http://evil.example\\@127.0.0.1", "http://127.0.0.1@evil.example"])
def test_plain_http_to_a_remote_host_dressed_as_loopback_is_refused(url: str) -> None:
    assert not is_loopback_url(url)
    for name in ("mautic_base_url", "public_url", "slack_api_url"):  # Slack's API gets the bot token
        values: dict[str, Any] = {name: url}
        with pytest.raises(ValidationError, match="must start with https://"):
            Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://[::1]:3000/", "http://user:pw@localhost"])
def test_loopback_hosts_may_use_plain_http(url: str) -> None:
    assert is_loopback_url(url)


async def test_a_failing_statement_does_not_quote_its_parameters(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with pytest.raises(SQLAlchemyError) as failed:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT * FROM no_such_table WHERE body = :body"),
                                   {"body": "jane@example.com wrote this"})
        assert "jane@example.com" not in str(failed.value)
        assert "no_such_table" in str(failed.value)
    finally:
        await engine.dispose()


async def test_the_home_tab_shows_requests_only_to_requesters_and_approvers(db_url: str, tmp_path: Path) -> None:
    # /privacy requests, status and forms are for requesters and approvers; the Home tab lists the same.
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "exports",
                       privacy_requesters=[ALICE.id], app_home_debounce=timedelta(milliseconds=200)) as box:
        await file_request(box, ALICE, "dsar jane.home@example.com")
        for user in (ALICE.id, MALLORY.id):
            await open_home(box, user)
        assert "Access request" in await home_shows(box, ALICE.id, "Access request")
        shown = await home_shows(box, MALLORY.id, "Only privacy requesters and approvers")
        assert "j***@example.com" not in shown and "Open requests" not in shown
        await box.jobs_idle()


def test_a_stranger_s_home_view_holds_no_data() -> None:
    board = Dashboard(
        requests=(OpenRequest(7, "access", "Access request (DSAR)", "j***@example.com", "Filed", "filed",
                              date(2026, 12, 4), "U0BOB", "C0PRIVACY", "1.000200"),),
        alerts=(), alerts_total=0, digests=(), forms=(FormShare("Newsletter", 10, 0.8),), ledger_entries=3,
        ledger_head="ab" * 32, workspace_url="https://acme.slack.com/")
    view = str(home_view(board, Viewer("U0MALLORY", is_approver=False, is_member=False), today=date(2026, 12, 1)))
    assert MEMBERS_ONLY in view
    assert not any(text in view for text in ("j***@example.com", "#7", "Newsletter", "abababab"))


async def test_migrate_and_verify_answer_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    url = f"postgresql://bot:{PASSWORD}@127.0.0.1:1/privacy"  # port 1: nothing listens there
    for args in (["migrate"], ["audit", "verify"]):
        env = child_env({"DATABASE_URL": url, "BOT_SECRET_KEY": KEY})
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", *args, env=env, cwd=tmp_path,
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        said = (out + err).decode()
        assert process.returncode == 1, said
        assert said.startswith("database error: ConnectionRefusedError") and said.count("\n") == 1, said
        assert PASSWORD not in said and "Traceback" not in said


def test_a_database_url_the_engine_cannot_read_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, database_url=f"postgresql://bot:{PASSWORD}@db:fivefour/privacy")
    assert "DATABASE_URL: is not a database URL" in str(refused.value) and PASSWORD not in str(refused.value)


def test_structured_log_extras_are_masked_too() -> None:
    record = logging.makeLogRecord({"msg": "delivery", "levelno": logging.INFO, "levelname": "INFO",
                                    "payload": {"email": "jane.extra@example.com", "n": 1}, "port": 3000,
                                    "note": "to jane.extra%40example.com"})
    line = json.loads(JsonFormatter().format(record))
    assert line["port"] == 3000
    assert "jane.extra" not in json.dumps(line) and "***@example.com" in line["payload"]


async def test_one_pass_over_many_viewers_reads_each_group_once_and_decisions_read_afresh() -> None:
    slack = CountingGroups({"S0DPO": ["U0CAROL"], "S0MKT": ["U0ALICE"]})
    rules = Permissions(SlackAudience(["S0DPO"], slack), SlackAudience(["S0MKT"], slack))  # type: ignore[arg-type]
    one_pass = rules.one_pass()
    for user in ("U0CAROL", "U0ALICE", "U0MALLORY", "U0DAVE"):
        await one_pass.is_approver(user)
        await one_pass.may_file(user)
    assert slack.calls == 2  # each group once for the whole pass
    assert await one_pass.is_approver("U0CAROL") and not await one_pass.may_file("U0MALLORY")
    slack.members["S0DPO"] = []
    assert not await rules.is_approver("U0CAROL") and slack.calls == 3  # the rules themselves keep nothing
