"""Issue 11 item 2 and the spool: a webhook delivery spooled during a database outage holds the clear address on
disk. If the erasure runs before that delivery is moved into the inbox (its process died, or the mover had not
run yet), the delivery must not bring the person back into the store once it is moved and processed: the event
predates the erasure, which already covers it. A submission made after the erasure is still a re-entry."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from bot.intake.spool import DeliverySpool, SpoolingIntake
from bot.requests.ids import RequestButton
from handlers.appkeys import INTAKE_WRITER
from sandbox.harness import ALICE, BOB, CAROL, PRIVACY_CHANNEL, sandbox
from sandbox.mautic import form_submission_event
from tests.helpers import test_tuning, text_of
from tests.helpers.store_scan import find_in_store
from tests.requests.helpers import click, file_request, verify_identity, wait_state

EMAIL = "ysolde.latecomer@example.com"
NAME, CITY = "Ysolde", "Quarzazate-le-Vieux"
REFERER = f"https://example.com/signup?email={EMAIL}"  # a page URL can carry the address (page_url column)


async def test_a_delivery_spooled_before_the_erasure_and_moved_after_it_leaves_nothing(
        db_url: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"  # the dead process's SPOOL_DIR (the sandbox's own mover watches another)
    async with sandbox(db_url, tuning=test_tuning(), export_dir=tmp_path / "exports") as box:
        fake = box.mautic
        cid = fake.add_contact(email=EMAIL, firstname=NAME, fields={"city": CITY})
        before_erasure = box.services.clock() - timedelta(minutes=5)
        # Spooled by a web process during an outage, which then died: its file waits, unlocked, on disk.
        dead = DeliverySpool(spool_dir, 1 << 20, name="died-during-outage")
        body = form_submission_event(contact_id=cid, email=EMAIL, referer=REFERER, timestamp=before_erasure,
                                     results={"email": EMAIL, "firstname": NAME, "city": CITY})
        await dead.append(json.dumps(body).encode(), before_erasure)
        await dead.close()

        message = await file_request(box, ALICE, f"erase {EMAIL}")
        await verify_identity(box, CAROL, message)
        await click(box, BOB, message, RequestButton.APPROVE)
        await wait_state(box, message, "cleanup")  # deleted in Mautic and forgotten in the bot
        assert fake.contact(cid) is None

        # A process starts again on this machine: its mover takes the dead file into the inbox.
        mover = SpoolingIntake(box.services, box.app[INTAKE_WRITER],
                               DeliverySpool(spool_dir, 1 << 20, name="restarted"))
        mover.start()
        await mover.drained()
        await mover.stop()
        assert mover.moved == 1 and list(spool_dir.iterdir()) == []
        await box.jobs_idle()
        assert await find_in_store(box.services.sessions, [EMAIL, NAME, CITY]) == []
        assert not any("re-entered" in text_of(m) for m in box.slack.messages(PRIVACY_CHANNEL))

        # The same person submitting after the erasure is a re-entry, flagged as ever.
        again = fake.add_contact(email=EMAIL)
        later = box.services.clock() + timedelta(minutes=1)
        assert (await box.webhook(form_submission_event(contact_id=again, email=EMAIL, timestamp=later,
                                                        submission_id=14, results={"email": EMAIL})))[0] == 200
        await box.slack.wait_until(lambda: any("re-entered" in text_of(m)
                                               for m in box.slack.messages(PRIVACY_CHANNEL)),
                                   describe="the re-entry alert")
