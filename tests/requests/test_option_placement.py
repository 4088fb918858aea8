"""Issue 10 item 1: `received=` and `regime=` come right after the address. Typed after the note they were
kept in it unseen, so the clock started today instead of on the day of receipt; they are refused instead,
with the right form, and nothing is filed."""

from __future__ import annotations

from datetime import date

import pytest

from bot.errors import BadCommand
from bot.requests.commands import parse_request
from bot.requests.model import RequestKind

TODAY = date(2026, 3, 10)


@pytest.mark.parametrize(("kind", "args"), [
    (RequestKind.ACCESS, "jane@example.com ticket 4411 received=2026-03-02"),
    (RequestKind.ERASURE, "jane@example.com received=2026-03-02 by phone regime=ccpa"),
    (RequestKind.OPT_OUT, "jane@example.com web form Received=2026-03-02"),
    (RequestKind.RECTIFICATION, "jane@example.com city=Berlin received=2026-03-02"),
])
def test_an_option_after_the_note_or_fields_is_refused_with_the_right_form(kind: RequestKind, args: str) -> None:
    with pytest.raises(BadCommand) as refused:
        parse_request(kind, args, today=TODAY)
    assert "=` goes right after the email address" in str(refused.value)
    assert "Use `/privacy " in str(refused.value)


def test_options_in_front_and_words_without_equals_still_parse() -> None:
    parsed = parse_request(RequestKind.ACCESS, "jane@example.com received=2026-03-02 regime=ccpa the received form",
                           today=TODAY)
    assert (parsed.received, parsed.regime, parsed.note) == (date(2026, 3, 2), "ccpa", "the received form")
    fixed = parse_request(RequestKind.RECTIFICATION, "jane@example.com received=2026-03-02 city=Berlin", today=TODAY)
    assert fixed.received == date(2026, 3, 2) and fixed.changes == {"city": "Berlin"}
