"""Body-size limits that answer 413 before a large body is buffered."""

from __future__ import annotations

from aiohttp import web


async def read_limited(request: web.Request, limit: int) -> bytes:
    """Read the raw body, refusing (413) one larger than ``limit`` bytes.

    aiohttp caches the bytes, so later ``request.text()``/``read()`` calls reuse them.
    """
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._read_bytes = body  # aiohttp's own cache for read()/text()/json()
    return body
