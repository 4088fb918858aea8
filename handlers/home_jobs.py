"""App Home's job kinds: publish one viewer's dashboard, refresh everyone's."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from bot.home import service as home

if TYPE_CHECKING:
    from bot.jobs import JobRunner
    from bot.services import Services


def register(runner: JobRunner, services: Services) -> None:
    workspace = home.Workspace()
    runner.register(home.PUBLISH_KIND, functools.partial(home.publish_job, services, workspace))
    runner.register(home.REFRESH_KIND, functools.partial(home.refresh_job, services, workspace))
