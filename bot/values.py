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
