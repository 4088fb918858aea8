"""An erasure's clean-up checklist (Art. 17 and 19): after the Mautic deletes, the request waits in
"awaiting clean-up" until a privacy approver has ticked every line: each place Mautic keeps data after a
contact delete, and each recipient of the policy file (``access_summary: recipients:``) to be told of the
erasure. A line is ticked once ("Done" or "Not applicable"), recording who and when; the click that closes
the last line completes the request, in the same transaction.

Mautic keeps these after ``DELETE /api/contacts/{id}/delete`` (email stats, page hits and form submissions
with the contact reference emptied, as the bot's earlier advice text described; the audit log and webhook logs
by their own design), and no API call removes them: a person must, and says so here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot import approvals
from bot.errors import Conflict, NotPermitted
from bot.requests import blocks, notify
from bot.requests.model import Action, RequestState, transition
from storage import erasure_cleanup as lines_store
from storage import ledger
from storage import requests as store
from storage.db import unit_of_work
from storage.erasure_cleanup import CleanupLine, LineState

if TYPE_CHECKING:
    from bot.services import Services


@dataclass(frozen=True)
class Ticked:
    request_id: int
    completed: bool  # this click closed the last line: the request is done


async def tick(services: Services, line_id: int, user_id: str, state: LineState) -> Ticked:
    """Record one line as done or not applicable (an approver only); a refusal is audited, then raised with
    the sentence to show."""
    try:
        return await _tick(services, line_id, user_id, state)
    except (NotPermitted, Conflict) as exc:
        async with unit_of_work(services.sessions) as session:
            await ledger.record(session, actor=user_id, action="erasure.cleanup_refused", subject=f"cleanup:{line_id}",
                                details={"attempted": state.value, "why": exc.message[:300]})
        raise


async def _tick(services: Services, line_id: int, user_id: str, state: LineState) -> Ticked:
    await services.approvals.require_decider(user_id, filed_by=None, doing="tick", what="erasure clean-up lines")
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        line = await lines_store.get_line(session, line_id)
        if line is None:
            raise Conflict("That clean-up line does not exist.")
        await lines_store.lock_request(session, line.request_id)
        line = await lines_store.get_line(session, line_id) or line  # as it is now that we hold the lock
        if line.state != LineState.OPEN:
            raise Conflict(f"That line was already marked {_state_text(line.state)} by <@{line.decided_by}>.")
        ref = f"request:{line.request_id}"
        won = await approvals.decide(
            session, CleanupLine, line_id, from_states=[LineState.OPEN],
            values={"state": state.value, "decided_by": user_id, "decided_at": now}, actor=user_id,
            action="erasure.cleanup_ticked", subject=ref, at=now,
            details={"line": line.seq, "place": line.place, "state": state.value})
        if not won:
            raise Conflict("Someone else marked that line at the same moment.")
        completed = False
        if await lines_store.open_lines(session, line.request_id) == 0:
            row = await store.get_request(session, line.request_id)
            if row is not None and row.state == RequestState.CLEANUP:
                completed = await approvals.decide(
                    session, store.PrivacyRequest, line.request_id, from_states=[RequestState.CLEANUP.value],
                    values={"state": transition(row.state, Action.COMPLETE).value, "updated_at": now,
                            "completed_at": now},
                    actor=user_id, action=f"request.{Action.COMPLETE.value}", subject=ref, at=now,
                    details={"from": row.state, "to": RequestState.DONE.value, "kind": row.kind})
    return Ticked(line.request_id, completed)


def _state_text(state: str) -> str:
    return "done" if state == LineState.DONE else "not applicable"


async def post_checklist(services: Services, request_id: int) -> None:
    """Post the clean-up checklist in the request's thread once, or redraw it (after a tick)."""
    async with notify.checklist_lock(services, request_id):
        async with unit_of_work(services.sessions) as session:
            row = await store.get_request(session, request_id)
            lines = await lines_store.lines_for(session, request_id)
        if row is None or not lines or row.message_ts is None:
            return
        message = blocks.cleanup_checklist(request_id, lines, dict((row.result or {}).get("leftovers") or {}))
        ts = lines[0].message_ts
        if ts is None:
            # Keyed: a crash between the post and set_message below must not post a second checklist.
            posted = await services.messenger.post(row.channel, thread_ts=row.message_ts, **message,
                                                   once=f"request:{request_id}:cleanup-checklist")
            assert posted is not None  # not best effort: a job retries, so the checklist is never lost
            async with unit_of_work(services.sessions) as session:
                await lines_store.set_message(session, request_id, posted.ts)
        else:
            await services.messenger.update(row.channel, ts, **message, best_effort=True)


async def after_tick(services: Services, ticked: Ticked) -> None:
    """After the ack: redraw the checklist; when it closed the request, redraw that and say so in its thread."""
    await post_checklist(services, ticked.request_id)
    if ticked.completed:
        info = await notify.refresh_message(services, ticked.request_id, best_effort=True)
        if info is not None:
            await notify.post_in_thread(services, info, blocks.erasure_done_reply(
                info, hash_retention=services.settings.erased_hash_retention), best_effort=True)
