"""``python -m bot setup mautic|slack|env``: one-command set-up of the peers and of a first ``.env``.

An entry point like bot.cli: it may use every layer below. ``setup env`` runs before any settings are read
(there may be none yet), so ``bot/__main__.py`` calls it directly.
"""

from __future__ import annotations

import asyncio

from bot.settings import Settings


def run_setup(settings: Settings, which: str, *, dry_run: bool = False) -> int:
    if which == "mautic":
        from bot.setup.mautic import setup_mautic

        return asyncio.run(setup_mautic(settings, dry_run=dry_run))
    if which == "slack":
        from bot.setup.slack import setup_slack

        return asyncio.run(setup_slack(settings))
    raise ValueError(f"unknown setup target {which!r}")
