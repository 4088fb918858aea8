"""Structured (JSON-lines) logs that never carry personal data, secrets or request bodies."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from bot.privacy import cut_then_redact

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# Every logged text is cut to these lengths before it is masked, so no log call costs more than a
# bounded amount of work however long the text it was handed (a request body, a Mautic answer).
MESSAGE_MAX = 2000
EXTRA_MAX = 500
TRACEBACK_MAX = 8000


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            # Last line of defence: mask any address that slipped into a message.
            "msg": cut_then_redact(record.getMessage(), MESSAGE_MAX),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                # Numbers stay numbers; anything else (a dict, a list, an object) is logged as its text, cut
                # and masked like a message: an address inside a structure must not slip past the mask.
                plain = value is None or isinstance(value, bool | int | float)
                entry[key] = value if plain else cut_then_redact(value if isinstance(value, str) else str(value),
                                                                 EXTRA_MAX)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = cut_then_redact(self.formatException(record.exc_info), TRACEBACK_MAX)
        return json.dumps(entry, default=str)


class NoRequestBodies(logging.Filter):
    """Keeps request bodies out of Bolt's log lines.

    Bolt logs the whole body of a request that fails signature verification at INFO
    (``Invalid request signature detected (signature: …, timestamp: …, body: …)``, slack_bolt
    middleware/request_verification/request_verification.py ``_debug_log_error``) and the body of a request
    no listener acknowledged (slack_bolt/logger/messages.py). An unsigned body is anybody's text and a
    signed one holds personal data: each such line keeps its first words and loses the body.
    Install it on the ``slack_bolt`` logger before the AsyncApp is built: Bolt copies the filters of the
    logger it is given to the loggers of its middleware (slack_bolt/logger/__init__.py
    ``_configure_from_base_logger``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        # A body shows as "body: …" or as a dict's repr; everything from there on goes.
        cut = min((i for i in (message.find("body"), message.find("{")) if i != -1), default=-1)
        if cut != -1:
            record.msg, record.args = f"{message[:cut].rstrip(' (:')} (request body withheld)", None
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would print query strings; keep it at warnings.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Alembic narrates every plugin and revision at INFO; migrations report their own result.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    install_bolt_log_filter()


def install_bolt_log_filter() -> logging.Logger:
    """The ``slack_bolt`` logger with :class:`NoRequestBodies` installed once; hand it to AsyncApp."""
    logger = logging.getLogger("slack_bolt")
    if not any(isinstance(f, NoRequestBodies) for f in logger.filters):
        logger.addFilter(NoRequestBodies())
    return logger
