"""EXPORT_DELIVERY=slack: the uploaded package's file id is kept, and the file is deleted in Slack
(files.delete) once the link TTL has passed and when the subject is erased."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from bot.requests.uploads import delete_due_uploads
from sandbox.harness import ALICE, CAROL, PRIVACY_CHANNEL, Sandbox
from storage import slack_files
from storage.db import unit_of_work
from tests.helpers import ledger, text_of
from tests.requests.helpers import file_request, release, wait_state, wait_thread
from tests.requests.test_erasure import approve


async def _slack_box(url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    from sandbox.harness import sandbox
    from tests.helpers import test_tuning

    async with sandbox(url, tuning=test_tuning(), export_dir=tmp_path / "exports",
                       export_delivery="slack") as running:
        yield running


@pytest.fixture
async def slack_box(db_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    async for running in _slack_box(db_url, tmp_path):
        yield running


@pytest.fixture
async def slack_box_sqlite(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    """For what is about Slack's answers rather than storage: one backend is enough."""
    async for running in _slack_box(sqlite_url, tmp_path):
        yield running


async def uploads(box: Sandbox) -> list[slack_files.SlackUpload]:
    async with unit_of_work(box.services.sessions) as session:
        return list((await session.exec(select(slack_files.SlackUpload).order_by(
            slack_files.SlackUpload.id))).all())  # type: ignore[arg-type]


async def deliver(box: Sandbox, email: str) -> str:
    message = await file_request(box, ALICE, f"dsar {email}")
    await approve(box, message)
    await wait_state(box, message, "done")
    await release(box, message, CAROL)
    await wait_thread(box, message, "attached to this thread")
    file_id = (await uploads(box))[-1].file_id
    assert box.slack.file_exists(file_id)
    return file_id


async def test_uploaded_packages_are_deleted_on_expiry_and_on_erasure(slack_box: Sandbox, tmp_path: Path) -> None:
    box = slack_box
    box.mautic.add_contact(email="jane@example.com", firstname="Jane")
    box.mautic.add_contact(email="max@example.com", firstname="Max")
    jane_file = await deliver(box, "jane@example.com")
    (row,) = await uploads(box)
    assert row.state == "shared" and row.file_id in box.slack.uploads  # the id of the bytes Slack holds
    assert row.expires_at - row.uploaded_at == box.settings.export_link_ttl
    assert not list((tmp_path / "exports").iterdir())  # no plain (nor sealed) copy left on disk
    # The grant was recorded before the bytes went up: the id exists however the upload ends.
    assert [c.method for c in box.slack.calls if c.method.startswith("files.")] == [
        "files.getUploadURLExternal", "files.completeUploadExternal"]

    # Not yet expired: the sweep leaves it.
    assert await delete_due_uploads(box.services) == {"deleted": 0, "refused": 0, "postponed": 0}
    assert box.slack.file_exists(jane_file)

    # Expired: deleted in Slack, the thread shows a tombstone, the ledger says so; a second sweep is a no-op.
    async with unit_of_work(box.services.sessions) as session:
        await session.exec(update(slack_files.SlackUpload).values(  # type: ignore[call-overload]
            expires_at=box.services.clock() - timedelta(seconds=1)))
    assert (await delete_due_uploads(box.services))["deleted"] == 1
    assert not box.slack.file_exists(jane_file) and jane_file in box.slack.deleted_files
    shared = [r for m in box.slack.messages(PRIVACY_CHANNEL) for r in box.slack.thread(PRIVACY_CHANNEL, m.ts)
              if r.files]
    assert shared and shared[0].files == [{"id": jane_file, "mode": "tombstone"}]
    assert [e.details["file"] for e in await ledger(box, "export.slack_deleted")] == [jane_file]
    assert (await delete_due_uploads(box.services))["deleted"] == 0
    assert len(box.slack.calls_to("files.delete")) == 1

    # Erasure: Max's package (not expired) goes with the erasure itself.
    max_file = await deliver(box, "max@example.com")
    erase = await file_request(box, ALICE, "erase max@example.com")
    await approve(box, erase)
    await wait_state(box, erase, "cleanup")  # deleted in Mautic and purged here: the upload is due
    assert not box.slack.file_exists(max_file)
    by_file = {u.file_id: u for u in await uploads(box)}
    assert by_file[max_file].state == "deleted" and by_file[max_file].deleted_at is not None
    assert "max@example.com" not in text_of(erase)


async def test_a_refused_delete_is_recorded_and_reported_once(slack_box_sqlite: Sandbox) -> None:
    box = slack_box_sqlite
    box.mautic.add_contact(email="jane@example.com", firstname="Jane")
    file_id = await deliver(box, "jane@example.com")
    async with unit_of_work(box.services.sessions) as session:
        await session.exec(update(slack_files.SlackUpload).values(  # type: ignore[call-overload]
            expires_at=box.services.clock() - timedelta(seconds=1)))
    box.slack.fail("files.delete", retry_after=0, times=3)  # Slack busy on every try: postponed, still due
    assert (await delete_due_uploads(box.services))["postponed"] == 1
    assert (await uploads(box))[0].state == "shared"
    box.slack.fail("files.delete", error="cant_delete_file")
    assert (await delete_due_uploads(box.services))["refused"] == 1
    (row,) = await uploads(box)
    assert row.state == "refused" and row.error == "cant_delete_file"
    assert box.slack.file_exists(file_id)
    assert (await delete_due_uploads(box.services))["refused"] == 0  # reported once, not every day
    notices = [text_of(m) for m in box.slack.messages(PRIVACY_CHANNEL) if "refused to delete" in text_of(m)]
    assert len(notices) == 1 and "cant_delete_file" in notices[0]
    # The stand-in refuses as Slack does for a file the bot did not upload, and forgives a second delete.
    box.slack.add_foreign_file("F0OTHER", "U0ALICE")
    from bot.slack.messenger import SlackRefused

    with pytest.raises(SlackRefused) as refused:
        await box.services.messenger.delete_file("F0OTHER")
    assert refused.value.error == "cant_delete_file"
    assert await box.services.messenger.delete_file("F404") is True  # file_not_found: gone is gone


async def test_an_upload_cut_short_is_deleted_by_the_retry(slack_box_sqlite: Sandbox) -> None:
    box = slack_box_sqlite
    box.services.messenger.backoff_base = 0.001  # the messenger's own retries, quickly
    box.mautic.add_contact(email="jane@example.com", firstname="Jane")
    box.slack.fail("upload", status=500, times=3)  # the bytes never arrive on the first attempt
    message = await file_request(box, ALICE, "dsar jane@example.com")
    await approve(box, message)
    await wait_state(box, message, "done")
    await release(box, message, CAROL)
    await wait_thread(box, message, "attached to this thread")
    first, second = await uploads(box)
    # The id granted to the failed attempt was on record before the upload, and the retry deleted it.
    assert first.state == "deleted" and box.slack.deleted_files == {first.file_id}
    assert second.state == "shared" and box.slack.file_exists(second.file_id)
    shared = [f["id"] for m in box.slack.messages(PRIVACY_CHANNEL) for r in box.slack.thread(PRIVACY_CHANNEL, m.ts)
              for f in r.files]
    assert shared == [second.file_id]
