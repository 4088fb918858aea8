"""A prepared access package nobody releases is deleted EXPORT_LINK_TTL after its preparation (a ledger entry
the digest counts, the thread says so); the leftover sweep leaves a prepared package alone meanwhile; and a
release that fails for good goes back to prepared (Release again), its Slack upload ids deleted."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.jobs import JobRun
from bot.requests.execution import LEFTOVER_AGE_SECONDS, expire_prepared, release_failed, sweep_leftover_exports
from bot.requests.ids import RequestButton
from bot.requests.service import RELEASE_JOB
from sandbox.harness import ALICE, BOB, CAROL, PRIVACY_CHANNEL, Sandbox
from storage import requests as store
from storage.db import unit_of_work
from tests.helpers import ledger, text_of
from tests.requests.helpers import click, file_request, load_row, request_id_of, wait_state, wait_thread
from tests.requests.test_erasure import approve
from tests.requests.test_slack_uploads import uploads


def _age(path: Path) -> None:
    """Make the file look untouched for longer than the leftover sweep's grace period."""
    stale = time.time() - LEFTOVER_AGE_SECONDS - 60
    os.utime(path, (stale, stale))


async def test_an_unreleased_package_survives_the_leftover_sweep_then_expires(box: Sandbox) -> None:
    box.mautic.add_contact(email="jane@example.com", firstname="Jane")
    dsar = await file_request(box, ALICE, "dsar jane@example.com")
    await approve(box, dsar)
    await wait_state(box, dsar, "done")
    await wait_thread(box, dsar, "is prepared")
    exports = Path(box.services.settings.export_dir)
    (package,) = list(exports.iterdir())  # noqa: ASYNC240 - a test listing a small local folder
    _age(package)

    # Waiting for its release is not being a leftover, however old the file looks.
    assert await sweep_leftover_exports(box.services) == 0
    assert package.exists()
    # Within EXPORT_LINK_TTL of its preparation the daily sweep keeps it too.
    assert await expire_prepared(box.services, box.services.clock()) == 0

    request_id = request_id_of(dsar)
    async with unit_of_work(box.services.sessions) as session:
        await session.exec(update(store.PrivacyRequest).where(  # type: ignore[call-overload]
            store.PrivacyRequest.id == request_id).values(  # type: ignore[arg-type]
            completed_at=box.services.clock() - box.settings.export_link_ttl - timedelta(seconds=1)))
    assert await expire_prepared(box.services, box.services.clock()) == 1
    assert not package.exists()
    (entry,) = await ledger(box, "export.file_deleted")
    assert entry.subject == f"request:{request_id}" and entry.details["prepared"] is True
    row = await load_row(box, request_id)
    assert row is not None and row.result["release"] == "expired" and "path" not in row.result["package"]
    await box.slack.wait_until(lambda: "deleted unreleased" in text_of(dsar), describe="the redrawn request")
    assert "Release to requester" not in str(dsar.blocks) and "Answer sent to requester" in str(dsar.blocks)
    await wait_thread(box, dsar, "has been deleted; nothing went out")
    assert await expire_prepared(box.services, box.services.clock()) == 0  # once

    # The prepared reply still carries its button: a click now gets a clear refusal and changes nothing.
    prepared = next(m for m in box.slack.thread(PRIVACY_CHANNEL, dsar.ts) if "is prepared" in text_of(m))
    await click(box, BOB, prepared, RequestButton.RELEASE)
    await box.slack.wait_for_response(where=lambda r: "deleted unreleased" in r.text)
    assert await ledger(box, "request.release") == []


@pytest.fixture
async def slack_box_sqlite(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    from sandbox.harness import sandbox
    from tests.helpers import test_tuning

    async with sandbox(sqlite_url, tuning=test_tuning(), export_dir=tmp_path / "exports", export_delivery="slack",
                       job_max_attempts=2) as running:
        yield running


async def test_a_release_that_fails_for_good_returns_to_prepared(slack_box_sqlite: Sandbox, tmp_path: Path) -> None:
    box = slack_box_sqlite
    box.services.messenger.backoff_base = 0.001
    box.mautic.add_contact(email="jane@example.com", firstname="Jane")
    dsar = await file_request(box, ALICE, "dsar jane@example.com")
    await approve(box, dsar)
    await wait_state(box, dsar, "done")
    await wait_thread(box, dsar, "is prepared")
    box.slack.fail("files.completeUploadExternal", error="channel_not_found", times=2)  # every attempt refused
    await click(box, CAROL, dsar, RequestButton.RELEASE)
    await wait_thread(box, dsar, "could not be delivered")
    assert "stays prepared until" in (await wait_thread(box, dsar, "could not be delivered"))

    # Back to prepared: the sealed file is kept (for the TTL), the ids granted to the attempts are deleted.
    assert len(list((tmp_path / "exports").iterdir())) == 1
    failed = await uploads(box)
    assert len(failed) == 2 and {u.state for u in failed} == {"deleted"}
    (entry,) = await ledger(box, "export.release_failed")
    assert entry.details["package_kept"] is True
    await box.slack.wait_until(lambda: "Release to requester" in str(dsar.blocks), describe="the Release button")

    # A second press delivers (a new job: the first one's dedupe key does not swallow it).
    await click(box, BOB, dsar, RequestButton.RELEASE)
    await wait_thread(box, dsar, "attached to this thread")
    shared = [u for u in await uploads(box) if u.state == "shared"]
    assert len(shared) == 1 and box.slack.file_exists(shared[0].file_id)
    assert list((tmp_path / "exports").iterdir()) == []


@pytest.fixture
async def link_box_sqlite(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    from sandbox.harness import sandbox
    from tests.helpers import test_tuning

    async with sandbox(sqlite_url, tuning=test_tuning(), export_dir=tmp_path / "exports") as running:
        yield running


async def test_a_failed_release_revokes_the_link_it_made_but_never_posted(link_box_sqlite: Sandbox) -> None:
    box = link_box_sqlite
    box.mautic.add_contact(email="jane@example.com", firstname="Jane")
    dsar = await file_request(box, ALICE, "dsar jane@example.com")
    await approve(box, dsar)
    await wait_state(box, dsar, "done")
    await wait_thread(box, dsar, "is prepared")
    request_id = request_id_of(dsar)
    row = await load_row(box, request_id)
    assert row is not None
    path = str(row.result["package"]["path"])
    now = box.services.clock()
    # As a release attempt leaves it when posting the link failed on every try: released, a link made.
    async with unit_of_work(box.services.sessions) as session:
        await store.set_fields(session, request_id, {"released_at": now, "released_by": CAROL.id})
        await store.add_export_link(session, store.ExportLink(
            request_id=request_id, token_hash="0" * 64, path=path, size=1, created_at=now,
            expires_at=now + box.settings.export_link_ttl))
    run = JobRun(0, RELEASE_JOB, 2, 2, {"request_id": request_id}, {}, box.services.sessions)
    await release_failed(box.services, run, "SlackRefused: chat.postMessage: channel_not_found")

    async with unit_of_work(box.services.sessions) as session:
        (link,) = await store.links_for_requests(session, [request_id])
    assert link.revoked_at is not None and link.path == ""  # the never-shown link cannot be used
    assert Path(path).exists()  # noqa: ASYNC240 - the package itself stays prepared
    row = await load_row(box, request_id)
    assert row is not None and row.released_at is None and row.result["release_failures"] == 1
    reply = await wait_thread(box, dsar, "could not be delivered")
    assert "channel_not_found" in reply and "press *Release to requester* to try again" in reply
    # Released again, it goes out with a fresh link.
    await click(box, BOB, dsar, RequestButton.RELEASE)
    assert "/exports/" in await wait_thread(box, dsar, "released by")
