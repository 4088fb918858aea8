"""``python -m bot demo``: the real service on SQLite against the local stand-ins, a scripted scenario
driven through real signed HTTP requests, and a transcript of what the privacy channel shows."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from bot.app import Tuning
from sandbox.harness import sandbox
from sandbox.scenes import digests, foundation, intake, requests
from sandbox.scenes.base import Narrator, Scene

ALL_SCENES: list[Scene] = [*foundation.SCENES, *intake.SCENES, *requests.SCENES, *digests.SCENES]


async def run_demo(*, quiet: bool = False, scenes: list[Scene] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="privacy-bot-demo-") as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        tuning = Tuning(job_poll_interval=0.1, job_backoff_base=0.05, start_scheduler=False)
        async with sandbox(database_url, tuning=tuning, export_dir=Path(tmp) / "exports") as box:
            narrator = Narrator(box, quiet=quiet)
            narrator.title(
                "mautic-privacy-bot demo: the real service on SQLite, with local Slack and Mautic stand-ins\n"
                f"bot at {box.url}, Slack stand-in at {box.slack.base_url}, Mautic stand-in at {box.mautic.base_url}"
            )
            for scene in scenes or ALL_SCENES:
                narrator.title(scene.title)
                await scene.run(box, narrator)
                narrator.show_channel()
            narrator.title("End of demo. `make test` runs the test suite.")
    return 0
