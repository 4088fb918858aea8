"""One reader for the ids and counts Mautic and our JSON columns hold."""

from __future__ import annotations

import pytest

from bot.values import as_int


@pytest.mark.parametrize(("value", "expected"), [
    (26, 26), ("26", 26), (" 7 ", 7), (0, 0), ("0", 0),
    (True, None), (False, None), (-3, None), ("-3", None), ("2.5", None), (2.5, None), ("", None), (None, None),
    ("١٢", None), ("12abc", None), ([1], None),
])
def test_as_int_reads_only_non_negative_whole_numbers(value: object, expected: int | None) -> None:
    assert as_int(value) == expected


def test_as_int_default_replaces_what_is_not_a_number() -> None:
    assert as_int(None, 0) == 0
    assert as_int("x", 5) == 5
    assert as_int("8", 0) == 8
