"""Poison isolation: no signed delivery can stall the inbox, whatever values or how many events it carries."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.intake import events
from bot.intake.split import PARSE_OFF_LOOP_BYTES, split_all_pending
from bot.privacy import subject_hash
from sandbox.harness import sandbox
from sandbox.mautic import encode_like_php, merge_payloads
from storage import intake as store
from storage.db import unit_of_work
from storage.intake import InboxState
from storage.types import utcnow
from tests.helpers import test_tuning
from tests.intake.helpers import deliveries, inbox, processed, records
from tests.intake.test_webhook import consented, gap

TWENTY_FIVE_NINES = int("9" * 25)


async def test_hostile_values_are_stored_cleaned(db_url: str, tmp_path: Path) -> None:
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path) as box:
        hostile = consented(5, "n@example.com")
        submission: Any = hostile["mautic.form_on_submit"][0]["submission"]
        submission["lead"]["id"] = TWENTY_FIVE_NINES
        submission["form"]["name"] = "News\u0000letter \ud800"
        submission["results"]["comment"] = "a\u0000b\udfffc"
        body = events.canonical(hostile).replace(b'"comment":"', b'"nan":NaN,"comment":"')
        assert (await box.webhook(body))[0] == 200
        await processed(box)
        (row,) = await inbox(box)
        assert row.state == InboxState.DONE and row.contact_id is None  # 25 nines is no id we can store
        (record,) = await records(box)
        assert record.form_name == "Newsletter " and record.values.get("consent") == "1"


async def test_events_past_the_cap_become_one_dead_letter(db_url: str, tmp_path: Path) -> None:
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path, max_events_per_delivery=3) as box:
        batch = merge_payloads(*(consented(i, f"u{i}@example.com", sub=i) for i in range(1, 6)))
        assert (await box.webhook(batch))[0] == 200
        await processed(box)
        stored = await inbox(box)
        assert sorted(r.state for r in stored) == [InboxState.DEAD, *[InboxState.DONE] * 3]
        (dead,) = [r for r in stored if r.state == InboxState.DEAD]
        assert dead.note is not None and "2 events past the first 3" in dead.note
        assert dead.raw_body is not None and b"u5@example.com" in dead.raw_body  # kept, not dropped
        (post,) = await box.slack.wait_for("chat.postMessage")
        assert "dead letter" in post.params["text"].lower()


async def test_a_delivery_the_database_refuses_is_dead_lettered_alone(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A value no cleaning foresaw (here: an id past the integer column, slipped past as_id) fails its own
    # savepoint only; the deliveries split with it, and later ones, go on.
    real_rows = events.inbox_rows

    def rows_with_poison(raw: bytes, hash_key: str, received_at: datetime,
                         max_events: int | None = None) -> list[dict[str, Any]]:
        rows = real_rows(raw, hash_key, received_at, max_events)
        if b"poison@example.com" in raw:
            rows = [{**row, "contact_id": TWENTY_FIVE_NINES} for row in rows]
        return rows

    monkeypatch.setattr(events, "inbox_rows", rows_with_poison)
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path) as box:
        poison = consented(8, "poison@example.com")
        for payload in (consented(7, "before@example.com"), poison, poison, consented(9, "after@example.com")):
            assert (await box.webhook(payload))[0] == 200
        await processed(box)
        stored = await inbox(box)
        assert await deliveries(box) == []
        dead = [r for r in stored if r.state == InboxState.DEAD]
        assert len(dead) == 1 and dead[0].note is not None and dead[0].note.startswith("could not be stored")
        assert dead[0].raw_body is not None and b"poison@example.com" in dead[0].raw_body
        assert {r.contact_id for r in stored if r.state == InboxState.DONE} == {7, 9}
        await box.jobs_idle()
        dead_posts = [c for c in box.slack.calls_to("chat.postMessage")
                      if "dead letter" in c.params["text"].lower()]
        assert len(dead_posts) == 1  # reported once, though delivered twice

        # Erasure's pre-split goes on past it too (deliveries stored directly: no process job races it).
        async with unit_of_work(box.services.sessions) as session:
            await store.insert_deliveries(session, [
                {"received_at": utcnow(), "body": body, "body_sha256": hashlib.sha256(body).hexdigest()}
                for body in (encode_like_php(consented(11, "poison@example.com")),
                             encode_like_php(consented(10, "l@example.com")))])
        async with unit_of_work(box.services.sessions) as session:
            assert await split_all_pending(session, hash_key=box.services.hash_key) == 2
        assert await deliveries(box) == []
        after = await inbox(box)
        assert any(r.contact_id == 10 and r.state == InboxState.PENDING for r in after)
        assert len([r for r in after if r.event_type == events.DEAD_LETTER]) == 2


async def test_a_large_refused_delivery_is_searched_for_addresses_off_the_event_loop(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its dead letter's address search reads the whole body; on the loop, a body dense with "@" would hold
    # every request for as long (200 ms a MiB on the bench box).
    real_rows, real_dead_letter = events.inbox_rows, events.dead_letter_row
    searched_on: list[str] = []

    def rows_with_poison(raw: bytes, hash_key: str, received_at: datetime,
                         max_events: int | None = None) -> list[dict[str, Any]]:
        rows = real_rows(raw, hash_key, received_at, max_events)
        return [{**row, "contact_id": TWENTY_FIVE_NINES} for row in rows] if b"poison@" in raw else rows

    def dead_letter_row(*args: Any, **kwargs: Any) -> dict[str, Any]:
        searched_on.append(threading.current_thread().name)
        return real_dead_letter(*args, **kwargs)

    monkeypatch.setattr(events, "inbox_rows", rows_with_poison)
    monkeypatch.setattr(events, "dead_letter_row", dead_letter_row)
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path) as box:
        large = gap(8, "poison@example.com", results={"email": "poison@example.com", "consent": "1",
                                                     "message": "a@" * (PARSE_OFF_LOOP_BYTES // 2 + 1)})
        assert (await box.webhook(large))[0] == 200
        await processed(box)
        (dead,) = [r for r in await inbox(box) if r.state == InboxState.DEAD]
        assert dead.note is not None and dead.note.startswith("could not be stored")
        assert dead.subject_hashes is not None  # the address is still found, for erasure
        assert subject_hash(box.services.hash_key, "poison@example.com") in dead.subject_hashes.split()
    assert searched_on and threading.main_thread().name not in searched_on
