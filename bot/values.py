"""Reading numbers out of what Mautic sends and what our own JSON columns hold.

Mautic's API and webhooks send ids and counts as ints or as digit strings ("26"), and sometimes as
nothing at all; a count or an id is never a bool, a float or a negative number.
"""

from __future__ import annotations

from typing import Any, overload


@overload
def as_int(value: Any) -> int | None: ...
@overload
def as_int(value: Any, default: int) -> int: ...
def as_int(value: Any, default: int | None = None) -> int | None:
    """``value`` as a non-negative int when it is one (an int or a string of ASCII digits), else ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value if value >= 0 else default
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text)
    return default


# The largest id the bot's integer columns hold in both databases (PostgreSQL INTEGER is 32-bit signed).
MAX_ID = 2**31 - 1


def as_id(value: Any) -> int | None:
    """An id Mautic sent, if it is one we can store: an out-of-range number (an id of 25 nines) is no id."""
    number = as_int(value)
    return number if number is not None and 0 <= number <= MAX_ID else None
