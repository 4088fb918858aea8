"""The one approvals policy: who may file and decide (never the filer), lapse, and the guarded decision
written with its ledger entry, so two concurrent deciders cannot both win (on both backends)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from bot.approvals import Approvals, decide, lapsed
from bot.errors import NotPermitted
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.ledger import AuditEntry
from storage.migrate import migrate
from storage.requests import PrivacyRequest

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class StubPermissions:
    """Approvers and filers by user id (the Slack audiences are tested with the stand-in elsewhere)."""

    def __init__(self, approvers: set[str], filers: set[str]) -> None:
        self.approvers, self.filers = approvers, filers

    async def is_approver(self, user_id: str) -> bool:
        return user_id in self.approvers

    async def may_file(self, user_id: str) -> bool:
        return user_id in self.filers or user_id in self.approvers


def approvals() -> Approvals:
    return Approvals(StubPermissions({"U0BOB", "U0CAROL"}, {"U0ALICE"}), ttl=timedelta(days=7))  # type: ignore[arg-type]


async def test_deciders_are_approvers_who_did_not_file() -> None:
    policy = approvals()
    await policy.require_decider("U0BOB", filed_by="U0ALICE", doing="approve", what="request #3")
    with pytest.raises(NotPermitted, match=r"^Only privacy approvers may approve request #3\.$"):
        await policy.require_decider("U0ALICE", filed_by="U0BOB", doing="approve", what="request #3")
    four_eyes = r"^Four eyes: you filed request #3, so someone else must approve it \(four eyes\)\.$"
    with pytest.raises(NotPermitted, match=four_eyes):
        await policy.require_decider("U0BOB", filed_by="U0BOB", doing="approve", what="request #3")
    await policy.require_decider("U0BOB", filed_by=None, doing="decide", what="alert #1")


async def test_filers_are_requesters_and_approvers() -> None:
    policy = approvals()
    await policy.require_filer("U0ALICE", refusal="no")
    await policy.require_filer("U0CAROL", refusal="no")
    with pytest.raises(NotPermitted, match=r"^not on the list$"):
        await policy.require_filer("U0MALLORY", refusal="not on the list")


def test_lapse_is_strictly_after_the_ttl() -> None:
    ttl = timedelta(days=7)
    assert not lapsed(NOW - ttl, NOW, ttl)
    assert lapsed(NOW - ttl - timedelta(seconds=1), NOW, ttl)
    assert approvals().lapsed(NOW - timedelta(days=8), NOW)
    assert not approvals().lapsed(NOW - timedelta(days=1), NOW)


async def test_concurrent_decisions_one_wins_and_only_it_is_in_the_ledger(db_url: str) -> None:
    engine = make_engine(db_url)
    await migrate(engine)
    sessions = make_session_factory(engine)
    try:
        async with unit_of_work(sessions) as session:
            row = PrivacyRequest(kind="access", state="verified", regime="gdpr", subject_hash="h" * 64,
                                 subject_masked="j***@example.com", filed_by="U0ALICE", channel="C0PRIVACY",
                                 received_at=NOW, due_date=date(2026, 4, 2), original_due_date=date(2026, 4, 2),
                                 updated_at=NOW)
            session.add(row)
            await session.flush()
            request_id = row.id
        assert request_id is not None

        async def approve(actor: str) -> bool:
            async with unit_of_work(sessions) as session:
                return await decide(session, PrivacyRequest, request_id, from_states=["verified"],
                                    values={"state": "approved", "approved_by": actor}, actor=actor,
                                    action="request.approve", subject=f"request:{request_id}", at=NOW)

        results = await asyncio.gather(approve("U0BOB"), approve("U0CAROL"))
        assert sorted(results) == [False, True]
        async with unit_of_work(sessions) as session:
            stored = await session.get(PrivacyRequest, request_id)
            entries = (await session.exec(select(AuditEntry).where(AuditEntry.action == "request.approve"))).all()
        assert stored is not None and stored.state == "approved"
        assert [e.actor for e in entries] == [stored.approved_by]
        assert await approve("U0BOB") is False  # no longer in a state it can move from
    finally:
        await engine.dispose()
