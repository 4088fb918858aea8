"""``GET /exports/<token>``: access-package downloads (built out by the data-subject-request issue)."""

from __future__ import annotations

from aiohttp import web


def add_export_routes(app: web.Application) -> None:
    """Routes for expiring access-package links; none until the DSAR feature lands."""
