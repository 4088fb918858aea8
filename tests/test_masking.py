"""Masking runs on attacker-controlled text (unsigned bodies that Bolt logs, dead letters), so it must stay
linear in the text's length, catch encoded addresses, and never let markup through a mask."""

from __future__ import annotations

import logging
import re
import time

import pytest

from bot import privacy
from bot.logs import MESSAGE_MAX, JsonFormatter, NoRequestBodies
from bot.privacy import cut_then_redact, find_emails, mask_email, redact_emails
from sandbox.harness import Sandbox
from tests.helpers.logs import leaked_in_logs, unmasked_addresses

MIB = 1 << 20
# The pattern masking used before was tried from every position of a run of letters and read the whole
# run each time: ~10^12 steps for a 1 MiB run (issue 9). bench/mask_stall.py measures both.


class _CountingPattern:
    """Stands in for one of privacy's possessive patterns and counts the characters it reads: a
    possessive match never backtracks, so it reads its match and the one character that ended it."""

    def __init__(self, pattern: re.Pattern[str], counter: dict[str, int]) -> None:
        self.pattern, self.counter = pattern, counter

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        found = self.pattern.match(text, pos)
        self.counter["calls"] += 1
        self.counter["read"] += (found.end() - pos if found else 0) + 1
        return found


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    counter = {"calls": 0, "read": 0}
    monkeypatch.setattr(privacy, "DOMAIN", _CountingPattern(privacy.DOMAIN, counter))
    monkeypatch.setattr(privacy, "LOCAL_PART_REVERSED", _CountingPattern(privacy.LOCAL_PART_REVERSED, counter))
    return counter


@pytest.mark.parametrize("text", [
    "a" * MIB,                                    # the input: no @ at all
    "a" * MIB + "@" + "b" * MIB,                  # one @ between two long runs, no dot
    "a" * MIB + "@example.com",                   # one address with a megabyte of local part
    "a@" * (MIB // 8),                            # an @ every other character
    ("x" * 1000 + "@") * 256 + "b.c",             # long runs between many @
    "a@b." * (MIB // 16),                         # 65,536 addresses
    "%40" * (MIB // 12),                          # encoded @ signs only
], ids=["letters", "at-between-runs", "long-local", "dense-at", "runs-and-ats", "many-addresses", "encoded"])
def test_masking_reads_each_character_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    counter = _count_reads(monkeypatch)
    redact_emails(text)
    # Each pattern call starts at an @ and the two runs read from different @s never overlap: at most
    # every character twice plus the character ending each run.
    assert counter["read"] <= 2 * len(text) + 2 * counter["calls"]
    assert counter["calls"] <= 2 * (text.count("@") + text.count("%40"))


@pytest.mark.parametrize("text", [
    "jane@example.com", "jane%40example.com", "jane%2540example.com", "jane&#64;example.com",
    "jane&#x40;example.com", "jane&commat;example.com", "jane\\u0040example.com", "jane\\x40example.com",
    "email=jane%40example.com&consent=1", '{"email": "jane\\u0040example.com"}',
])
def test_encoded_addresses_are_masked(text: str) -> None:
    masked = redact_emails(text)
    assert "jane" not in masked
    assert "j***@example.com" in masked
    assert find_emails(text) == ["jane@example.com"]


def test_a_mask_carries_no_markup() -> None:
    assert mask_email("x@evil.example|<!channel>") == "x***@evil.example"
    assert mask_email("<!channel>@example.com") == "****@example.com"
    assert mask_email("jane@<https://evil.example|Download>") == "j***@?"
    for hostile in ("x@evil.example|<!channel>", "a@b.c<https://evil.example|x>", "&amp;@x.y>"):
        assert not set("<>|&") & set(mask_email(hostile))


def test_a_long_message_is_cut_before_masking_and_never_leaves_half_an_address() -> None:
    text = "x" * 90 + " jane.doe@example.com tail"
    for limit in range(95, len(text) + 2):
        cut = cut_then_redact(text, limit)
        assert not unmasked_addresses(cut), cut
        assert "doe" not in cut
    formatted = JsonFormatter().format(logging.makeLogRecord({"msg": "y" * (5 * MIB)}))
    assert len(formatted) < MESSAGE_MAX + 300
    assert "characters cut" in formatted


def test_bolt_verification_log_loses_the_body() -> None:
    body = "token=x&text=jane%40example.com&" + "a" * 1000
    record = logging.makeLogRecord({
        "name": "slack_bolt.AsyncRequestVerification", "levelno": logging.INFO, "levelname": "INFO",
        "msg": f"Invalid request signature detected (signature: v0=bad, timestamp: 1, body: {body})",
    })
    assert NoRequestBodies().filter(record)
    assert record.getMessage() == (
        "Invalid request signature detected (signature: v0=bad, timestamp: 1, (request body withheld)"
    )


async def test_an_unsigned_body_sent_to_slack_is_not_logged(
    box: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = "command=%2Fprivacy&text=dsar+jane.unsigned%40example.com&" + "q" * 100_000
    response = await box.http.post(f"{box.url}/slack/events", data=body, headers={
        # A fresh timestamp, so the body is read and its signature computed (a stale one is refused unread).
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=" + "0" * 64,
    })
    assert response.status == 401
    messages = [record.getMessage() for record in caplog.records]
    assert any("X-Slack-Signature" in m for m in messages)  # the refusal is logged, its body is not
    assert not [m for m in messages if "unsigned" in m or "qqqq" in m]
    assert not leaked_in_logs(caplog.records)


def test_the_leak_detector_sees_clear_and_encoded_addresses() -> None:
    # The suite-wide check (tests/conftest.py) is only as good as this detector, which shares no code with
    # the mask: it must see every form the mask handles, and the formatter must leave none of them.
    forms = ["jane@example.com", "jane%40example.com", "jane%2540example.com", "jane&#64;example.com",
             "jane&commat;example.com", "jane\\u0040example.com", "jane\\x40example.com"]
    for form in forms:
        assert unmasked_addresses(f"to {form} now") == ["jane@example.com"], form
    assert unmasked_addresses("to j***@example.com") == []
    records = [logging.makeLogRecord({"msg": f"to {form}"}) for form in forms]
    assert leaked_in_logs(records) == []
