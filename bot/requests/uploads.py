"""Access packages delivered into Slack (``EXPORT_DELIVERY=slack``), and their deletion.

The package is decrypted in memory and uploaded into the request's thread; it never touches the disk in
the clear. The file id Slack grants is committed before the bytes go up, so the file can always be found
again: it is deleted (``files.delete``) once ``EXPORT_LINK_TTL`` has passed, and at once when the
subject is erased (the erasure marks the uploads due in its own transaction, then calls
:func:`delete_due_uploads`). A delete Slack cannot make now (unavailable) is retried by the daily sweep;
one it refuses (``cant_delete_file``) is recorded and reported, since retrying cannot help.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bot.slack.messenger import SlackRefused, SlackUnavailable
from storage import ledger
from storage import slack_files as store
from storage.db import unit_of_work

from .sealed import read_sealed

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)
BOT = "bot"


async def deliver_by_upload(services: Services, *, request_id: int, channel: str, thread_ts: str | None,
                            path: Path, secret: str) -> str:
    """Upload the sealed package at ``path``, decrypted in memory, into the thread; its Slack file id.

    The sealed (encrypted) file is removed once the upload is shared, and kept when it fails, so that the
    release job's retry uploads the same package again (the id granted to the failed attempt is deleted
    first, below).
    """
    package = bytearray()
    async for chunk in read_sealed(path, secret):
        package += chunk
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        stale = await store.expire_reserved(session, request_id, now)
    if stale:
        await delete_due_uploads(services)

    async def remember(file_id: str) -> None:
        async with unit_of_work(services.sessions) as session:
            await store.reserve(session, request_id=request_id, file_id=file_id, now=now,
                                expires_at=now + services.settings.export_link_ttl)

    file_id = await services.messenger.upload(
        channel, thread_ts=thread_ts, content=bytes(package), filename=f"access-request-{request_id}.zip",
        title=f"Access package, request #{request_id}", before_upload=remember)
    del package
    async with unit_of_work(services.sessions) as session:
        await store.mark(session, file_id, store.UploadState.SHARED)
    await asyncio.to_thread(path.unlink, True)
    return file_id


async def delete_due_uploads(services: Services) -> dict[str, int]:
    """Delete every upload past its expiry (or made due by an erasure); counts by outcome. Never raises
    for Slack: what cannot be deleted now stays due for the next sweep."""
    counts = {"deleted": 0, "refused": 0, "postponed": 0}
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        due = await store.due(session, now)
    for upload in due:
        try:
            await services.messenger.delete_file(upload.file_id)
        except SlackRefused as exc:
            async with unit_of_work(services.sessions) as session:
                if await store.mark(session, upload.file_id, store.UploadState.REFUSED, error=exc.error[:64]):
                    await ledger.record(session, actor=BOT, action="export.slack_delete_refused",
                                        subject=f"request:{upload.request_id}",
                                        details={"file": upload.file_id, "error": exc.error[:64]}, at=now)
                    await services.messenger.post(
                        services.settings.privacy_channel or "", best_effort=True,
                        text=(f"Slack refused to delete the access package file of request #{upload.request_id} "
                              f"(`{exc.error[:64]}`). Delete it in Slack by hand."))
            counts["refused"] += 1
            continue
        except SlackUnavailable:
            counts["postponed"] += 1
            continue
        async with unit_of_work(services.sessions) as session:
            if await store.mark(session, upload.file_id, store.UploadState.DELETED, at=now):
                await ledger.record(session, actor=BOT, action="export.slack_deleted",
                                    subject=f"request:{upload.request_id}", details={"file": upload.file_id},
                                    at=now)
        counts["deleted"] += 1
    if counts["refused"]:
        log.warning("slack refused to delete %d access package file(s); remove them in Slack", counts["refused"])
    return counts
