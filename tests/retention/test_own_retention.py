"""The bot's own retention: old inbox rows, dead letters and finished jobs go after OWN_RETENTION_DAYS;
consent evidence stays while its contact exists in Mautic (a merge keeps it, re-pointed to the survivor)
and goes CONSENT_EVIDENCE_DAYS after the contact left; each run is one ledger entry the compliance digest
reports. Pending work is never deleted, and a run repeated (replicas, retries) deletes nothing more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import col, select

from bot import retention
from sandbox.harness import CAROL, sandbox
from sandbox.mautic import contact_delete_event, form_submission_event, merge_payloads
from storage import ledger as ledger_store
from storage import retention as store
from storage.db import make_engine, make_session_factory, unit_of_work
from storage.intake import ConsentRecord, InboxEvent
from storage.jobs import Job
from storage.migrate import migrate
from tests.digests.helpers import Clock
from tests.helpers import ledger, test_tuning

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=401)


def _inbox(n: int, state: str, received_at: datetime, **values: object) -> InboxEvent:
    return InboxEvent(dedupe_key=f"k{n}", event_type=str(values.pop("event_type", "mautic.form_on_submit")),
                      state=state, received_at=received_at, **values)  # type: ignore[arg-type]


def _job(n: int, state: str, finished_at: datetime | None) -> Job:
    return Job(kind="probe", dedupe_key=f"j{n}", state=state, run_after=OLD, created_at=OLD, finished_at=finished_at)


async def test_the_deletes_spare_pending_work_and_repeat_as_no_ops(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await migrate(engine)
        sessions = make_session_factory(engine)
        async with unit_of_work(sessions) as session:
            session.add_all([
                _inbox(1, "done", OLD), _inbox(2, "failed", OLD), _inbox(3, "dead", OLD),
                _inbox(4, "pending", OLD),  # not processed yet: must survive however old
                _inbox(5, "done", NOW - timedelta(days=10)),
                _inbox(6, "done", NOW - timedelta(days=10), event_type=store.CONTACT_DELETED, contact_id=41,
                       occurred_at=NOW - timedelta(days=1200)),
                _job(1, "done", OLD), _job(2, "failed", OLD), _job(3, "queued", None), _job(4, "running", None),
                _job(5, "done", NOW - timedelta(days=1)),
                _job(6, "done", OLD),  # old, but the newest row: kept, or SQLite would hand its id out again
                ConsentRecord(contact_id=41, email="gone@example.com", submitted_at=OLD, recorded_at=OLD),
                ConsentRecord(contact_id=42, email="here@example.com", submitted_at=OLD, recorded_at=OLD),
            ])
        async with unit_of_work(sessions) as session:
            assert await store.mark_deleted_contacts(session) == 1
            assert await store.mark_deleted_contacts(session) == 0  # marked once
            marked = {r.contact_id: r.contact_deleted_at for r in (await session.exec(select(ConsentRecord))).all()}
            assert marked == {41: NOW - timedelta(days=1200), 42: None}
            before = NOW - timedelta(days=400)
            assert await store.delete_inbox_rows(session, before, dead=False, limit=1) == 1  # batches are bounded
            assert await store.delete_inbox_rows(session, before, dead=False, limit=100) == 1
            assert await store.delete_inbox_rows(session, before, dead=False, limit=100) == 0
            assert await store.delete_inbox_rows(session, before, dead=True, limit=100) == 1
            left = sorted(e.dedupe_key for e in (await session.exec(select(InboxEvent))).all())
            assert left == ["k4", "k5", "k6"]  # the pending one, the recent one, the recent delete event
            assert await store.delete_finished_jobs(session, before, limit=100) == 2
            jobs_left = sorted(j.dedupe_key or "" for j in (await session.exec(select(Job))).all())
            assert jobs_left == ["j3", "j4", "j5", "j6"]
            past = await store.consent_records_past(session, NOW - timedelta(days=1095), limit=10)
            assert [r.contact_id for r in past] == [41]
            # Figures for the digest: the runs' counts summed, plus one per package file deleted.
            await ledger_store.record(session, actor="bot", action=store.LEDGER_ACTION, at=NOW,
                                      details={"deleted": {"inbox_rows": 2, "dead_letters": 1}})
            await ledger_store.record(session, actor="bot", action=store.LEDGER_ACTION, at=NOW,
                                      details={"deleted": {"inbox_rows": 3}})
            await ledger_store.record(session, actor="bot", action="export.file_deleted", at=NOW)
            await ledger_store.record(session, actor="bot", action=store.LEDGER_ACTION, at=NOW - timedelta(days=30),
                                      details={"deleted": {"inbox_rows": 50}})  # before the period
            figures = await store.figures(session, NOW - timedelta(days=7), NOW + timedelta(seconds=1))
            assert figures == {"inbox_rows": 5, "dead_letters": 1, "export_files": 1, "slack_uploads": 0}
    finally:
        await engine.dispose()


async def test_a_run_deletes_old_data_keeps_living_evidence_and_is_reported(db_url: str, tmp_path: Path) -> None:
    clock = Clock()
    async with sandbox(db_url, tuning=test_tuning(clock), export_dir=tmp_path / "exports") as box:
        fake = box.mautic
        jane = fake.add_contact(email="jane@example.com")
        max_ = fake.add_contact(email="max@example.com")
        lena = fake.add_contact(email="lena@example.com")
        other = fake.add_contact(email="l.other@example.com")
        submissions = [
            form_submission_event(contact_id=cid, email=email, results={"email": email, "consent": "1"},
                                  submission_id=cid, date_submitted=clock())
            for cid, email in ((jane, "jane@example.com"), (max_, "max@example.com"), (lena, "lena@example.com"))
        ]
        assert (await box.webhook(b"not json at all"))[0] == 200  # kept as a dead letter
        assert (await box.webhook(merge_payloads(*submissions)))[0] == 200
        # Max is deleted in Mautic; Lena's record is merged into another one (Mautic deletes the loser and
        # sends the same contact-deleted event for it).
        assert await box.services.mautic.delete_contact(max_)
        await box.services.mautic.patch_contact(other, {"email": "lena@example.com"}, overwrite_with_blank=False)
        assert fake.merged_into(lena) == other
        deletes = merge_payloads(contact_delete_event(max_, email="max@example.com", timestamp=clock()),
                                 contact_delete_event(lena, email="lena@example.com", timestamp=clock()))
        assert (await box.webhook(deletes))[0] == 200
        await box.jobs_idle()

        clock.advance(days=1100)  # past OWN_RETENTION_DAYS (400) and CONSENT_EVIDENCE_DAYS (1095)
        assert await retention.enqueue(box.services)
        assert not await retention.enqueue(box.services)  # one run per slot, however many replicas fire
        await box.jobs_idle()

        async with unit_of_work(box.services.sessions) as session:
            records = {r.email: r for r in (await session.exec(select(ConsentRecord))).all()}
            inbox = (await session.exec(select(InboxEvent))).all()
            old_jobs = (await session.exec(select(Job).where(col(Job.kind) != retention.JOB_KIND))).all()
        assert set(records) == {"jane@example.com", "lena@example.com"}  # Max's evidence is gone
        assert records["lena@example.com"].contact_id == other  # follows the survivor of the merge
        assert records["lena@example.com"].contact_deleted_at is None
        assert records["jane@example.com"].contact_deleted_at is None
        # All but the newest inbox row (Lena's delete event, kept so SQLite never reuses an id) are gone.
        assert [e.event_type for e in inbox] == [store.CONTACT_DELETED] and old_jobs == []
        (run,) = await ledger(box, store.LEDGER_ACTION)
        deleted = run.details["deleted"]
        assert deleted["consent_records"] == 1 and run.details["consent_kept"] == 1
        assert deleted["dead_letters"] == 1 and deleted["inbox_rows"] == 4  # 3 submissions, 1 deletion
        assert deleted["finished_jobs"] >= 1

        # The next day's run finds nothing more to delete.
        clock.advance(days=1)
        assert await retention.enqueue(box.services)
        await box.jobs_idle()
        runs = await ledger(box, store.LEDGER_ACTION)
        # (Only the first run's own job, finished by the wall clock long "before" this test clock's now.)
        assert len(runs) == 2 and runs[1].details["deleted"] == {
            "inbox_rows": 0, "dead_letters": 0, "finished_jobs": 1, "consent_records": 0}

        clock.advance(minutes=5)
        await box.command(CAROL, "digest compliance")
        await box.slack.wait_until(lambda: any("Compliance digest" in m.text for m in box.slack.messages(box.channel)),
                                   describe="the compliance digest")
        digest = next(m for m in box.slack.messages(box.channel) if "Compliance digest" in m.text)
        shown = str(digest.blocks)
        assert "*Bot's own retention*: deleted 4 inbox rows, 1 dead letters" in shown
        assert "1 consent records of deleted contacts" in shown
