"""App Home: remember who opened the Home tab, publish their dashboard, and republish everyone's when
something changes, debounced through durable jobs.

- ``app_home_opened`` → ``opened``: the viewer is remembered and a ``home.publish`` job is queued (one per
  viewer per debounce window, so reopening the tab does not publish again and again).
- A change (the bot posted or edited a channel message) → ``HomeRefresher`` → one ``home.refresh`` job per
  window, due at the window's end, so a burst of changes costs one refresh. It republishes only views
  whose content changed, which keeps ``views.publish`` (Web API tier 4, 100+ a minute) well within its
  rate limit; the messenger's one failure policy handles a 429 all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.clock import local_day
from bot.home.blocks import home_view
from bot.home.model import Dashboard, Viewer
from bot.home.read import read_dashboard
from storage import home as store
from storage import jobs as queue
from storage.db import unit_of_work

if TYPE_CHECKING:
    from bot.jobs import JobRun
    from bot.permissions import Permissions
    from bot.services import Services

log = logging.getLogger(__name__)

PUBLISH_KIND = "home.publish"
REFRESH_KIND = "home.refresh"
CHANGES = frozenset({"chat.postMessage", "chat.update"})  # Slack calls that mean the state moved


def _window(now: datetime, length: timedelta) -> tuple[int, datetime]:
    """The debounce window ``now`` falls in: its number and its end."""
    seconds = max(length.total_seconds(), 0.001)
    index = int(now.timestamp() // seconds)
    return index, datetime.fromtimestamp((index + 1) * seconds, tz=UTC)


async def opened(services: Services, user_id: str) -> None:
    now = services.clock()
    index, _end = _window(now, services.settings.app_home_debounce)
    async with unit_of_work(services.sessions) as session:
        await store.remember_viewer(session, user_id, now)
        await queue.enqueue(session, PUBLISH_KIND, {"user": user_id}, dedupe_key=f"{PUBLISH_KIND}:{user_id}:{index}",
                            max_attempts=3)
    services.jobs.notify()


async def request_refresh(services: Services) -> bool:
    """Queue the refresh of the current window (a no-op when it is queued already or nobody looks)."""
    index, end = _window(services.clock(), services.settings.app_home_debounce)
    async with unit_of_work(services.sessions) as session:
        if not await store.viewers(session):
            return False
        job = await queue.enqueue(session, REFRESH_KIND, {}, dedupe_key=f"{REFRESH_KIND}:{index}", run_after=end,
                                  max_attempts=3)
    return job is not None


class Workspace:
    """The workspace's base URL (auth.test), asked once per process, for links to channel messages."""

    def __init__(self) -> None:
        self._url: str | None = None

    async def url(self, services: Services) -> str:
        if self._url is None:
            response = await services.messenger.call("auth.test")
            self._url = str(response.get("url") or "") if response is not None else ""
        return self._url


async def publish(services: Services, workspace: Workspace, user_id: str, board: Dashboard | None = None,
                  permissions: Permissions | None = None) -> bool:
    """Publish ``user_id``'s dashboard unless Slack already shows exactly this view; True when published.
    ``permissions``: the rules of a pass over every viewer (Permissions.one_pass), else read afresh."""
    board = board or await read_dashboard(services, await workspace.url(services))
    rules = permissions or services.permissions
    is_approver = await rules.is_approver(user_id)
    # Membership is read on every publish, as for every decision: someone removed loses the data at the next one.
    viewer = Viewer(user_id, is_approver, is_member=is_approver or await rules.may_file(user_id))
    view = home_view(board, viewer, today=local_day(services.clock(), services.settings.deadline_timezone))
    digest = hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()
    async with unit_of_work(services.sessions) as session:
        if await store.published_digest(session, user_id) == digest:
            return False
    await services.messenger.call("views.publish", user_id=user_id, view=view)
    async with unit_of_work(services.sessions) as session:
        await store.mark_published(session, user_id, digest, services.clock())
    return True


async def publish_job(services: Services, workspace: Workspace, run: JobRun) -> None:
    await publish(services, workspace, str(run.payload["user"]))


async def refresh_job(services: Services, workspace: Workspace, run: JobRun) -> None:
    async with unit_of_work(services.sessions) as session:
        users = [v.user_id for v in await store.viewers(session)]
    board = await read_dashboard(services, await workspace.url(services))  # read once for everyone
    permissions = services.permissions.one_pass()  # and the user groups once for everyone
    for user_id in users:
        await publish(services, workspace, user_id, board, permissions)


class HomeRefresher:
    """Hears of changes from the messenger (synchronously) and queues a refresh from its own task."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._changed = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._window_done: int | None = None  # the window already queued (or found nobody looking) here

    def on_slack_call(self, method: str, outcome: str) -> None:
        if outcome == "ok" and method in CHANGES:
            self._changed.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="app-home-refresher")

    async def stop(self) -> None:
        # Let an enqueue in flight finish rather than cancel it inside a unit of work.
        self._stopping = True
        self._changed.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while not self._stopping:
            await self._changed.wait()
            self._changed.clear()
            if self._stopping:
                return
            # One database visit per window and process: later changes in it are covered by that refresh.
            index, _end = _window(self.services.clock(), self.services.settings.app_home_debounce)
            if index == self._window_done:
                continue
            self._window_done = index
            try:
                if await request_refresh(self.services):
                    self.services.jobs.notify()
            except Exception:
                log.exception("app home: could not queue a refresh")
