"""`/privacy requests` stays within Slack's message limits however many requests are open, and the
access-package reply keeps its safety line however many contacts matched."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from bot.requests.blocks import access_prepared_reply, requests_list
from bot.requests.model import RequestKind, RequestState
from bot.requests.view import RequestInfo
from sandbox.blockkit import MAX_TEXT_LENGTH, MESSAGE_BLOCK_LIMIT, validate_message
from sandbox.harness import BOB, Sandbox
from storage import requests as store
from storage.db import unit_of_work

TODAY = date(2026, 3, 2)
FOOTER = "`/privacy status <id>` shows one request with its history."


def info(request_id: int, due_in_days: int, *, email: str = "someone.with.a.long.name@example.com") -> RequestInfo:
    due = TODAY + timedelta(days=due_in_days)
    return RequestInfo(
        id=request_id, kind=RequestKind.ERASURE, state=RequestState.FILED, regime="gdpr",
        subject_masked=email[0] + "***@" + email.split("@")[1], filed_by="U0ALICE",
        received_at=datetime(2026, 2, 1, tzinfo=UTC), due_date=due, original_due_date=due,
    )  # fmt: skip


def shown_ids(message: dict[str, object]) -> list[int]:
    return [int(n) for n in re.findall(r"\*#(\d+)\*", str(message["text"]))]


def test_a_long_list_counts_what_it_leaves_out_and_keeps_its_footer() -> None:
    infos = [info(n, n % 40 - 5) for n in range(1, 330)]

    message = requests_list(infos, today=TODAY)

    assert validate_message(message) == []
    listed = shown_ids(message)
    assert len(listed) == 100 and len(set(listed)) == 100
    # The most urgent are shown: no hidden request is due before a shown one.
    due = {i.id: i.due_date for i in infos}
    assert max(due[i] for i in listed) <= min(due[i.id] for i in infos if i.id not in listed)
    more = "…and 229 more open request(s), due later than those above."
    assert more in message["text"] and more in str(message["blocks"])
    assert message["blocks"][-1]["elements"][0]["text"] == FOOTER.replace("<", "&lt;").replace(">", "&gt;")
    assert "329 open request(s)" in message["text"]


def test_a_short_list_shows_everything_without_a_more_line() -> None:
    message = requests_list([info(1, 3), info(2, -1)], today=TODAY)

    assert shown_ids(message) == [2, 1]  # overdue first
    assert "more open request" not in message["text"]
    assert validate_message(message) == []


async def test_seven_hundred_open_requests_answer_with_valid_blocks_and_a_short_fallback(box: Sandbox) -> None:
    now = box.services.clock()
    async with unit_of_work(box.services.sessions) as session:
        for n in range(700):
            due = now.date() + timedelta(days=n % 60 - 10)
            await store.add_request(session, store.PrivacyRequest(
                kind="erasure", state="filed", regime="gdpr", subject_hash=f"{n:064x}",
                subject_masked=f"p***{n}@example-company-with-a-long-domain.com", filed_by="U0ALICE",
                channel=box.channel, received_at=now, due_date=due, original_due_date=due, updated_at=now,
            ))  # fmt: skip

    # The user agent validates the answer as Slack would (blocks, 40,000-character text) and fails otherwise.
    result = await box.command(BOB, "requests")

    answer = result.json
    assert len(answer["text"]) < MAX_TEXT_LENGTH and len(answer["blocks"]) <= MESSAGE_BLOCK_LIMIT
    assert "700 open request(s)" in answer["text"]
    assert "…and 600 more open request(s)" in answer["text"]
    shown = result.render(box.slack.names)
    assert shown.rstrip().endswith(FOOTER)  # the placeholder is shown as typed, not as a link
    assert box.slack.refused == []


def access_counts(contacts: int) -> dict[str, object]:
    return {
        "contacts": [{"id": n, "fields": 12, "dnc": 0, "segments": 1, "campaigns": 0, "companies": 0, "notes": 0,
                      "timeline": 40} for n in range(1, contacts + 1)],
        "bot_items": {"form_records": 2},
    }  # fmt: skip


def test_the_access_reply_keeps_what_the_bot_holds_whatever_the_number_of_contacts() -> None:
    for contacts in (1, 8, 9, 12, 60):
        message = access_prepared_reply(info(7, 3), counts=access_counts(contacts), notes=[], mautic_url=None)
        texts = [e["text"] for e in message["blocks"][1]["elements"]]
        assert validate_message(message) == [], contacts
        assert texts[-1] == "Held by the bot: form records: 2"
        listed = [t for t in texts if t.startswith("contact #")]
        if contacts <= 8:
            assert len(listed) == contacts
        else:
            assert len(listed) == 7 and texts[7] == f"…and {contacts - 7} more contacts, all in the package"


def test_the_clean_up_checklist_says_uncounted_not_empty_when_the_stats_api_hides_a_table() -> None:
    from types import SimpleNamespace

    from bot.requests.blocks import cleanup_checklist

    lines = [SimpleNamespace(id=i, place=place, recipient=None, state="open", decided_by=None, decided_at=None)
             for i, place in enumerate(("email_stats", "form_results"), start=1)]
    unexposed = str(cleanup_checklist(7, lines, {"email_stats": None, "form_submissions": 0})["blocks"])
    assert "does not expose the table through its stats API" in unexposed and "0 row(s)" in unexposed
    counted = str(cleanup_checklist(7, lines, {"email_stats": 3, "form_submissions": None})["blocks"])
    assert "before the delete: 3 row(s)" in counted and "check it by hand" in counted
