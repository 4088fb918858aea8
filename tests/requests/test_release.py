"""A prepared access package that is never released: nothing goes out, and an erasure of the person deletes
it with the rest of their data (no link ever named it, so the erasure finds it through the request)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from bot.requests.ids import RequestButton
from sandbox.harness import ALICE, BOB, CAROL, PRIVACY_CHANNEL, Sandbox
from storage import requests as store
from storage.db import unit_of_work
from tests.helpers import ledger, text_of
from tests.requests.helpers import click, file_request, verify_identity, wait_state, wait_thread


async def test_an_unreleased_package_is_deleted_with_the_persons_erasure(box: Sandbox) -> None:
    box.mautic.add_contact(email="jane@example.com", firstname="Jane")
    dsar = await file_request(box, ALICE, "dsar jane@example.com")
    await verify_identity(box, CAROL, dsar)
    await click(box, BOB, dsar, RequestButton.APPROVE)
    await wait_state(box, dsar, "done")
    await wait_thread(box, dsar, "is prepared")
    exports = Path(box.services.settings.export_dir)
    assert len(list(exports.iterdir())) == 1  # noqa: ASYNC240 - a test listing a small local folder
    assert "Release to requester" in text_of(dsar) and "Answer sent to requester" not in str(dsar.blocks)

    erase = await file_request(box, ALICE, "erase jane@example.com")
    await verify_identity(box, CAROL, erase)
    await click(box, BOB, erase, RequestButton.APPROVE)
    await wait_state(box, erase, "cleanup")  # deleted in Mautic; the package went with the local purge
    assert list(exports.iterdir()) == []  # noqa: ASYNC240 - the sealed package went with the person's data
    await box.slack.wait_until(lambda: "deleted unreleased" in text_of(dsar), describe="the redrawn DSAR")

    prepared = next(m for m in box.slack.thread(PRIVACY_CHANNEL, dsar.ts) if "is prepared" in text_of(m))
    await click(box, CAROL, prepared, RequestButton.RELEASE)  # the old reply still carries the button
    await box.slack.wait_for_response(where=lambda r: "was erased since" in r.text)
    assert await ledger(box, "request.release") == []
    async with unit_of_work(box.services.sessions) as session:
        assert (await session.exec(select(store.ExportLink))).all() == []
