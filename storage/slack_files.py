"""Access packages uploaded to Slack (``EXPORT_DELIVERY=slack``): the file id, kept so the file can be
deleted (``files.delete``) when the package expires or its subject is erased.

The row is written *before* the bytes go up (the id comes from ``files.getUploadURLExternal``), so a
crash mid-upload still leaves the id behind for the sweep. No file name, title or content is stored.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.types import UTCDateTime


class UploadState(StrEnum):
    RESERVED = "reserved"  # id granted, upload not (yet) completed: may or may not exist in Slack
    SHARED = "shared"  # completed into the request's thread
    DELETED = "deleted"  # files.delete succeeded, or Slack says it is gone
    REFUSED = "refused"  # Slack refused the delete (cant_delete_file…): a person must remove it


class SlackUpload(SQLModel, table=True):
    __tablename__ = "slack_export_files"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="privacy_requests.id", index=True)
    file_id: str = Field(max_length=32, unique=True)
    state: str = Field(default=UploadState.RESERVED, max_length=16, index=True)
    uploaded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    error: str | None = Field(default=None, max_length=64)  # Slack's error code when it refused the delete


async def reserve(session: AsyncSession, *, request_id: int, file_id: str, now: datetime,
                  expires_at: datetime) -> None:
    session.add(SlackUpload(request_id=request_id, file_id=file_id, uploaded_at=now, expires_at=expires_at))
    await session.flush()


async def mark(session: AsyncSession, file_id: str, state: UploadState, *, at: datetime | None = None,
               error: str | None = None) -> bool:
    values: dict[str, object] = {"state": state.value, "error": error}
    if state is UploadState.DELETED:
        values["deleted_at"] = at
    result = await session.exec(  # type: ignore[call-overload]
        update(SlackUpload).where(col(SlackUpload.file_id) == file_id,
                                  col(SlackUpload.state).in_([UploadState.RESERVED, UploadState.SHARED]))
        .values(**values))
    return bool(result.rowcount)


async def expire_for_requests(session: AsyncSession, request_ids: list[int], now: datetime) -> int:
    """Erasure: make every upload of these requests due for deletion now (in the erasure's transaction,
    so the intent survives a crash before the Slack call)."""
    if not request_ids:
        return 0
    result = await session.exec(  # type: ignore[call-overload]
        update(SlackUpload).where(col(SlackUpload.request_id).in_(request_ids),
                                  col(SlackUpload.state).in_([UploadState.RESERVED, UploadState.SHARED]),
                                  col(SlackUpload.expires_at) > now)
        .values(expires_at=now))
    return int(result.rowcount or 0)


async def due(session: AsyncSession, now: datetime, *, limit: int = 200) -> list[SlackUpload]:
    """Uploads past their expiry that may still be in Slack."""
    query = (select(SlackUpload)
             .where(col(SlackUpload.expires_at) <= now,
                    col(SlackUpload.state).in_([UploadState.RESERVED, UploadState.SHARED]))
             .order_by(col(SlackUpload.id)).limit(limit))
    return list((await session.exec(query)).all())


async def for_request(session: AsyncSession, request_id: int) -> list[SlackUpload]:
    query = select(SlackUpload).where(col(SlackUpload.request_id) == request_id).order_by(col(SlackUpload.id))
    return list((await session.exec(query)).all())


async def expire_reserved(session: AsyncSession, request_id: int, now: datetime) -> int:
    """A retried upload: ids granted to an earlier attempt that never finished (a crash, Slack down
    mid-upload) become due now, so no half-made or duplicate package outlives the retry."""
    result = await session.exec(  # type: ignore[call-overload]
        update(SlackUpload).where(col(SlackUpload.request_id) == request_id,
                                  col(SlackUpload.state) == UploadState.RESERVED)
        .values(expires_at=now))
    return int(result.rowcount or 0)
