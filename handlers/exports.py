"""Access-package downloads through expiring, unguessable links.

``GET /exports/<token>`` answers a small page with a **Download** button and nothing else: link
scanners, unfurlers and previewers (which GET or HEAD a URL, never submit a form) see that page and
consume nothing. ``HEAD`` answers the same headers without a body (aiohttp serves HEAD with the GET
handler and drops the body) and is not counted either. The button POSTs the token in the form body to
``/exports/download`` (the token is the credential, so a forged cross-site POST would need it; nothing
rides on cookies), which streams the decrypted zip chunk by chunk.

The token (256 bits from ``secrets``) is never stored: the database holds its SHA-256, and the lookup is
by that hash. A link works ``EXPORT_MAX_DOWNLOADS`` times until ``EXPORT_LINK_TTL`` has passed (410 with
a page saying why afterwards, and once the subject was erased). Every download, and every refused one,
is an audit-ledger entry carrying keyed hashes (the bot's hash key) of the client's IP and User-Agent,
never the clear values.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import re
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs

from aiohttp import web

from bot.requests.execution import seal_secret, token_hash
from bot.requests.sealed import SealedFileError, read_sealed
from handlers.appkeys import SERVICES
from storage import ledger
from storage import requests as store
from storage.db import unit_of_work

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_FORM_MAX_BYTES = 1024  # the form carries one token
_NOT_FOUND = "No such download."
_GONE = {
    "expired": "This download link has expired.",
    "revoked": "This download link is no longer valid.",
    "used_up": "This download link has been used the maximum number of times.",
}
_ASK = "Ask the privacy team for a new copy of your data."
# A page that loads nothing, runs nothing, posts only to this site, and is never framed, cached or indexed.
_PAGE_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<meta name=robots content='noindex, nofollow'><title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;"
        "line-height:1.5}button{font-size:1.1rem;padding:.6rem 1.4rem;cursor:pointer}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(status=status, text=document, content_type="text/html", charset="utf-8",
                        headers=_PAGE_HEADERS)


def _gone_page(why: str) -> web.Response:
    return _page("Download unavailable", f"<p>{html.escape(_GONE[why])} {html.escape(_ASK)}</p>", status=410)


def _client_hashes(request: web.Request, key: str) -> dict[str, str]:
    """Keyed hashes of who downloaded: enough to tell one client from another in the ledger, useless to
    anyone without the bot's key. The IP is the peer's address (behind a reverse proxy: the proxy's)."""
    def digest(kind: str, value: str) -> str:
        return hmac.new(key.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]

    return {"ip_hash": digest("ip", request.remote or ""),
            "user_agent_hash": digest("ua", request.headers.get("User-Agent", "")[:1000])}


def _why_refused(link: store.ExportLink, now: datetime, max_downloads: int) -> str | None:
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at <= now:
        return "expired"  # also after the daily sweep removed the file (path emptied)
    if not link.path:
        return "revoked"
    if link.downloads >= max_downloads:
        return "used_up"
    return None


async def export_page(request: web.Request) -> web.Response:
    """The landing page (GET and HEAD): reads the link, changes nothing, records nothing."""
    token = request.match_info.get("token", "")
    if not _TOKEN.match(token):
        return _page(_NOT_FOUND, "<p>Check that the whole link was copied.</p>", status=404)
    services = request.app[SERVICES]
    max_downloads = services.settings.export_max_downloads
    async with unit_of_work(services.sessions) as session:
        link = await store.export_link_by_hash(session, token_hash(token))
    if link is None:
        return _page(_NOT_FOUND, "<p>Check that the whole link was copied.</p>", status=404)
    why = _why_refused(link, services.clock(), max_downloads)
    if why is not None:
        return _gone_page(why)
    left = max_downloads - link.downloads
    until = link.expires_at.strftime("%d %B %Y, %H:%M UTC")
    return _page("Your personal data", (
        "<p>A copy of the personal data we hold about you is ready: a zip file with <code>summary.html</code> "
        "(readable in a browser) and <code>data.json</code> (every record, machine-readable).</p>"
        f"<form method=post action=download><input type=hidden name=token value='{html.escape(token)}'>"
        "<button type=submit>Download</button></form>"
        f"<p>The link works until {html.escape(until)}, for {left} more download(s). It is meant for you "
        "only: please do not forward it.</p>"))


async def download_export(request: web.Request) -> web.StreamResponse:
    """The button's POST: count the download (if the link still allows one) and stream the package."""
    if request.content_length is not None and request.content_length > _FORM_MAX_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=_FORM_MAX_BYTES, actual_size=request.content_length)
    # Read at most one token's worth, whatever the framing (a chunked body has no Content-Length).
    body = await request.content.read(_FORM_MAX_BYTES + 1)
    if len(body) > _FORM_MAX_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=_FORM_MAX_BYTES, actual_size=len(body))
    token = (parse_qs(body.decode("ascii", "replace")).get("token") or [""])[0]
    if not _TOKEN.match(token):
        return _page(_NOT_FOUND, "<p>Open the download link again and press the button.</p>", status=404)
    services = request.app[SERVICES]
    now = services.clock()
    max_downloads = services.settings.export_max_downloads
    who = _client_hashes(request, services.hash_key)
    async with unit_of_work(services.sessions) as session:
        link = await store.export_link_by_hash(session, token_hash(token))
        if link is None:
            return _page(_NOT_FOUND, "<p>Check that the whole link was copied.</p>", status=404)
        subject = f"request:{link.request_id}"
        earlier = link.downloads  # read before the UPDATE, which may refresh the loaded object
        why = _why_refused(link, now, max_downloads)
        if why is None and not await store.count_download(session, link.id or 0, now, max_downloads=max_downloads):
            why = "used_up"  # a concurrent download took the last one (or the link just lapsed)
        if why is not None:
            await ledger.record(session, actor="download", action="export.download_refused", subject=subject,
                                details={"link": link.id, "why": why, **who})
        else:
            await ledger.record(session, actor="download", action="export.downloaded", subject=subject,
                                details={"link": link.id, "download": earlier + 1, **who})
        path, request_id = Path(link.path), link.request_id
    if why is not None:
        return _gone_page(why)
    if not await asyncio.to_thread(path.exists):
        return _gone_page("revoked")
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
    # The fixed path first: "download" is not a token (too short for the pattern anyway).
    app.router.add_post("/exports/download", download_export)
    app.router.add_get("/exports/{token}", export_page)  # HEAD too (allow_head), served without a body
