"""App Home: opening the Home tab publishes a dashboard, and it follows the state as requests move."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.home.blocks import home_view
from bot.home.model import Dashboard, DigestLink, FormShare, OpenAlert, OpenRequest, Viewer
from bot.requests.ids import RequestButton
from sandbox.harness import ALICE, BOB, CAROL, Sandbox, sandbox
from tests.helpers import test_tuning
from tests.requests.helpers import click, file_request, finish_cleanup, verify_identity, wait_state

TIMEOUT = 15.0


@pytest.fixture
async def home_box(db_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "exports",
                       app_home_debounce=timedelta(milliseconds=200)) as box:
        yield box


async def open_home(box: Sandbox, user: str) -> None:
    result = await box.user.event({"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home",
                                   "event_ts": "1700000000.000100"})
    assert result.status == 200


async def home_shows(box: Sandbox, user: str, needle: str) -> str:
    tabs = box.slack.home_tabs
    await box.slack.wait_until(lambda: needle in tabs.text(user), timeout=TIMEOUT,
                               describe=f"{user}'s Home tab showing {needle!r} (shows {tabs.text(user)!r})")
    return tabs.text(user)


async def test_app_home_shows_a_filed_request_and_updates_when_it_is_approved(home_box: Sandbox) -> None:
    box = home_box
    await open_home(box, BOB.id)
    await open_home(box, ALICE.id)
    shown = await home_shows(box, BOB.id, "No open requests.")
    assert "Nothing waits for your decision." in shown  # Bob approves, so he has that section
    assert "Waiting for your decision" not in await home_shows(box, ALICE.id, "No open requests.")

    box.mautic.add_contact(email="jane@example.com")
    message = await file_request(box, ALICE, "erase jane@example.com")
    shown = await home_shows(box, BOB.id, "Erasure request")
    assert "j***@example.com" in shown and "jane@" not in shown
    assert "Waiting for identity verification" in shown and "days left" in shown
    decisions = shown.split("Open requests", 1)[0]
    assert "#1" in decisions  # an approver sees what waits for him first
    assert "Erasure request" in await home_shows(box, ALICE.id, "Erasure request")
    link = _request_link(box, BOB.id)
    assert link == f"https://acme.slack.com/archives/{message.channel}/p{message.ts.replace('.', '')}"

    # Issue 10's lifecycle: an approver who did not file verifies, another approves, and the request is
    # closed (gone from the Home tab) only once the answer is recorded as sent.
    await verify_identity(box, CAROL, message)
    await click(box, BOB, message, RequestButton.APPROVE)
    await wait_state(box, message, "cleanup", timeout=TIMEOUT)
    await finish_cleanup(box, message, BOB)  # issue 11: done once its clean-up checklist is ticked
    assert "Erasure request" in await home_shows(box, BOB.id, " · Done")  # done, still open: not answered yet
    await click(box, ALICE, message, RequestButton.RESPOND)
    shown = await home_shows(box, BOB.id, "No open requests.")
    assert "Audit ledger:" in shown
    await box.jobs_idle()
    history = box.slack.home_tabs.history[BOB.id]
    assert len(history) >= 3  # empty, with the request, and without it again
    # Re-opening without a change publishes nothing new: the view Slack holds is already this one.
    before = len(box.slack.calls_to("views.publish"))
    await open_home(box, BOB.id)
    await box.jobs_idle()
    assert len(box.slack.calls_to("views.publish")) == before


def _request_link(box: Sandbox, user: str) -> str:
    for block in box.slack.home_tabs.views[user]["blocks"]:
        text = (block.get("text") or {}).get("text", "")
        if "Erasure request" in text:
            return text.split("<", 1)[1].split("|", 1)[0]
    raise AssertionError("no request line")


def test_outside_text_is_escaped_and_approvers_do_not_decide_their_own_requests() -> None:
    today = date(2026, 12, 1)
    board = Dashboard(
        requests=(OpenRequest(7, "access", "Access request (DSAR)", "j***@example.com", "Waiting for identity "
                              "verification", "filed", today + timedelta(days=3), BOB.id, "C0PRIVACY", "1.000200"),),
        alerts=(OpenAlert(3, "consent_gap", "<!channel> & <https://evil.example|click>", datetime(2026, 11, 30,
                          tzinfo=UTC), 2, "C0PRIVACY", "1.000100"),),
        alerts_total=1,
        digests=(DigestLink("compliance", datetime(2026, 11, 30, 9, tzinfo=UTC), "C0PRIVACY", "1.000300"),),
        forms=(FormShare("News <b>letter</b>", 10, 0.8),),
        ledger_entries=42, ledger_head="ab" * 32, workspace_url="https://acme.slack.com/")
    view = home_view(board, Viewer(BOB.id, is_approver=True, is_member=True), today=today)
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    texts = "\n".join(str((b.get("text") or {}).get("text", "")) + "".join(e.get("text", "") for e in
                                                                            b.get("elements", []))
                      for b in view["blocks"])
    assert "<!channel>" not in texts and "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in texts
    assert "News &lt;b&gt;letter&lt;/b&gt;: 80% of 10 submissions" in texts
    assert "⏰ <https://acme.slack.com/archives/C0PRIVACY/p1000200|#7>" in texts  # due within 5 days
    assert "(+2 folded)" in texts and "42 entries" in texts and "`abababababababab…`" in texts
    decisions = texts.split("*Open requests*", 1)[0]
    assert "#7" not in decisions  # Bob filed it, so it is not his to decide
    assert "alert #3" in decisions
    other = home_view(board, Viewer(CAROL.id, is_approver=True, is_member=True), today=today)
    assert "#7" in str(other["blocks"][:4])
    marketer = Viewer(ALICE.id, is_approver=False, is_member=True)
    assert "Waiting for your decision" not in str(home_view(board, marketer, today=today))
