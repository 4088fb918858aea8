"""``GET /exports/<token>``: access-package downloads through expiring, unguessable links.

The token (256 bits from ``secrets``) is never stored: the database holds its SHA-256, and the lookup
is by that hash, so neither a database reader nor response timing learns a usable token. A valid link
streams the decrypted zip chunk by chunk; after EXPORT_LINK_TTL (or once the subject was erased) the
answer is 410 Gone. Every download, and every refused one, is an audit-ledger entry.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

from aiohttp import web

from bot.requests.execution import seal_secret, token_hash
from bot.requests.sealed import SealedFileError, read_sealed
from handlers.appkeys import SERVICES
from storage import ledger
from storage import requests as store
from storage.db import unit_of_work

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_GONE = "This download link has expired. Ask the privacy team for a new copy of your data."


async def download_export(request: web.Request) -> web.StreamResponse:
    token = request.match_info.get("token", "")
    if not _TOKEN.match(token):
        raise web.HTTPNotFound(text="No such download.")
    services = request.app[SERVICES]
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        link = await store.export_link_by_hash(session, token_hash(token))
        if link is None:
            raise web.HTTPNotFound(text="No such download.")
        subject = f"request:{link.request_id}"
        earlier = link.downloads  # read before the UPDATE, which may refresh the loaded object
        valid = bool(link.path) and await store.count_download(session, link.id or 0, now)
        if not valid:
            await ledger.record(session, actor="download", action="export.download_refused", subject=subject,
                                details={"link": link.id, "why": "expired" if link.expires_at <= now else "revoked"})
        else:
            await ledger.record(session, actor="download", action="export.downloaded", subject=subject,
                                details={"link": link.id, "download": earlier + 1})
        path, request_id = Path(link.path), link.request_id
    if not valid:
        raise web.HTTPGone(text=_GONE)
    if not await asyncio.to_thread(path.exists):
        raise web.HTTPGone(text=_GONE)
    response = web.StreamResponse(headers={
        "Content-Type": "application/zip",
        "Content-Disposition": f'attachment; filename="access-request-{request_id}.zip"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    })
    response.enable_chunked_encoding()
    chunks = read_sealed(path, seal_secret(services))
    try:
        first = await anext(chunks)
    except (SealedFileError, StopAsyncIteration):
        log.error("access package of request %s cannot be decrypted", request_id)
        raise web.HTTPInternalServerError(text="The package could not be read; the privacy team was told.") from None
    await response.prepare(request)
    await response.write(first)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except SealedFileError:
        # Headers are gone; cutting the stream short makes the zip unreadable rather than silently partial.
        log.error("access package of request %s is damaged", request_id)
        raise
    await response.write_eof()
    return response


def add_export_routes(app: web.Application) -> None:
    app.router.add_get("/exports/{token}", download_export)
