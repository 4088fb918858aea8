"""The keyed hash an erasure keeps: typed text never enters the ledger (only that it was given and its keyed
hash), and ERASED_HASH_RETENTION deletes hashes of people erased longer ago."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bot.requests.execution import forget_old_erasures
from bot.settings import load_settings
from sandbox.harness import Sandbox
from storage import ledger
from storage.db import unit_of_work
from storage.erasures import ErasedSubject, record_erasure
from tests.helpers import ledger as ledger_entries


def test_reason_fields_hash_the_text_with_the_key_and_never_keep_it() -> None:
    fields = ledger.reason_fields("key-1", "Identity  could not be verified")
    assert fields["reason_given"] is True and "could not" not in str(fields)
    assert fields["reason_hash"] == ledger.reason_digest("key-1", "Identity could not be verified")  # spacing
    assert fields["reason_hash"] != ledger.reason_digest("key-2", "Identity could not be verified")
    assert ledger.reason_fields("key-1", None) == {"reason_given": False}


def test_erased_hash_retention_defaults_to_three_years_and_parses_durations() -> None:
    assert load_settings(_env_file=None).erased_hash_retention == timedelta(days=1095)
    assert load_settings(_env_file=None, erased_hash_retention="730d").erased_hash_retention == timedelta(days=730)


async def test_the_ledger_refuses_typed_text(box: Sandbox) -> None:
    async with unit_of_work(box.services.sessions) as session:
        for key in ("reason", "note", "method_note"):
            with pytest.raises(ValueError, match="free text never enters the audit ledger"):
                await ledger.record(session, actor="U0BOB", action="test.typed", details={key: "typed words"})
    assert await ledger_entries(box, "test.typed") == []


async def test_hashes_older_than_the_retention_are_deleted_by_the_daily_sweep(box: Sandbox) -> None:
    now = box.services.clock()
    keep = now - timedelta(days=1094)
    async with unit_of_work(box.services.sessions) as session:
        await record_erasure(session, subject_hash="a" * 64, request_id=1, received_at=now - timedelta(days=1100),
                             erased_at=now - timedelta(days=1096))
        await record_erasure(session, subject_hash="b" * 64, request_id=2, received_at=keep, erased_at=keep)
    assert await forget_old_erasures(box.services, now) == 1
    assert await forget_old_erasures(box.services, now) == 0  # nothing more to do, nothing more recorded
    async with unit_of_work(box.services.sessions) as session:
        left = (await session.exec(select(ErasedSubject.subject_hash))).all()
    assert left == ["b" * 64]
    (entry,) = await ledger_entries(box, "erasure.hashes_expired")
    assert entry.details["count"] == 1


async def test_a_second_erasure_of_the_same_person_restarts_the_retention(box: Sandbox) -> None:
    now = box.services.clock()
    first, second = now - timedelta(days=1096), now - timedelta(days=10)
    async with unit_of_work(box.services.sessions) as session:
        await record_erasure(session, subject_hash="c" * 64, request_id=3, received_at=first, erased_at=first,
                             suppressed=True)
        await record_erasure(session, subject_hash="c" * 64, request_id=3, received_at=first, erased_at=now)  # retry
        row = await session.get(ErasedSubject, "c" * 64)
        assert row is not None and (row.request_id, row.erased_at) == (3, first)
        # They came back and were erased again (without Do-Not-Contact this time): the hash counts from then.
        await record_erasure(session, subject_hash="c" * 64, request_id=9, received_at=second, erased_at=second)
    assert await forget_old_erasures(box.services, now) == 0
    async with unit_of_work(box.services.sessions) as session:
        row = await session.get(ErasedSubject, "c" * 64)
    assert row is not None and (row.request_id, row.erased_at, row.suppressed) == (9, second, True)
