"""``python -m bot setup env``: a first ``.env`` with every setting, its default, and a fresh BOT_SECRET_KEY.

The same text (with an empty key) is ``.env.example``; a test holds the two to bot/settings.py.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path, PurePath

from pydantic import SecretStr

from bot.settings import REQUIRED_FOR_SERVE, Settings

HEADER = """\
# Settings of mautic-privacy-bot (README → Configuration). Every setting is listed with its default;
# an empty value means "not set". Required for `serve`: {required}.
"""


def format_default(value: object) -> str:
    """A default as the settings parser reads it back."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, PurePath) and not value.is_absolute():
        return f"./{value}"  # as the README writes it: relative to the working directory
    return str(value)


def render_env(secret_key: str = "") -> str:
    """Every field of Settings, in declaration order, as ``NAME=default`` (BOT_SECRET_KEY=``secret_key``)."""
    lines = [HEADER.format(required=", ".join(n.upper() for n in REQUIRED_FOR_SERVE))]
    for name, field in Settings.model_fields.items():
        value = secret_key if name == "bot_secret_key" else format_default(field.get_default(call_default_factory=True))
        lines.append(f"{name.upper()}={value}")
    return "\n".join(lines) + "\n"


def run_setup_env(path: str) -> int:
    target = Path(path)
    if target.exists():
        print(f"{target} exists; not overwritten (move it away first if you mean to start over)")
        return 1
    text = render_env(secrets.token_hex(32))
    # O_EXCL: never overwrite, even if the file appeared since the check; 0600: it holds a secret.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {target}: every setting with its default and a fresh BOT_SECRET_KEY; fill in the required ones")
    return 0
