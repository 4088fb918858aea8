"""Keeping Slack in step with a request: its one channel message and replies in its thread.

Every call goes through ``services.messenger`` and its one failure policy. A job lets a Slack failure
raise (the job runner tries again later); a step that follows a committed decision passes
``best_effort=True``, so Slack being briefly down cannot undo or repeat what was decided.
"""

from __future__ import annotations

import contextlib
import time
from datetime import date
from typing import TYPE_CHECKING, Any

from bot.requests.blocks import decision_reply, progress_reply, request_message
from bot.requests.deadlines import received_on
from bot.requests.model import Action
from bot.requests.view import RequestInfo, info_from_row
from storage import requests as store
from storage.db import unit_of_work

if TYPE_CHECKING:
    from bot.services import Services


def _today(services: Services) -> date:
    """Today where the controller counts its days (DEADLINE_TIMEZONE)."""
    return received_on(services.clock(), services.settings.deadline_timezone)


def _lock(services: Services, request_id: int) -> contextlib.AbstractAsyncContextManager[None]:
    # Two updates of one message in flight could land out of order; one at a time per request.
    return services.messenger.one_at_a_time(f"request:{request_id}")


def checklist_lock(services: Services, request_id: int) -> contextlib.AbstractAsyncContextManager[None]:
    """One post or redraw of an erasure's clean-up checklist at a time (two ticks land in order)."""
    return services.messenger.one_at_a_time(f"request:{request_id}:checklist")


async def ensure_posted(services: Services, request_id: int) -> RequestInfo | None:
    """Post the request message once; later calls only return the request."""
    async with _lock(services, request_id):
        async with unit_of_work(services.sessions) as session:
            row = await store.get_request(session, request_id)
            if row is None:
                return None
            info = info_from_row(row)
        if info.message_ts is not None:
            return info
        posted = await services.messenger.post(info.channel, **request_message(info, today=_today(services)),
                                               once=f"request:{request_id}")
        assert posted is not None  # not best effort: a failure raises
        async with unit_of_work(services.sessions) as session:
            await store.set_fields(session, request_id, {"message_ts": posted.ts})
            row = await store.get_request(session, request_id)
            assert row is not None
            return info_from_row(row)


async def refresh_message(services: Services, request_id: int, *, best_effort: bool = False) -> RequestInfo | None:
    """Redraw the request message from the database (the state, who decided and when).

    The request as now shown; None when it has no message yet, or (best effort) Slack did not take the edit.
    """
    async with _lock(services, request_id):
        async with unit_of_work(services.sessions) as session:
            row = await store.get_request(session, request_id)
            info = info_from_row(row) if row is not None else None
        if info is None or info.message_ts is None:
            return info
        message = request_message(info, today=_today(services))
        if not await services.messenger.update(info.channel, info.message_ts, **message, best_effort=best_effort):
            return None
        return info


async def post_in_thread(services: Services, info: RequestInfo, message: dict[str, Any], *,
                         best_effort: bool = False, once: str | None = None) -> str | None:
    """A reply under the request message; its ts, or None when there is no message (or, best effort, no reply).
    ``once``: posted at most once for this key, across retries and crashes (the messenger's keyed post)."""
    if info.message_ts is None:
        return None
    posted = await services.messenger.post(info.channel, thread_ts=info.message_ts, **message,
                                           best_effort=best_effort, once=once)
    return posted.ts if posted is not None else None


async def show_decision(services: Services, info: RequestInfo, action: Action, actor: str,
                        reason: str | None = None) -> None:
    """After a committed human decision: redraw the message and say in its thread who decided what."""
    shown = await refresh_message(services, info.id, best_effort=True) or info
    ts = await post_in_thread(services, shown, decision_reply(shown, action.value, actor, reason=reason,
                                                               timezone=services.settings.deadline_timezone),
                              best_effort=True)
    if ts and (reason or (action is Action.VERIFY and shown.verification_note)):
        # The reply quotes what someone typed: remember it, so an erasure of this person redacts it too.
        async with unit_of_work(services.sessions) as session:
            row = await store.get_request(session, info.id)
            if row is not None:
                await store.set_fields(session, info.id, {"pii_messages": [*(row.pii_messages or []), ts]})


class ProgressReply:
    """One thread reply that a long job edits as it goes, at most every ``interval`` seconds.

    Progress is a courtesy: a reply Slack did not take never stops the job."""

    def __init__(self, services: Services, info: RequestInfo, *, interval: float = 3.0) -> None:
        self.services, self.info, self.interval = services, info, interval
        self.ts: str | None = None
        self._last = 0.0

    async def __call__(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        message = progress_reply(text)
        if self.ts is None:
            self.ts = await post_in_thread(self.services, self.info, message, best_effort=True)
        else:
            await self.services.messenger.update(self.info.channel, self.ts, **message, best_effort=True)
