"""What the bot's log lines would hold: records formatted by the production formatter, searched for
addresses that are not masked (clear or with an encoded ``@``)."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote

from bot.logs import JsonFormatter

# Deliberately independent of bot.privacy (a check sharing the mask's code would share its blind spots):
# decode the text the ways a reader would, then look for two local-part characters before an @ and a
# dotted domain after it. A mask (j***@example.com) has stars before its @, so it never matches. Only
# run on formatted log lines, which the formatter cuts to a bounded length.
_ADDRESS = re.compile(r"[A-Za-z0-9._%+'-]{2,}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_FORMATTER = JsonFormatter()


def unmasked_addresses(text: str) -> list[str]:
    """Addresses in ``text`` whose local part is not masked, with ``@`` written plainly or encoded
    (URL-encoded once or twice, HTML references, JSON/Python escapes)."""
    decoded = html.unescape(unquote(unquote(text))).replace("\\u0040", "@").replace("\\x40", "@")
    return _ADDRESS.findall(decoded)


def leaked_in_logs(records: Iterable[logging.LogRecord]) -> list[str]:
    """One line per formatted record that still carries an address, as the log would show it."""
    leaks = []
    for record in records:
        line = _FORMATTER.format(record)
        if unmasked_addresses(line):
            leaks.append(line[:300])
    return leaks
