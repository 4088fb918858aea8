"""Gaps found reviewing issue 9's hardening: an option value echoed into an answer unescaped, a loopback
test fooled by a URL's fragment, SQL parameters (bodies, addresses) quoted in database errors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bot.errors import UserFacingError
from bot.requests.commands import parse_request
from bot.requests.model import RequestKind
from bot.settings import Settings, is_loopback_url
from storage.db import make_engine

MARKUP = ("<!channel>", "<https://evil.example")


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
    for name in ("mautic_base_url", "public_url"):
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
