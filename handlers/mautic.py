"""``POST /mautic/webhook``: Mautic's webhook intake (built out by the webhook-intake issue)."""

from __future__ import annotations

from aiohttp import web


async def mautic_webhook(request: web.Request) -> web.Response:
    return web.json_response({"error": "not implemented yet"}, status=501)
