"""The one approvals policy: who may act on what, the four-eyes rule, approval lapse, and the decision
itself as a guarded transition written with its ledger entry.

Used by data-subject requests, bulk purges and consent alerts alike, so changing who may approve, the
four-eyes rule or ``APPROVAL_TTL`` is a change here and nowhere else.

- Filers: ``PRIVACY_REQUESTERS`` (users and user groups; empty means anyone in the privacy channel)
  and every approver.
- Deciders: ``PRIVACY_APPROVERS`` (users and user groups), never the person who filed the thing
  (four eyes).
- Identity verification (a data-subject request's "Identity verified") is an approver's step, never the
  filer's: whoever files a request cannot also attest who the requester is (the verifier is an approver
  who is not the filer, and records how the identity was checked).
- Lapse: an approval that has not been acted on within ``APPROVAL_TTL`` no longer counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.errors import NotPermitted
from bot.permissions import Permissions
from storage import ledger
from storage.transitions import guarded_update


def lapsed(since: datetime, now: datetime, ttl: timedelta) -> bool:
    """An approval (or a filing awaiting approval) older than ``ttl`` has lapsed."""
    return now - since > ttl


@dataclass(frozen=True)
class Approvals:
    permissions: Permissions
    ttl: timedelta

    async def require_filer(self, user_id: str, *, refusal: str) -> None:
        """Raise :class:`NotPermitted` with ``refusal`` unless the user may file."""
        if not await self.permissions.may_file(user_id):
            raise NotPermitted(refusal)

    async def require_decider(self, user_id: str, *, filed_by: str | None, doing: str, what: str) -> None:
        """Raise :class:`NotPermitted` unless the user is an approver who did not file ``what``.

        ``doing`` is the verb in the refusal ("approve", "decide"); ``what`` names the thing
        ("request #12", "this purge").
        """
        if not await self.permissions.is_approver(user_id):
            raise NotPermitted(f"Only privacy approvers may {doing} {what}.")
        if filed_by is not None and user_id == filed_by:
            raise NotPermitted(f"Four eyes: you filed {what}, so someone else must {doing} it (four eyes).")

    async def require_verifier(self, user_id: str, *, filed_by: str | None, what: str) -> None:
        """Raise :class:`NotPermitted` unless the user is an approver who did not file ``what``; the filer
        is told why first, whatever their role."""
        if filed_by is not None and user_id == filed_by:
            raise NotPermitted(f"You filed {what}, so someone else must verify the requester's identity: the "
                               "person who files a request cannot also attest who the requester is. Ask a "
                               "privacy approver to check it.")
        if not await self.permissions.is_approver(user_id):
            raise NotPermitted(f"Only privacy approvers may verify the requester's identity for {what}.")

    def lapsed(self, since: datetime, now: datetime) -> bool:
        return lapsed(since, now, self.ttl)


async def decide(
    session: AsyncSession, table: Any, row_id: int, *, from_states: Iterable[str], values: dict[str, Any],
    actor: str, action: str, subject: str, details: dict[str, Any] | None = None, at: datetime | None = None,
    extra_guard: Any = None,
) -> bool:
    """The guarded transition and its ledger entry, in the caller's transaction; False if someone else
    moved the row first (then nothing is written)."""
    if not await guarded_update(session, table, row_id, from_states=from_states, values=values,
                                extra_guard=extra_guard):
        return False
    await ledger.record(session, actor=actor, action=action, subject=subject, details=details or {}, at=at)
    return True
