"""An erasure's clean-up checklist: one line per place Mautic keeps data after a contact delete, and one per
recipient the data was disclosed to (Art. 19). A line moves once, open → done or not applicable, through a
guarded UPDATE (``bot.approvals.decide``), recording who ticked it and when; the request is done when no line
is open. Lines hold no personal data: a place, a recipient's name from the policy file, who and when."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, UniqueConstraint, func, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.types import UTCDateTime


class LineState(StrEnum):
    OPEN = "open"
    DONE = "done"
    NOT_APPLICABLE = "not_applicable"


class CleanupLine(SQLModel, table=True):
    __tablename__ = "erasure_cleanup"
    __table_args__ = (UniqueConstraint("request_id", "seq", name="uq_erasure_cleanup_line"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="privacy_requests.id", index=True)
    seq: int
    place: str = Field(max_length=32)  # bot.requests.cleanup.CleanupPlace
    recipient: str | None = Field(default=None, max_length=255)  # for a "recipient" line: who, from the policy
    state: str = Field(default=LineState.OPEN, max_length=16)
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    message_ts: str | None = Field(default=None, max_length=32)  # the checklist message in the request's thread


async def add_lines(session: AsyncSession, request_id: int, lines: Sequence[tuple[str, str | None]]) -> bool:
    """Create the checklist once (a resumed job finds it there and adds nothing); True if created now."""
    if await lines_for(session, request_id):
        return False
    for seq, (place, recipient) in enumerate(lines, start=1):
        session.add(CleanupLine(request_id=request_id, seq=seq, place=place, recipient=recipient))
    await session.flush()
    return True


async def lines_for(session: AsyncSession, request_id: int) -> list[CleanupLine]:
    query = (select(CleanupLine).where(CleanupLine.request_id == request_id).order_by(col(CleanupLine.seq))
             .execution_options(populate_existing=True))
    return list((await session.exec(query)).all())


async def get_line(session: AsyncSession, line_id: int) -> CleanupLine | None:
    return await session.get(CleanupLine, line_id, populate_existing=True)


async def open_lines(session: AsyncSession, request_id: int) -> int:
    query = select(func.count()).select_from(CleanupLine).where(
        CleanupLine.request_id == request_id, CleanupLine.state == LineState.OPEN)
    return int((await session.exec(query)).one())


async def lock_request(session: AsyncSession, request_id: int) -> None:
    """Serialise ticks of one checklist (``FOR UPDATE`` on the request row; SQLite has one writer anyway): two
    approvers ticking the last two lines at once would otherwise each still see the other's line open, and
    nobody would complete the request."""
    from storage.requests import PrivacyRequest

    await session.exec(select(PrivacyRequest.id).where(PrivacyRequest.id == request_id).with_for_update())


async def set_message(session: AsyncSession, request_id: int, ts: str) -> None:
    await session.exec(update(CleanupLine).where(col(CleanupLine.request_id) == request_id)  # type: ignore[call-overload]
                       .values(message_ts=ts))
