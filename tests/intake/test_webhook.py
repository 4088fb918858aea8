"""The real endpoint with signed, real-shaped Mautic deliveries: what is stored, what the channel shows."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import select

from bot.intake import split as split_module
from bot.intake import writer as writer_module
from bot.intake.ids import IntakeJob
from bot.intake.split import split_all_pending, split_deliveries
from bot.privacy import subject_hash
from handlers.appkeys import INTAKE_WRITER
from sandbox.harness import Sandbox, sandbox
from sandbox.mautic import encode_like_php, form_submission_event, merge_payloads, sign_webhook
from storage import intake as store
from storage.db import unit_of_work
from storage.intake import InboxState
from storage.jobs import Job, JobState
from storage.types import utcnow
from tests.helpers import ledger_entries, mautic_fixture, test_tuning
from tests.intake.helpers import alerts, deliveries, inbox, processed, records

TS = "2024-10-24T15:54:35+00:00"


def gap(contact_id: int, email: str, *, form_id: int = 4, form_name: str = "Newsletter", sub: int = 13,
        results: dict[str, object] | None = None) -> dict[str, list[dict[str, object]]]:
    return form_submission_event(contact_id=contact_id, email=email, results=results or {"email": email},
                                 form_id=form_id, form_name=form_name, submission_id=sub, timestamp=TS)


def consented(contact_id: int, email: str, **kw: object) -> dict[str, list[dict[str, object]]]:
    return gap(contact_id, email, results={"email": email, "consent": "1"}, **kw)  # type: ignore[arg-type]


async def test_bad_signatures_get_401_and_nothing_is_stored(box: Sandbox) -> None:
    body = encode_like_php(gap(1, "a@example.com"))
    url = f"{box.url}/mautic/webhook"
    headers = {"Content-Type": "application/json"}
    for signature in (None, "", sign_webhook(body, "wrong-secret"), sign_webhook(body + b" ", "x")):
        sent = dict(headers, **({"Webhook-Signature": signature} if signature is not None else {}))
        async with box.http.post(url, data=body, headers=sent) as response:
            assert response.status == 401
    assert await deliveries(box) == [] and await inbox(box) == []
    status, _ = await box.webhook(body + b" ")  # signed over exactly the bytes sent, whitespace included
    assert status == 200
    secret = box.settings.mautic_webhook_secret.get_secret_value()  # type: ignore[union-attr]
    tampered = {**headers, "Webhook-Signature": sign_webhook(body, secret)}
    async with box.http.post(url, data=body.replace(b"a@example", b"b@example"), headers=tampered) as response:
        assert response.status == 401
    await processed(box)
    assert len(await inbox(box)) == 1  # only the validly signed delivery


async def test_oversized_body_gets_413_and_nothing_is_stored(db_url: str, tmp_path: Path) -> None:
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path, webhook_max_bytes=4096) as box:
        big = gap(1, "a@example.com", results={"email": "a@example.com", "comment": "x" * 5000})
        status, _ = await box.webhook(big)
        assert status == 413
        assert await deliveries(box) == [] and await inbox(box) == []
        status, _ = await box.webhook(gap(1, "a@example.com"))
        assert status == 200


async def test_one_alert_per_gap_none_for_consent_none_twice_for_redelivery(box: Sandbox) -> None:
    batch = merge_payloads(
        gap(1, "jane@example.com"),
        *[consented(10 + n, f"c{n}@example.com", sub=100 + n) for n in range(8)],
        gap(2, "joe@example.org", form_id=9, form_name="Webinar", sub=200),
    )
    assert sum(len(v) for v in batch.values()) == 10
    status, text = await box.webhook(batch)
    assert status == 200
    first = json.loads(text)
    assert first["ok"] is True and set(first) == {"ok", "delivery"}
    posts = await box.slack.wait_for("chat.postMessage", 2)
    await box.jobs_idle()
    # Redelivery of the same body (Mautic is at-least-once): a second delivery, its events processed once.
    status, text = await box.webhook(batch)
    assert status == 200 and json.loads(text)["delivery"] != first["delivery"]
    await box.jobs_idle()
    assert len(await inbox(box)) == 10 and await deliveries(box) == []
    assert len(box.slack.calls_to("chat.postMessage")) == 2
    texts = sorted(p.params["text"] for p in posts)
    assert texts == ["Consent gap: form Newsletter: j***@example.com", "Consent gap: form Webinar: j***@example.org"]
    blocks = json.dumps([p.params["blocks"] for p in posts])
    assert "jane@example.com" not in blocks and "j***@example.com" in blocks
    assert f"{box.mautic.base_url}/s/contacts/view/1" in blocks
    assert "`consent`" in blocks  # what was missing
    assert len(await records(box)) == 10
    assert [e.state for e in await inbox(box)] == [InboxState.DONE] * 10
    # Processed rows keep no personal data.
    assert all("@" not in json.dumps(e.payload) for e in await inbox(box))
    gaps = [e for e in await ledger_entries(box) if e.action == "consent.gap_detected"]
    assert len(gaps) == 2 and all("@" not in json.dumps(e.details) + str(e.subject) for e in gaps)


async def test_reconstructed_body_with_its_signature_records_consent(box: Sandbox) -> None:
    body = mautic_fixture("reconstructed_form_on_submit.body")
    status, _ = await box.webhook(body)
    assert status == 200
    await box.jobs_idle()
    (record,) = await records(box)
    assert record.given and record.email == "jörg@example.com" and record.values == {"consent": "Yes"}
    assert record.subject_hash == subject_hash(box.services.hash_key, "jörg@example.com")
    assert record.source_ip is None  # the policy does not allow keeping it
    assert box.slack.calls_to("chat.postMessage") == []


async def test_send_test_payload_shape_and_unknown_types(box: Sandbox) -> None:
    body = {
        "mautic.form_on_submit": json.loads(mautic_fixture("form_on_submit.json")),
        "mautic.lead_post_delete": json.loads(mautic_fixture("lead_post_delete.json")),
        "mautic.page_on_hit": json.loads(mautic_fixture("page_on_hit.json")),
        "plugin.something_new": [{"foo": "bar"}],
        "timestamp": "2024-10-24T17:54:35+02:00",
    }
    status, _ = await box.webhook(body)
    assert status == 200
    (post,) = await box.slack.wait_for("chat.postMessage")
    assert "e***@formsubmit.com" in post.params["text"]  # the sample form has no consent field
    await box.jobs_idle()
    events = await inbox(box)
    assert {e.event_type for e in events} >= {"mautic.form_on_submit", "mautic.lead_post_delete",
                                              "mautic.page_on_hit", "plugin.something_new"}
    unknown = next(e for e in events if e.event_type == "plugin.something_new")
    assert unknown.state == InboxState.DONE and unknown.payload == {"foo": "bar"}  # stored, ignored
    deletes = [e for e in await ledger_entries(box) if e.action == "mautic.contact_deleted"]
    assert deletes and all(str(e.subject).startswith("contact:") for e in deletes)
    assert "not an erasure" in deletes[0].details["meaning"]


async def test_inbox_resumes_after_restart(box: Sandbox) -> None:
    await box.services.jobs.stop()  # a crash right after the commit: nothing splits or processes
    status, _ = await box.webhook(gap(5, "late@example.com"))
    assert status == 200
    # Split but not processed (a crash between the two steps) ...
    assert await split_deliveries(box.services) == (1, False)
    assert [e.state for e in await inbox(box)] == [InboxState.PENDING] and await deliveries(box) == []
    # ... and committed but not split: only the raw body is stored.
    status, _ = await box.webhook(gap(6, "later@example.com", form_id=9, form_name="Webinar", sub=14))
    assert status == 200
    (delivery,) = await deliveries(box)
    assert b"later@example.com" in delivery.body and len(await inbox(box)) == 1
    assert box.slack.calls_to("chat.postMessage") == []
    await box.restart_bot()
    posts = await box.slack.wait_for("chat.postMessage", 2)
    assert sorted(p.params["text"] for p in posts) == ["Consent gap: form Newsletter: l***@example.com",
                                                       "Consent gap: form Webinar: l***@example.com"]
    await box.jobs_idle()
    assert [e.state for e in await inbox(box)] == [InboxState.DONE] * 2 and await deliveries(box) == []
    assert len(await alerts(box)) == 2 and len(await records(box)) == 2
    assert len(box.slack.calls_to("chat.postMessage")) == 2  # each split and processed once


async def test_same_delivery_twice_before_the_split_gives_one_set_of_events(
        box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []
    parse = split_module.events.inbox_rows

    def counting_parse(raw: bytes, *args: Any) -> list[dict[str, Any]]:
        parsed.append(raw)
        return parse(raw, *args)

    monkeypatch.setattr(split_module.events, "inbox_rows", counting_parse)
    await box.services.jobs.stop()  # both copies wait, unsplit, and are split together
    batch = merge_payloads(gap(1, "jane@example.com"), *[consented(10 + n, f"c{n}@example.com", sub=100 + n)
                                                         for n in range(4)])
    answers = [await box.webhook(batch) for _ in range(2)]
    assert [status for status, _ in answers] == [200, 200]
    assert len({json.loads(text)["delivery"] for _, text in answers}) == 2
    assert len(await deliveries(box)) == 2
    await box.restart_bot()
    await processed(box)
    assert await deliveries(box) == []
    assert len(await inbox(box)) == 5 and len(await records(box)) == 5
    assert len(parsed) == 1  # the byte-identical copy in the same chunk was taken without parsing it again
    await box.jobs_idle()
    assert len(box.slack.calls_to("chat.postMessage")) == 1 and len(await alerts(box)) == 1


async def test_the_answer_carries_no_personal_data(box: Sandbox) -> None:
    for body in (gap(1, "jane.doe@example.com", form_name="Jane Doe's form"),
                 b'{"mautic.form_on_submit":[{"results":{"email":"jane.doe@example.com"'):  # a dead letter
        status, text = await box.webhook(body)
        assert status == 200
        answer = json.loads(text)
        assert set(answer) == {"ok", "delivery"} and answer["ok"] is True and isinstance(answer["delivery"], int)
        assert "jane" not in text.lower() and "@" not in text and "example" not in text
    await processed(box)
    assert len(await inbox(box)) == 2  # the event and the dead letter, both kept


async def test_erasure_reaches_a_delivery_not_split_yet(box: Sandbox) -> None:
    await box.services.jobs.stop()
    assert (await box.webhook(merge_payloads(gap(1, "gone@example.com"), gap(2, "stays@example.com", sub=2))))[0] == 200
    erased = subject_hash(box.services.hash_key, "gone@example.com")
    async with unit_of_work(box.services.sessions) as session:
        await split_all_pending(session, hash_key=box.services.hash_key)  # what erasure does before purging
        purged = await store.purge_subject(session, erased)
    assert purged["inbox_events"] == 1  # split inside the erasure, then purged with the rest
    assert await deliveries(box) == []
    assert [e.subject_hash for e in await inbox(box)] == [subject_hash(box.services.hash_key, "stays@example.com")]
    await box.restart_bot()
    (post,) = await box.slack.wait_for("chat.postMessage")
    assert "s***@example.com" in post.params["text"]
    await box.jobs_idle()
    assert [r.email for r in await records(box)] == ["stays@example.com"]


async def test_burst_of_gaps_is_folded_into_one_alert(box: Sandbox) -> None:
    first = merge_payloads(*[gap(100 + n, f"u{n}@example.com", sub=300 + n) for n in range(10)])
    second = merge_payloads(*[gap(200 + n, f"v{n}@example.com", sub=400 + n) for n in range(5)])
    assert (await box.webhook(first))[0] == 200
    assert (await box.webhook(second))[0] == 200
    await box.slack.wait_for("chat.postMessage")
    await box.slack.wait_until(
        lambda: "14 more" in json.dumps(box.slack.messages(box.channel)[0].blocks), timeout=10,
        describe="the lead alert showing the folded count",
    )
    await box.jobs_idle()
    assert len(box.slack.calls_to("chat.postMessage")) == 1
    stored = await alerts(box)
    assert len(stored) == 15 and sum(1 for a in stored if a.burst_of is None) == 1


async def test_dead_letter_is_kept_and_reported_once(box: Sandbox) -> None:
    body = b'{"mautic.form_on_submit":[{"submission":{"lead":{"id":3},"results":{"email":"x@example.com"'
    for _ in range(2):
        status, text = await box.webhook(body)
        assert status == 200 and "@" not in text
    await processed(box)
    (post,) = await box.slack.wait_for("chat.postMessage")
    assert "dead letter" in post.params["text"].lower()
    await box.jobs_idle()
    assert len(box.slack.calls_to("chat.postMessage")) == 1
    (row,) = await inbox(box)
    assert row.state == InboxState.DEAD and row.raw_body == body
    assert row.subject_hashes == subject_hash(box.services.hash_key, "x@example.com")


async def test_slack_rate_limit_is_honoured_and_the_alert_still_posted_once(box: Sandbox) -> None:
    box.slack.fail("chat.postMessage", retry_after=0, times=5)
    assert (await box.webhook(gap(7, "r@example.com")))[0] == 200
    await box.slack.wait_for("chat.postMessage", 6, timeout=15)
    await box.jobs_idle(timeout=15)
    assert len(box.slack.messages(box.channel)) == 1


@pytest.mark.parametrize("policy", ["forms:\n  - alias: newsletter\n    exempt: true\nstore_source_ip: true\n"])
async def test_policy_file_exempts_forms_and_keeps_ip_when_allowed(db_url: str, tmp_path: Path, policy: str) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(policy)
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path, privacy_policy_file=path) as box:
        event = form_submission_event(contact_id=1, email="a@example.com", results={"email": "a@example.com"},
                                      ip="203.0.113.9", timestamp=TS)
        assert (await box.webhook(event))[0] == 200
        await box.jobs_idle()
        (record,) = await records(box)
        assert record.exempt and not record.given and record.source_ip == "203.0.113.9"
        assert box.slack.calls_to("chat.postMessage") == []


async def queued_process_jobs(box: Sandbox) -> list[Job]:
    async with unit_of_work(box.services.sessions) as session:
        return list((await session.exec(select(Job).where(
            Job.kind == IntakeJob.PROCESS, Job.state == JobState.QUEUED))).all())


async def test_the_request_path_only_stores_and_the_watcher_queues_one_job_for_all(box: Sandbox) -> None:
    await box.services.jobs.stop()  # the job stays queued where we can count it
    writer = box.app[INTAKE_WRITER]
    await writer.stop_watching()  # as in a web-only process: nothing but the request path runs
    answers = [await box.webhook(gap(n, f"p{n}@example.com")) for n in range(3)]
    answers += await asyncio.gather(*[box.webhook(gap(n, f"q{n}@example.com")) for n in range(3, 20)])
    assert [status for status, _ in answers] == [200] * 20
    assert len({json.loads(text)["delivery"] for _, text in answers}) == 20
    assert len(await deliveries(box)) == 20 and await queued_process_jobs(box) == []  # stored, nothing queued
    await writer.schedule_processing()
    await writer.schedule_processing()  # a second look finds the job it queued
    assert len(await queued_process_jobs(box)) == 1
    await box.restart_bot()
    await processed(box)
    assert await deliveries(box) == [] and len(await inbox(box)) == 20


async def test_a_one_hop_group_commit_returns_each_rows_own_id(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # The one-hop paths bypass SQLAlchemy (asyncpg arrays on PostgreSQL, one driver-thread call on SQLite);
    # each request answers with the id at its row's position, so a shuffled id would misreport deliveries.
    monkeypatch.setattr(store, "SQLITE_INSERT_ROWS", 7)  # on SQLite, several multi-row INSERTs per group
    await box.services.jobs.stop()  # keep the deliveries from being split away while we look
    sqlite = box.services.engine.dialect.name == "sqlite"
    commit = store.commit_deliveries_sqlite if sqlite else store.commit_deliveries_autocommit
    start = utcnow()

    def group(g: int) -> list[dict[str, Any]]:
        return [{"received_at": start + timedelta(seconds=g, milliseconds=i), "body": f"{g}:{i}".encode(),
                 "body_sha256": f"{g:032x}{i:032x}"} for i in range(40)]

    groups = [group(g) for g in range(3)]
    answers = await asyncio.gather(*(commit(box.services.sessions, rows) for rows in groups))  # concurrent
    stored = {d.id: d for d in await deliveries(box)}
    assert len(stored) == 120
    for rows, ids in zip(groups, answers, strict=True):
        assert len(ids) == len(rows)
        for row, delivery_id in zip(rows, ids, strict=True):
            got = stored[delivery_id]
            assert (got.body, got.body_sha256, got.received_at) == (row["body"], row["body_sha256"],
                                                                   row["received_at"])


async def test_no_job_is_queued_while_one_splits_here_and_the_watcher_looks_once_it_ends(box: Sandbox) -> None:
    await box.services.jobs.stop()
    writer = box.app[INTAKE_WRITER]
    await writer.stop_watching()
    with writer.splitting():  # as a process job of this process holds it while it splits
        assert (await box.webhook(gap(1, "during@example.com")))[0] == 200
        await writer.schedule_processing()
        assert await queued_process_jobs(box) == []  # the job splitting will see it: no look, no second job
        writer._committed.clear()  # (the group commit above woke the watcher; it has looked since)
    # The job has ended: the watcher is woken at once (its poll may be seconds away), and its look, no longer
    # skipped, queues a job for whatever was committed after the job's last split.
    assert writer._committed.is_set()
    await writer.schedule_processing()
    assert len(await queued_process_jobs(box)) == 1
    await box.restart_bot()
    await processed(box)
    assert await deliveries(box) == [] and {e.contact_id for e in await inbox(box)} == {1}


async def test_a_delivery_stored_after_its_known_job_finished_gets_a_job_of_its_own(
        box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    await box.services.jobs.stop()
    writer = box.app[INTAKE_WRITER]
    await writer.stop_watching()
    # Jobs due at once: the watcher cannot count on a queued job it saw, it must look again every time.
    monkeypatch.setattr(writer_module, "PROCESS_DELAY", timedelta(0))
    monkeypatch.setattr(writer_module, "BURST_PROCESS_DELAY", timedelta(0))
    assert (await box.webhook(gap(1, "first@example.com")))[0] == 200
    await writer.schedule_processing()
    (job,) = await queued_process_jobs(box)
    # Meanwhile a runner elsewhere took the job and finished before the next delivery was stored.
    async with unit_of_work(box.services.sessions) as session:
        await session.exec(update(Job).where(Job.id == job.id).values(state=JobState.DONE))  # type: ignore[call-overload, arg-type]
    assert (await box.webhook(gap(2, "second@example.com")))[0] == 200
    await writer.schedule_processing()
    (again,) = await queued_process_jobs(box)
    assert again.id != job.id  # the watcher queued a job for the delivery the finished one never saw
    await box.restart_bot()
    await processed(box)
    assert await deliveries(box) == [] and {e.contact_id for e in await inbox(box)} == {1, 2}
