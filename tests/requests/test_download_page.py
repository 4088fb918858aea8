"""The download link opens a page; only its button (a form POST) downloads. HEAD and GET consume and
record nothing, EXPORT_MAX_DOWNLOADS caps the downloads, and the ledger holds keyed hashes of who
downloaded, never the clear IP or User-Agent."""

from __future__ import annotations

import asyncio
import re

from sqlmodel import select

from sandbox.harness import ALICE, CAROL, Sandbox
from storage import requests as store
from storage.db import unit_of_work
from tests.helpers import ledger
from tests.requests.helpers import file_request, release, wait_state
from tests.requests.test_erasure import approve

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"


async def downloads(box: Sandbox) -> int:
    async with unit_of_work(box.services.sessions) as session:
        (link,) = (await session.exec(select(store.ExportLink))).all()
        return link.downloads


async def press(box: Sandbox, token: str, user_agent: str = UA) -> tuple[int, bytes]:
    async with box.http.post(f"{box.url}/exports/download", data={"token": token},
                             headers={"User-Agent": user_agent}) as response:
        return response.status, await response.read()


async def test_the_link_opens_a_page_and_only_its_button_downloads(box: Sandbox) -> None:
    box.mautic.add_contact(email="jane@example.com", firstname="Jane")
    message = await file_request(box, ALICE, "dsar jane@example.com")
    await approve(box, message)
    await wait_state(box, message, "done")
    reply = await release(box, message, CAROL)
    token = re.search(r"/exports/([A-Za-z0-9_-]+)", reply).group(1)  # type: ignore[union-attr]
    url = f"{box.url}/exports/{token}"

    # The message carrying the link was posted with unfurling off (as is every post of the bot).
    posts = box.slack.calls_to("chat.postMessage")
    carrying = [c for c in posts if token in str(c.params)]
    assert carrying and all(str(c.params.get(k)).lower() in ("false", "0") for c in posts
                            for k in ("unfurl_links", "unfurl_media"))

    # A link scanner's HEAD and an unfurler's GET: headers / the page, nothing consumed, nothing recorded.
    async with box.http.head(url) as head:
        assert head.status == 200 and head.headers["Content-Type"].startswith("text/html")
        assert await head.read() == b""
    async with box.http.get(url) as page:
        text = await page.text()
        assert page.status == 200 and "<button type=submit>Download</button>" in text
        assert "form-action 'self'" in page.headers["Content-Security-Policy"]
        assert page.headers["Cache-Control"] == "no-store" and "noindex" in page.headers["X-Robots-Tag"]
        assert "3 more download(s)" in text
    assert await downloads(box) == 0 and await ledger(box, "export.downloaded") == []

    # Bad forms: no token, a wrong one.
    async with box.http.post(f"{box.url}/exports/download", data={}) as bad:
        assert bad.status == 404
    assert (await press(box, "B" * 43))[0] == 404
    async with box.http.post(f"{box.url}/exports/download", data={"token": token, "pad": "x" * 2000}) as big:
        assert big.status == 413  # one token's worth is read, no more

    # Three downloads (EXPORT_MAX_DOWNLOADS), the last two racing for one remaining: exactly one wins.
    status, body = await press(box, token)
    assert status == 200 and body.startswith(b"PK")
    assert (await press(box, token, user_agent="curl/8.5"))[0] == 200
    results = await asyncio.gather(press(box, token), press(box, token))
    assert sorted(s for s, _ in results) == [200, 410]
    assert await downloads(box) == 3
    status, body = await press(box, token)
    assert status == 410 and b"used the maximum number of times" in body
    async with box.http.get(url) as page:
        assert page.status == 410 and "maximum number of times" in await page.text()

    done = await ledger(box, "export.downloaded")
    assert [e.details["download"] for e in done] == [1, 2, 3]
    refused = await ledger(box, "export.download_refused")
    assert [e.details["why"] for e in refused] == ["used_up", "used_up"]
    for entry in [*done, *refused]:
        assert re.fullmatch(r"[0-9a-f]{32}", entry.details["ip_hash"])
        assert re.fullmatch(r"[0-9a-f]{32}", entry.details["user_agent_hash"])
        assert "127.0.0.1" not in str(entry.details) and "Firefox" not in str(entry.details)
    assert len({e.details["ip_hash"] for e in done}) == 1  # one client, one keyed hash
    assert done[0].details["user_agent_hash"] != done[1].details["user_agent_hash"]
