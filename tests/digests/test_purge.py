"""Purge N stale contacts: four-eyes approval, then a resumable batch job that deletes exactly the stale."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.harness import ALICE, BOB, CAROL, MALLORY, Sandbox, sandbox
from storage import digests as store
from storage.db import unit_of_work
from storage.ledger import verify
from tests.digests.helpers import Clock, seed_contacts
from tests.helpers import ledger_entries, test_tuning


async def _digest(box: Sandbox) -> Any:
    await box.command(BOB, "digest retention")
    await box.slack.wait_for("chat.postMessage", timeout=10)
    [digest] = [m for m in box.slack.messages(box.channel) if "Retention digest" in str(m.blocks)]
    return digest


async def _request_message(box: Sandbox, digest: Any) -> Any:
    def filed() -> bool:
        return any("Purge request #" in m.text for m in box.slack.thread(box.channel, digest.ts))

    await box.slack.wait_until(filed, timeout=10, describe="purge request message")
    return next(m for m in box.slack.thread(box.channel, digest.ts) if "Purge request #" in m.text)


async def _purge_filed_by_alice(box: Sandbox, now: datetime) -> tuple[Any, Any]:
    """Three stale contacts, a retention digest, and a purge filed from it by Alice (who may file requests):
    the digest message and the purge request message."""
    seed_contacts(box.mautic, now, stale=3)
    return await _file_from_a_new_digest(box)


async def _file_from_a_new_digest(box: Sandbox) -> tuple[Any, Any]:
    digest = await _digest(box)
    await box.user.click(ALICE.id, digest, "digest_purge_file")
    return digest, await _request_message(box, digest)


async def _finished_purge(box: Sandbox, digest: Any, purgeable: Iterable[int]) -> store.PurgeRequest:
    """Wait for purge #1's "finished" reply under the digest; every purgeable contact is then gone."""
    await box.slack.wait_until(
        lambda: any("Purge #1 finished" in m.text for m in box.slack.thread(box.channel, digest.ts)),
        timeout=20, describe="purge finished")
    assert not any(cid in box.mautic.contacts for cid in purgeable)
    async with unit_of_work(box.services.sessions) as session:
        purge = await store.get_purge(session, 1)
    assert purge is not None
    return purge


def _instant_mautic_retries(box: Sandbox) -> None:
    """The client's own retry backoff is wall-clock; take it out so a test runs in milliseconds."""

    async def no_wait(_seconds: float) -> None:
        return None

    box.services.mautic._sleep = no_wait  # type: ignore[method-assign]


async def _refusal(box: Sandbox, fragment: str) -> str:
    [response] = await box.slack.wait_for_response(where=lambda r: fragment in r.text, timeout=10)
    return response.text


def _deleted_batches(box: Sandbox) -> list[list[int]]:
    return [[int(i) for i in c.query["ids"][0].split(",")] for c in box.mautic.calls
            if c.method == "DELETE" and c.path == "/api/contacts/batch/delete"]


async def test_purge_needs_four_eyes_and_deletes_exactly_the_stale(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        seeded = seed_contacts(box.mautic, clock(), active=5, stale=430, never_old=3, never_new=4)
        digest = await _digest(box)
        assert "Purge 433 stale contacts" in str(digest.blocks)

        # The button carries an opaque id, and asks for confirmation in danger style.
        button = next(e for b in digest.blocks if b["type"] == "actions" for e in b["elements"])
        assert button["value"].isdigit() and button["confirm"]["style"] == "danger"

        await box.user.click(BOB.id, digest, "digest_purge_file")
        request = await _request_message(box, digest)
        assert "Filed by <@U0BOB>" in request.text or "U0BOB" in str(request.blocks)
        await box.user.click(BOB.id, digest, "digest_purge_file")  # a double click files nothing more
        assert "already filed" in await _refusal(box, "already filed")

        # Four eyes: the filer may not approve; someone who is not an approver may not either.
        await box.user.click(BOB.id, request, "digest_purge_approve")
        assert "Four eyes" in await _refusal(box, "Four eyes")
        await box.user.click(MALLORY.id, request, "digest_purge_approve")
        assert "Only privacy approvers" in await _refusal(box, "Only privacy approvers")
        assert not _deleted_batches(box)

        # Between the digest and the approval one stale contact becomes active again: it must be spared.
        spared = seeded.stale[7]
        await box.services.mautic.patch_contact(
            spared, {"lastActive": clock().isoformat()}, overwrite_with_blank=False)

        clock.advance(hours=2)
        seen_before = copy.deepcopy(request)  # what a second approver's screen still shows
        await box.user.click(CAROL.id, request, "digest_purge_approve")
        await box.slack.wait_until(
            lambda: any("Purge #1 finished" in m.text for m in box.slack.thread(box.channel, digest.ts)),
            timeout=20, describe="purge finished")

        batches = _deleted_batches(box)
        deleted = sorted(i for batch in batches for i in batch)
        assert deleted == sorted(set(seeded.purgeable) - {spared})
        assert all(len(batch) <= 200 for batch in batches) and len(batches) == 3
        for cid in [*seeded.active, *seeded.never_new, spared]:
            assert cid in box.mautic.contacts
        assert not any(cid in box.mautic.contacts for cid in deleted)

        async with unit_of_work(box.services.sessions) as session:
            purge = await store.get_purge(session, 1)
            chunk_rows = await store.chunks(session, 1)
            assert (await verify(session)).ok
        assert purge is not None
        assert (purge.state, purge.deleted, purge.spared, purge.refused) == ("done", 432, 1, 0)
        assert purge.recheck_count == 432 and purge.decided_by == CAROL.id
        assert [c.state for c in chunk_rows] == ["done"] * 3
        actions = [e.action for e in await ledger_entries(box)]
        assert actions.count("purge.chunk") == 3
        for expected in ("purge.filed", "purge.approved", "purge.started", "purge.finished"):
            assert expected in actions
        # Nothing personal in the ledger: only opaque references.
        assert "@" not in str([(e.subject, e.details) for e in await ledger_entries(box)])

        # The request message shows the outcome; a late second approval is refused.
        final = box.slack.message(box.channel, request.ts)
        assert "Approved by <@U0CAROL>" in str(final.blocks)
        assert "digest_purge_approve" not in str(final.blocks)
        await box.user.click(BOB.id, seen_before, "digest_purge_reject")
        assert "already decided" in await _refusal(box, "already decided")


async def test_rejected_purge_deletes_nothing(sqlite_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(sqlite_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        _digest_message, request = await _purge_filed_by_alice(box, clock())
        await box.user.click(BOB.id, request, "digest_purge_reject")
        await box.slack.wait_until(lambda: "Rejected by" in str(box.slack.message(box.channel, request.ts).blocks),
                                   timeout=10, describe="rejection shown")
        assert not _deleted_batches(box)
        actions = [e.action for e in await ledger_entries(box)]
        assert "purge.rejected" in actions and "purge.approved" not in actions


async def test_approval_after_the_ttl_lapses(sqlite_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(sqlite_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        _digest_message, request = await _purge_filed_by_alice(box, clock())
        clock.advance(days=8)  # APPROVAL_TTL is 7 days
        await box.user.click(BOB.id, request, "digest_purge_approve")
        assert "lapsed" in await _refusal(box, "lapsed")
        assert not _deleted_batches(box)


async def test_count_grown_past_approval_stops_before_deleting(sqlite_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(sqlite_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        digest, request = await _purge_filed_by_alice(box, clock())
        # An import of old contacts after the digest: more match now than were approved.
        box.mautic.add_contact(email="imported@example.com", last_active=clock() - timedelta(days=2000))
        await box.user.click(BOB.id, request, "digest_purge_approve")
        await box.slack.wait_until(
            lambda: any("stopped" in m.text for m in box.slack.thread(box.channel, digest.ts)),
            timeout=10, describe="purge stopped")
        assert not _deleted_batches(box)


async def test_repeated_mautic_failures_stop_the_purge_and_resume_finishes(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports", job_max_attempts=2) as box:
        _instant_mautic_retries(box)
        seeded = seed_contacts(box.mautic, clock(), stale=250, never_old=0)
        digest, request = await _file_from_a_new_digest(box)
        box.mautic.fail("/api/contacts/batch/delete", status=503, times=None)
        await box.user.click(BOB.id, request, "digest_purge_approve")
        await box.slack.wait_until(
            lambda: any("Purge #1 stopped" in m.text for m in box.slack.thread(box.channel, digest.ts)),
            timeout=20, describe="purge stopped after repeated failures")
        async with unit_of_work(box.services.sessions) as session:
            purge = await store.get_purge(session, 1)
        assert purge is not None and purge.state == "stopped" and purge.deleted == 0
        assert "kept failing" in (purge.stop_reason or "")
        progress = next(m for m in box.slack.thread(box.channel, digest.ts) if "Purge #1 stopped" in m.text)
        assert "digest_purge_resume" in str(progress.blocks)

        # The filer may not resume (four eyes); another approver may, and the purge picks up where it stopped.
        box.mautic.clear_faults()
        await box.user.click(ALICE.id, progress, "digest_purge_resume")
        assert "Only privacy approvers" in await _refusal(box, "Only privacy approvers")
        await box.user.click(CAROL.id, progress, "digest_purge_resume")
        purge = await _finished_purge(box, digest, seeded.purgeable)
        assert purge.deleted == 250 and purge.state == "done"


async def test_a_retried_chunk_mautic_already_deleted_counts_as_gone_not_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Issue 12: Mautic's batch delete leaves ids it cannot find out of both `contacts` and `errors`
    # (ApiBundle/Helper/BatchIdToEntityHelper.php). When the first attempt deleted the chunk but its answer
    # was lost, the retry finds nothing; the purge must record those contacts as gone, not refused.
    clock = Clock()
    async with sandbox(sqlite_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        _instant_mautic_retries(box)
        seeded = seed_contacts(box.mautic, clock(), stale=250, never_old=0)
        digest, request = await _file_from_a_new_digest(box)
        box.mautic.fail("/api/contacts/batch/delete", status=504, times=1, applied=True)
        await box.user.click(BOB.id, request, "digest_purge_approve")
        purge = await _finished_purge(box, digest, seeded.purgeable)
        assert purge.state == "done"
        assert (purge.refused, purge.deleted, purge.spared) == (0, 50, 200)
        chunk_entries = [e.details for e in await ledger_entries(box) if e.action == "purge.chunk"]
        assert [(d["deleted"], d["gone"], d["refused"]) for d in chunk_entries] == [(0, 200, 0), (50, 0, 0)]
