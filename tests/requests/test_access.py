"""Access requests end to end: filing, the approval rules, the sealed package, its expiring link."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from sqlmodel import col, select

from bot.requests.deadlines import legal_deadline
from bot.requests.ids import RequestButton
from sandbox.harness import ALICE, BOB, CAROL, MALLORY, PRIVACY_CHANNEL, Sandbox
from storage import requests as store
from storage.db import unit_of_work
from tests.helpers import ledger, text_of
from tests.requests.helpers import (
    click,
    file_request,
    load_row,
    request_id_of,
    unzip,
    verify_identity,
    wait_state,
    wait_thread,
)


async def refusal(box: Sandbox, needle: str) -> str:
    responses = await box.slack.wait_for_response(where=lambda r: needle in r.text)
    assert responses[-1].response_type == "ephemeral"
    return responses[-1].text


def channel_dump(box: Sandbox) -> str:
    out = []
    for message in box.slack.messages(PRIVACY_CHANNEL):
        out.append(text_of(message))
        out.extend(text_of(reply) for reply in box.slack.thread(PRIVACY_CHANNEL, message.ts))
    return "\n".join(out)


async def download(box: Sandbox, link_text: str) -> tuple[int, bytes, dict[str, str]]:
    """As a person does it: open the link, press the page's Download button (a form POST). A link that
    no longer works answers its 410 page at the first step."""
    path = re.search(r"/exports/[A-Za-z0-9_-]+", link_text)
    assert path is not None, link_text
    async with box.http.get(box.url + path.group(0)) as page:
        text = await page.text()
        if page.status != 200:
            return page.status, text.encode(), dict(page.headers)
    form = re.search(r"<form method=post action=(\S+)><input type=hidden name=token value='([^']+)'>", text)
    assert form is not None, text
    target = box.url + "/exports/" + form.group(1)
    async with box.http.post(target, data={"token": form.group(2)}) as response:
        return response.status, await response.read(), dict(response.headers)


async def test_access_request_from_filing_to_expired_link(box: Sandbox) -> None:
    fake = box.mautic
    fake.add_segment(3, "Newsletter")
    cid = fake.add_contact(email="jane@example.com", firstname="Jane", lastname="Doe", segments=[3],
                           dnc=[("email", 1)], tags=["vip"])
    fake.add_note(cid, "Asked about pricing")
    fake.add_campaign(cid, 8, "Onboarding")
    fake.add_company(cid, "Acme")
    fake.set_activity_generator(cid, 450)  # several pages of the timeline
    fake.add_contact(email="jane@example.com.au")  # a prefix match that must not count

    result = await box.command(BOB, "dsar Jane@Example.com ticket 4411")
    assert "Filed access request (dsar) #1 for j***@example.com" in result.text
    message = await file_request_message(box)
    shown = text_of(message)
    today = box.services.clock().date()
    for needle in ("Access request (DSAR) #1", "j***@example.com", "<@U0BOB>", "Received",
                   legal_deadline(today, "gdpr").due.isoformat(), f"1 (#{cid})", "ticket 4411"):
        assert needle in shown, needle
    await wait_thread(box, message, "Mautic contacts with exactly this email address: *1*")
    request_id = request_id_of(message)

    # Refused clicks: each gets an ephemeral explanation and an audit entry, and changes nothing.
    await click(box, CAROL, message, RequestButton.APPROVE)
    await refusal(box, "Identity has not been verified")
    # The filer may not verify (this change: before it, any filer could, their own request included).
    await click(box, BOB, message, RequestButton.VERIFY)
    await refusal(box, "You filed request #1, so someone else must verify")
    await click(box, ALICE, message, RequestButton.VERIFY)  # a requester, not an approver
    await refusal(box, "Only privacy approvers may verify")
    await verify_identity(box, CAROL, message)
    await click(box, BOB, message, RequestButton.APPROVE)
    await refusal(box, "someone else must approve it (four eyes)")
    await click(box, MALLORY, message, RequestButton.APPROVE)
    await refusal(box, "Only privacy approvers")
    refused = await ledger(box, "request.refused")
    assert [e.details["attempted"] for e in refused][:5] == ["approve", "verify", "verify", "approve", "approve"]
    assert {e.actor for e in refused} == {CAROL.id, BOB.id, ALICE.id, MALLORY.id}
    assert (await load_row(box, request_id)).state == "verified"  # type: ignore[union-attr]

    await click(box, CAROL, message, RequestButton.APPROVE)  # CAROL approves through the S0DPO user group
    row = await wait_state(box, message, "done")
    assert row.approved_by == CAROL.id and row.verified_by == CAROL.id
    assert row.subject_email is None  # the clear address was needed only until the package was built
    assert "Approved by <@U0CAROL>" in text_of(message) and "Identity verified by <@U0CAROL>" in text_of(message)
    assert "(Reply from the address on record)" in text_of(message)
    prepared = await wait_thread(box, message, "Access package for request #1 is prepared")
    assert "450 timeline events" in prepared and "1 staff note(s) are listed for review" in prepared
    async with unit_of_work(box.services.sessions) as session:  # nothing goes out before the release
        assert (await session.exec(select(store.ExportLink))).all() == []
    # Release: an approver who did not file it; the filer and a requester are refused.
    await click(box, BOB, message, RequestButton.RELEASE)
    await refusal(box, "you filed request #1, so someone else must release it")
    await click(box, ALICE, message, RequestButton.RELEASE)
    await refusal(box, "Only privacy approvers may release")
    # The prepared reply keeps its button: a double (triple) click on it releases once.
    prepared_reply = next(m for m in box.slack.thread(PRIVACY_CHANNEL, message.ts) if "is prepared" in text_of(m))
    clicks = await asyncio.gather(*(box.user.click(CAROL.id, prepared_reply, RequestButton.RELEASE)
                                    for _ in range(3)))
    assert all(c.status == 200 for c in clicks)
    reply = await wait_thread(box, message, "released by <@U0CAROL>")
    await refusal(box, "was already released")
    assert [e.actor for e in await ledger(box, "request.release")] == [CAROL.id]
    await box.jobs_idle()
    assert sum("released by" in t for t in map(text_of, box.slack.thread(PRIVACY_CHANNEL, message.ts))) == 1

    # At rest the package is sealed: no zip header, no address in the clear.
    async with unit_of_work(box.services.sessions) as session:
        link = (await session.exec(select(store.ExportLink))).one()
    sealed = Path(link.path).read_bytes()  # noqa: ASYNC240 - a test reading a small local file
    assert not sealed.startswith(b"PK") and b"jane@example.com" not in sealed and b"Jane" not in sealed

    status, body, headers = await download(box, reply)
    assert status == 200 and headers["Content-Type"] == "application/zip" and headers["Cache-Control"] == "no-store"
    archive = unzip(body)
    data = __import__("json").loads(archive.read("data.json"))
    (contact,) = data["mautic"]["contacts"]
    assert contact["id"] == cid and contact["profile"]["fields"]["all"]["firstname"] == "Jane"
    assert contact["profile"]["fields"]["core"]["email"]["value"] == "jane@example.com"  # groups, not only `all`
    assert [s["name"] for s in contact["segments"]] == ["Newsletter"]
    assert [c["name"] for c in contact["campaigns"]] == ["Onboarding"]
    assert contact["companies"][0]["companyname"] == "Acme" and "notes" not in contact
    assert [n["type"] for n in contact["notes_for_review"]] == ["general"]  # listed, its text withheld
    assert "Asked about pricing" not in archive.read("data.json").decode()
    assert contact["do_not_contact"][0]["reason"] == 1
    assert contact["timeline_total"] == 450 and len({e["eventId"] for e in contact["timeline"]}) == 450
    assert data["subject"] == {"email": "jane@example.com"}
    assert [r["id"] for r in data["bot"]["requests"]] == [request_id]
    assert "consent_records" in data["bot"]  # what the intake feature holds about the subject
    summary = archive.read("summary.html").decode()
    for needle in ("Why we process it", "Categories of data", "Who receives it", "How long we keep it",
                   "Where it came from", "Your rights", "450", "Newsletter", "Onboarding", "Acme",
                   "What this package cannot contain", "request.filed"):
        assert needle in summary, needle
    assert [e["action"] for e in data["bot"]["ledger_entries"]][:2] == ["request.filed", "request.contacts_found"]
    assert {e["actor"] for e in data["bot"]["ledger_entries"]} <= {"a member of our staff", "bot"}
    refused = [e for e in data["bot"]["ledger_entries"] if e["action"] == "request.refused"]
    assert refused and "U0" not in __import__("json").dumps(data["bot"]["ledger_entries"])  # no staff ids
    assert [e.details["download"] for e in await ledger(box, "export.downloaded")] == [1]

    # After EXPORT_LINK_TTL the link answers 410 Gone, and the refused download is audited too.
    async with unit_of_work(box.services.sessions) as session:
        await session.exec(update(store.ExportLink).values(  # type: ignore[call-overload]
            expires_at=box.services.clock() - timedelta(seconds=1)))
    status, body, _ = await download(box, reply)
    assert status == 410 and b"expired" in body
    assert await ledger(box, "export.download_refused") == []  # opening the link records nothing
    # A page opened before the expiry, its button pressed after: refused, and that is audited.
    token = re.search(r"/exports/([A-Za-z0-9_-]+)", reply).group(1)  # type: ignore[union-attr]
    async with box.http.post(f"{box.url}/exports/download", data={"token": token}) as response:
        assert response.status == 410 and "expired" in await response.text()
    assert [e.details["why"] for e in await ledger(box, "export.download_refused")] == ["expired"]
    async with box.http.get(f"{box.url}/exports/{'A' * 43}") as response:
        assert response.status == 404

    # Personal data never reached the channel unmasked.
    assert "jane@example.com" not in channel_dump(box)
    # Only the exact match was gathered: the prefix-matching contact's timeline was never read.
    assert {c.path for c in fake.calls if c.path.endswith("/activity")} == {f"/api/contacts/{cid}/activity"}


async def file_request_message(box: Sandbox):  # type: ignore[no-untyped-def]
    await box.slack.wait_until(lambda: bool(box.slack.messages(PRIVACY_CHANNEL)), describe="the request message")
    message = box.slack.messages(PRIVACY_CHANNEL)[-1]
    await box.slack.wait_until(lambda: "looking up" not in text_of(message), describe="the contact lookup")
    return message


async def test_no_contact_found_is_stated_and_the_package_still_comes(box: Sandbox) -> None:
    message = await file_request(box, ALICE, "dsar nobody@example.com")
    assert "none found" in text_of(message)
    await wait_thread(box, message, "No Mautic contact has exactly this email address")
    await verify_identity(box, CAROL, message)
    await click(box, BOB, message, RequestButton.APPROVE)
    await wait_state(box, message, "done")
    await wait_thread(box, message, "is prepared")
    await click(box, CAROL, message, RequestButton.RELEASE)
    reply = await wait_thread(box, message, "released by")
    status, body, _ = await download(box, reply)
    assert status == 200
    data = __import__("json").loads(unzip(body).read("data.json"))
    assert data["mautic"]["contacts"] == []
    assert "no contact record" in unzip(body).read("summary.html").decode()


async def test_bad_input_answers_with_the_right_form_and_files_nothing(box: Sandbox) -> None:
    cases = {
        "dsar": "The subject's email address is missing",
        "erase jane@example": "is not a valid email address",
        "rectify jane@example.com shoe_size=44": "`shoe_size` is not a field I can correct",
        "rectify jane@example.com": "Say which fields to correct",
    }
    for text, needle in cases.items():
        result = await box.command(ALICE, text)
        assert result.status == 200 and needle in result.text, result.text
        assert "Use `/privacy" in result.text
    result = await box.command(ALICE, "status 99")
    assert "There is no request #99" in result.text
    async with unit_of_work(box.services.sessions) as session:
        assert (await session.exec(select(store.PrivacyRequest))).all() == []
    assert box.slack.messages(PRIVACY_CHANNEL) == []
    result = await box.command(ALICE, "dsar jane@example.com", channel="C0RANDOM")
    assert "works only in" in result.text


async def test_requesters_list_limits_who_may_file(tmp_path: Path, sqlite_url: str) -> None:
    from sandbox.harness import sandbox
    from tests.helpers import test_tuning

    async with sandbox(sqlite_url, tuning=test_tuning(), export_dir=tmp_path / "x",
                       privacy_requesters=[ALICE.id]) as box:
        result = await box.command(MALLORY, "dsar jane@example.com")
        assert "Only privacy requesters and approvers may file" in result.text
        async with unit_of_work(box.services.sessions) as session:
            assert (await session.exec(select(store.PrivacyRequest).where(
                col(store.PrivacyRequest.filed_by) == MALLORY.id))).all() == []
