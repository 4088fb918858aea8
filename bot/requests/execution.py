"""What the durable jobs of the feature do: announce a request, execute it, and the daily sweep.

Each step checkpoints through ``run.checkpoint`` before the next side effect, so an attempt resumed
after a restart (or a retry after Mautic answered 5xx) continues where the last one stopped instead
of deleting, patching or posting twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import approvals
from bot.intake.split import split_all_pending
from bot.jobs import JobRun, PermanentJobError, RetryableJobError
from bot.mautic import ContactMerged, MauticNotFound, MauticRefused, Where
from bot.privacy import normalise_email
from bot.requests import blocks, cleanup, notify, uploads
from bot.requests.model import Action, RequestKind, RequestState, checklist, transition
from bot.requests.package import build_access_package, without_staff
from bot.requests.sealed import PARTIAL_SUFFIX, private_directory
from bot.requests.view import info_from_row
from storage import erasure_cleanup as cleanup_store
from storage import erasures, intake, ledger, slack_files
from storage import requests as store
from storage.db import unit_of_work
from storage.forget import forget_subject

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.services import Services

log = logging.getLogger(__name__)
BOT = "bot"  # the ledger actor for the bot's own steps
LEFTOVER_TABLES = ("email_stats", "form_submissions")  # counted through the stats API before the delete
FILE_DELETED = "export.file_deleted"


def seal_secret(services: Services) -> str:
    key = services.settings.bot_secret_key
    if key is None:
        raise PermanentJobError("BOT_SECRET_KEY is not set; packages cannot be sealed")
    return "export-seal:" + key.get_secret_value()


async def _row(services: Services, request_id: int) -> store.PrivacyRequest:
    async with unit_of_work(services.sessions) as session:
        row = await store.get_request(session, request_id)
    if row is None:
        raise PermanentJobError(f"request {request_id} does not exist")
    return row


async def _move(services: Services, row: store.PrivacyRequest, action: Action, values: dict[str, Any],
                *, details: dict[str, Any] | None = None, session: AsyncSession | None = None) -> bool:
    """A guarded state change by the bot itself, with its audit entry."""
    now = services.clock()
    new_state = transition(row.state, action).value

    async def apply(s: AsyncSession) -> bool:
        return await approvals.decide(
            s, store.PrivacyRequest, row.id or 0, from_states=[row.state],
            values={"state": new_state, "updated_at": now, **values}, actor=BOT, action=f"request.{action.value}",
            subject=f"request:{row.id}", at=now,
            details={"from": row.state, "to": new_state, "kind": row.kind, **(details or {})})

    if session is not None:
        return await apply(session)
    async with unit_of_work(services.sessions) as s:
        return await apply(s)


# ---- announce: post the request and look up its contacts ------------------------------------------


async def announce(services: Services, run: JobRun) -> None:
    request_id = int(run.payload["request_id"])
    info = await notify.ensure_posted(services, request_id)
    if info is None:
        return
    row = await _row(services, request_id)
    if row.contacts_found is None and row.subject_email:
        contacts = await services.mautic.find_contacts_by_email(row.subject_email)
        ids = sorted(c.id for c in contacts)
        async with unit_of_work(services.sessions) as session:
            await store.set_fields(session, request_id, {"contacts_found": ids})
            await ledger.record(session, actor=BOT, action="request.contacts_found", subject=f"request:{request_id}",
                                details={"count": len(ids)})
        info = await notify.refresh_message(services, request_id)
        if info is not None:
            await notify.post_in_thread(services, info, blocks.contacts_reply(info), best_effort=True)
    elif row.message_ts:
        await notify.refresh_message(services, request_id)


async def announce_failed(services: Services, run: JobRun, error: str) -> None:
    info = await notify.refresh_message(services, int(run.payload["request_id"]))
    if info is not None:
        await notify.post_in_thread(services, info, blocks.lookup_failed_reply(), best_effort=True)


# ---- execute ---------------------------------------------------------------------------------------


async def execute(services: Services, run: JobRun) -> None:
    request_id = int(run.payload["request_id"])
    row = await _row(services, request_id)
    state = RequestState(row.state)
    if state is RequestState.APPROVED:
        assert row.approved_at is not None
        if services.approvals.lapsed(row.approved_at, services.clock()):
            await lapse(services, row)
            return
        if not await _move(services, row, Action.START, {}, details={"attempt": run.attempt}):
            return  # someone else moved it (rejected? lapsed?) in between
        row = await _row(services, request_id)
        await notify.refresh_message(services, request_id, best_effort=True)
    elif state is RequestState.CLEANUP:
        await cleanup.post_checklist(services, request_id)  # an attempt that stopped right after entering clean-up
        return
    elif state is not RequestState.RUNNING:
        log.info("request %s is %s; nothing to execute", request_id, state.value)
        return
    kind = RequestKind(row.kind)
    try:
        if kind is RequestKind.ACCESS:
            await _execute_access(services, run, row)
        elif kind is RequestKind.ERASURE:
            await _execute_erasure(services, run, row)
        elif kind is RequestKind.OPT_OUT:
            await _execute_marking(services, run, row, comment=OPT_OUT_COMMENT, tag=OPT_OUT_TAG)
        elif kind is RequestKind.RESTRICTION:
            await _execute_marking(services, run, row, comment=RESTRICT_COMMENT, tag=RESTRICT_TAG)
        elif kind is RequestKind.OBJECTION:
            await _execute_objection(services, run, row)
        else:
            await _execute_rectification(services, run, row)
    except (MauticNotFound, ContactMerged):
        raise
    except MauticRefused as exc:
        # A 4xx (or auth) from Mautic will not heal by waiting: fail now and offer Retry.
        raise PermanentJobError(f"Mautic refused the call ({exc}); check the API user's permissions") from exc


async def execute_failed(services: Services, run: JobRun, error: str) -> None:
    """After JOB_MAX_ATTEMPTS (or a permanent error): failed, with a Retry button."""
    request_id = int(run.payload["request_id"])
    row = await _row(services, request_id)
    if row.state not in (RequestState.RUNNING.value, RequestState.APPROVED.value):
        return
    message = _public_error(error)
    await _move(services, row, Action.FAIL, {"failure": message[:1000]},
                details={"attempts": run.attempt, "error": message[:300]})
    info = await notify.refresh_message(services, request_id, best_effort=True)
    if info is not None:
        await notify.post_in_thread(services, info, blocks.failed_reply(info, message, run.attempt), best_effort=True)


def _public_error(error: str) -> str:
    """Job errors are built from exception classes and our own sentences, never from Mautic bodies."""
    if error.startswith("MauticUnavailable"):
        return "Mautic was unavailable (5xx, 429 or timeouts) on every attempt."
    return error


async def lapse(services: Services, row: store.PrivacyRequest) -> None:
    ttl_days = services.approvals.ttl.total_seconds() / 86400
    # Back to verified with its original due date: the approval no longer counts, the request does.
    if not await _move(services, row, Action.LAPSE, {"approved_by": None, "approved_at": None},
                       details={"approval_ttl_days": ttl_days, "lapsed_approval_by": row.approved_by,
                                "due_date": row.due_date.isoformat()}):
        return
    info = await notify.refresh_message(services, row.id or 0, best_effort=True)
    if info is not None:
        await notify.post_in_thread(services, info, blocks.lapsed_reply(info, ttl_days), best_effort=True)


async def _complete(services: Services, row: store.PrivacyRequest, result: dict[str, Any], *,
                    session: AsyncSession, clear_email: bool = True) -> bool:
    values: dict[str, Any] = {"result": result, "completed_at": services.clock(), "changes": {}}
    if clear_email:
        values["subject_email"] = None
    return await _move(services, row, Action.COMPLETE, values, session=session,
                       details={k: v for k, v in result.items() if k in ("contacts", "deleted", "timeline_events")})


async def _contacts(services: Services, run: JobRun, row: store.PrivacyRequest) -> list[int]:
    """A fresh exact-match lookup at execution time (contacts may have come or gone since filing)."""
    if "contacts" in run.progress:
        return [int(i) for i in run.progress["contacts"]]
    if not row.subject_email:
        raise PermanentJobError("the request no longer holds the subject's address")
    ids = sorted(c.id for c in await services.mautic.find_contacts_by_email(row.subject_email))
    await _checkpoint(run, contacts=ids)
    return ids


async def _checkpoint(run: JobRun, **values: Any) -> None:
    run.progress.update(values)
    await run.checkpoint(dict(run.progress))


# ---- access ----------------------------------------------------------------------------------------


_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")  # with a digit too (checked apart): U0123ABCD, not UTC
_SLACK_MENTION = re.compile(r"<@[UW][A-Z0-9]{2,}>")  # linear: a literal, one class, a literal
STAFF = "a member of our staff"


def _is_slack_user(value: str) -> bool:
    return bool(_SLACK_USER.match(value)) and any(ch.isdigit() for ch in value)


def _without_staff(value: Any) -> Any:
    """Ledger details with staff out: ``*_by`` keys dropped, Slack user ids and mentions replaced."""
    if isinstance(value, dict):
        return {k: _without_staff(v) for k, v in value.items() if not k.endswith("_by") and k != "actor"}
    if isinstance(value, list):
        return [_without_staff(v) for v in value]
    if isinstance(value, str):
        return STAFF if _is_slack_user(value) else _SLACK_MENTION.sub(STAFF, value)
    return value


def _ledger_json(entry: ledger.AuditEntry, *, include_staff: bool) -> dict[str, Any]:
    """One ledger entry for the subject's package; who on the staff acted stays out unless included."""
    actor = entry.actor if include_staff or not _is_slack_user(entry.actor) else STAFF
    details = entry.details if include_staff else _without_staff(entry.details)
    return {"seq": entry.seq, "at": entry.at.isoformat(), "actor": actor, "action": entry.action,
            "subject": entry.subject, "details": details}


STAFF_REASON = "withheld: typed by a member of our staff (ask us for it)"


def _holdings_without_staff(holdings: dict[str, Any]) -> dict[str, Any]:
    """Staff out of what the bot holds, as out of Mautic's records: webhook payloads kept as received (an
    event type the bot does not handle, a failed one) carry the contact's ``owner`` and ``createdByUser``
    (Mautic serialises them into every contact payload), and an alert's dismissal reason is free text a
    member of staff typed (Art. 15(4), like Mautic's notes)."""
    cleaned: dict[str, Any] = without_staff(holdings)
    cleaned["alerts"] = [{**alert, "reason": STAFF_REASON} if alert.get("reason") else alert
                         for alert in cleaned.get("alerts", [])]
    return cleaned


async def _bot_holdings(services: Services, row: store.PrivacyRequest, contact_ids: list[int]) -> dict[str, Any]:
    holdings: dict[str, Any] = {}
    include_staff = services.settings.access_include_staff
    async with unit_of_work(services.sessions) as session:
        holdings.update(await intake.subject_records(session, row.subject_hash))
        requests = await store.requests_for_subject(session, row.subject_hash)
        decisions = {r.id: await store.decisions_for(session, r.id or 0) for r in requests}
        # The ledger names people by keyed-hash prefix, their requests, alerts and Mautic contacts.
        about = [f"subject:{row.subject_hash[:16]}", *(f"request:{r.id}" for r in requests),
                 *(f"alert:{a['id']}" for a in holdings.get("alerts", []) if a.get("id") is not None),
                 *(f"contact:{cid}" for cid in contact_ids)]
        entries = await ledger.entries_about(session, about)
    if not include_staff:
        holdings = _holdings_without_staff(holdings)
    holdings["ledger_entries"] = [_ledger_json(e, include_staff=include_staff) for e in entries]
    holdings["requests"] = [
        {"id": r.id, "type": r.kind, "state": r.state, "received_at": r.received_at.isoformat(),
         "due_date": r.due_date.isoformat(), "completed_at": r.completed_at.isoformat() if r.completed_at else None,
         "decisions": [{"action": d.action, "outcome": d.outcome, "at": d.at.isoformat()}
                       for d in decisions[r.id]]}
        for r in requests
    ]
    return holdings


async def _execute_access(services: Services, run: JobRun, row: store.PrivacyRequest) -> None:
    settings = services.settings
    info = info_from_row(row)
    contact_ids = await _contacts(services, run, row)
    progress = notify.ProgressReply(services, info)
    await progress(f"gathering {len(contact_ids)} contact(s) from Mautic", force=True)
    assert row.subject_email is not None
    path = Path(settings.export_dir) / f"request-{row.id}-{secrets.token_hex(8)}{PACKAGE_SUFFIX}"
    # A resumed attempt rebuilds the package: it is one consistent snapshot, and a partial file is discarded.
    result = await build_access_package(
        services.mautic, path=path, secret=seal_secret(services),
        request={"id": row.id, "type": "access", "regime": row.regime, "received_at": row.received_at.isoformat(),
                 "received_on": row.received_on.isoformat() if row.received_on else None,
                 "due_date": row.due_date.isoformat()},
        email=row.subject_email, contact_ids=contact_ids,
        bot_holdings=await _bot_holdings(services, row, contact_ids), policy=services.policy.access,
        generated_at=services.clock(), progress=progress, include_staff=settings.access_include_staff,
    )
    counts = {"contacts": [asdict(c) for c in result.contacts], "bot_items": result.bot_items,
              "timeline_events": result.timeline_events, "size": result.size}
    notes = [note.as_json() | {"contact_id": note.contact_id} for note in result.notes_for_review]
    # Prepared, not delivered: the link (or upload) goes out only when an approver presses Release.
    async with unit_of_work(services.sessions) as session:
        won = await _complete(services, row, {
            "delivery": settings.export_delivery, "release": "pending",
            "package": {"path": str(result.path), "size": result.size}, "notes_for_review": len(notes),
            **counts}, session=session)
        await ledger.record(session, actor=BOT, action="export.prepared", subject=info.ref,
                            details={"size": result.size, "notes_for_review": len(notes)})
    if not won:
        await asyncio.to_thread(_unlink, result.path)
        return
    await progress(f"package sealed ({result.size:,} bytes); waiting for an approver to release it", force=True)
    done = await notify.refresh_message(services, row.id or 0, best_effort=True)
    await notify.post_in_thread(services, done or info, blocks.access_prepared_reply(
        done or info, counts=counts, notes=notes, mautic_url=settings.mautic_base_url), best_effort=True)


async def release(services: Services, run: JobRun) -> None:
    """Deliver a package an approver released: a fresh expiring link, or the upload into the thread.

    A retried attempt revokes the links an earlier attempt made but never posted, so only a link someone
    was shown can work; the request records the delivery as done only after it went out."""
    request_id = int(run.payload["request_id"])
    row = await _row(services, request_id)
    info = info_from_row(row)
    result = dict(row.result or {})
    if info.released_at is None or result.get("release") != "pending":
        return
    package = result.get("package") or {}
    path = Path(str(package.get("path", "")))
    settings = services.settings
    link: str | None = None
    expires: datetime | None = None
    if not await asyncio.to_thread(path.is_file):
        raise PermanentJobError("the prepared package file is gone (erased or removed); file a new request")
    if result.get("delivery") == "slack":
        await uploads.deliver_by_upload(services, request_id=request_id, channel=info.channel,
                                        thread_ts=info.message_ts, path=path, secret=seal_secret(services))
        async with unit_of_work(services.sessions) as session:
            await ledger.record(session, actor=BOT, action="export.uploaded", subject=info.ref,
                                details={"size": package.get("size")})
        expires = services.clock() + settings.export_link_ttl
    else:
        token = secrets.token_urlsafe(32)
        now = services.clock()
        expires = now + settings.export_link_ttl
        async with unit_of_work(services.sessions) as session:
            for stale in await store.unposted_links(session, request_id):
                await store.forget_link_file(session, stale.id or 0, revoke_at=now)
            link_row = await store.add_export_link(session, store.ExportLink(
                request_id=request_id, token_hash=token_hash(token), path=str(path), size=int(package.get("size", 0)),
                created_at=now, expires_at=expires))
            await ledger.record(session, actor=BOT, action="export.created", subject=info.ref,
                                details={"link": link_row.id, "expires_at": expires.isoformat(),
                                         "size": package.get("size")})
        link = f"{settings.external_url}/exports/{token}"
    await notify.post_in_thread(services, info, blocks.access_released_reply(
        info, link=link, expires=expires, max_downloads=settings.export_max_downloads),
        once=f"job:{run.id}:access-released")
    async with unit_of_work(services.sessions) as session:
        await store.set_fields(session, request_id, {"result": {**result, "release": "done"}})
    await notify.refresh_message(services, request_id, best_effort=True)


async def release_failed(services: Services, run: JobRun, error: str) -> None:
    """A release that failed for good goes back to prepared: the Release button returns for another try,
    and the sealed file is kept no longer than any prepared package (``expire_prepared``: EXPORT_LINK_TTL
    after preparation). Upload ids granted to the failed attempts are deleted in Slack now."""
    request_id = int(run.payload["request_id"])
    message = _public_error(error)
    now = services.clock()
    kept_until: datetime | None = None
    async with unit_of_work(services.sessions) as session:
        row = await store.get_request(session, request_id)
        result = dict(row.result or {}) if row is not None else {}
        if row is None or result.get("release") != "pending":
            return
        path = Path(str((result.get("package") or {}).get("path", "")))
        if await asyncio.to_thread(path.is_file):
            result["release_failures"] = int(result.get("release_failures", 0)) + 1
            kept_until = (row.completed_at or now) + services.settings.export_link_ttl
        else:  # nothing left to release: the request shows the package as gone
            result.update(release=PACKAGE_EXPIRED, package={k: v for k, v in (result.get("package") or {}).items()
                                                            if k != "path"}, expired_at=now.isoformat())
        await store.set_fields(session, request_id, {"result": result, "released_at": None, "released_by": None})
        # What the failed attempts made but never delivered: a link not posted, upload ids granted.
        for stale in await store.unposted_links(session, request_id):
            await store.forget_link_file(session, stale.id or 0, revoke_at=now)
        await slack_files.expire_reserved(session, request_id, now)
        await ledger.record(session, actor=BOT, action="export.release_failed", subject=f"request:{request_id}",
                            details={"attempts": run.attempt, "error": message[:300],
                                     "package_kept": kept_until is not None}, at=now)
    await uploads.delete_due_uploads(services)
    info = await notify.refresh_message(services, request_id, best_effort=True)
    if info is not None:
        await notify.post_in_thread(services, info, blocks.release_failed_reply(info, message, kept_until=kept_until),
                                    best_effort=True)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


# ---- erasure ---------------------------------------------------------------------------------------


async def _leftovers(services: Services, contact_id: int) -> dict[str, int | None]:
    """Rows Mautic keeps after the delete with lead_id emptied; counted first so the report can name them
    (None: the instance does not expose that table through its stats API, so nobody can count it here)."""
    counts: dict[str, int | None] = {}
    for table in LEFTOVER_TABLES:
        try:
            counts[table] = len(await services.mautic.get_stats(table, [Where("lead_id", "eq", contact_id)]))
        except MauticRefused as exc:
            if exc.type != "stats_table_unavailable":
                raise  # a stats error is not "no rows": stop before deleting rather than under-report
            counts[table] = None  # not exposed on this instance: "unknown", which is not "none"
    return counts


async def _execute_erasure(services: Services, run: JobRun, row: store.PrivacyRequest) -> None:
    info = info_from_row(row)
    if not run.progress.get("purged"):
        contact_ids = await _contacts(services, run, row)
        deleted: list[int] = list(run.progress.get("deleted", []))
        leftovers: dict[str, dict[str, int | None]] = dict(run.progress.get("leftovers", {}))
        for cid in contact_ids:
            if cid in deleted:
                continue
            leftovers[str(cid)] = await _leftovers(services, cid)
            contact = await services.mautic.get_contact(cid)
            if contact is not None and contact.dnc_reason("email") is not None:
                # Keep them suppressed: a re-entry of someone who had Do-Not-Contact is flagged as such.
                run.progress["suppressed"] = True
            try:
                await services.mautic.delete_contact(cid)  # False = already gone, which is what we want
            except ContactMerged as merged:
                # Mautic would have deleted the contact it was merged into: stop, and look up afresh on Retry.
                run.progress.pop("contacts", None)
                await _checkpoint(run, deleted=deleted, leftovers=leftovers)
                raise PermanentJobError(
                    f"contact #{cid} was merged into #{merged.survivor.id} since the lookup; nothing was deleted "
                    "for it. Check the merged record in Mautic, then press Retry.") from None
            deleted.append(cid)
            await _checkpoint(run, deleted=deleted, leftovers=leftovers)
            async with unit_of_work(services.sessions) as session:
                # Counted, not named: the ledger outlives the erasure, and a contact id still points at the
                # person in whatever Mautic keeps until the clean-up is done.
                await ledger.record(session, actor=BOT, action="mautic.contact_deleted", subject=info.ref,
                                    details={"deleted_so_far": len(deleted)})
        # Confirm each is gone, and that no contact with the address appeared meanwhile.
        still = [cid for cid in deleted if await services.mautic.get_contact(cid) is not None]
        assert row.subject_email is not None
        newcomers = [c.id for c in await services.mautic.find_contacts_by_email(row.subject_email)
                     if normalise_email(c.email or "") == row.subject_email]
        if still or newcomers:
            await _checkpoint(run, contacts=sorted({*deleted, *still, *newcomers}), deleted=[
                cid for cid in deleted if cid not in still])
            raise RetryableJobError(f"{len(still) + len(newcomers)} contact(s) still present after the delete")
        purged = await _purge_local(services, row, run)
        await _checkpoint(run, purged=purged, deleted=deleted, leftovers=leftovers)
    # Packages uploaded to Slack about this subject: _purge_local made them due; delete them now (what Slack
    # cannot delete at this moment stays due, and the daily sweep retries it).
    await uploads.delete_due_uploads(services)
    deleted = [int(i) for i in run.progress.get("deleted", [])]
    leftovers = run.progress.get("leftovers", {})
    purged = run.progress.get("purged", {})
    if "redacted" not in run.progress:
        redacted = await _redact_slack(services, row, run.progress.get("messages", []))
        await _checkpoint(run, redacted=redacted)
    # Rows the stats API counted per table, summed over the contacts: no contact ids survive the erasure.
    counted: dict[str, int | None] = {}
    for counts in leftovers.values():
        for table, n in counts.items():
            before = counted.get(table, 0)
            counted[table] = None if n is None or before is None else before + n
    result = {"contacts": len(deleted), "purged": purged, "redacted": run.progress.get("redacted", 0),
              "leftovers": counted}
    async with unit_of_work(services.sessions) as session:
        await cleanup_store.add_lines(session, row.id or 0, checklist(services.policy.access.recipients or []))
        won = await _move(services, row, Action.AWAIT_CLEANUP, {"result": result, "changes": {},
                                                                "subject_email": None},
                          session=session, details={"contacts": len(deleted)})
    if won:
        shown = await notify.refresh_message(services, row.id or 0, best_effort=True) or info
        await notify.post_in_thread(services, shown, blocks.erasure_deleted_reply(
            shown, deleted=deleted, purged=purged, redacted=int(run.progress.get("redacted", 0)),
            hash_retention=services.settings.erased_hash_retention), best_effort=True,
            once=f"job:{run.id}:erasure-deleted")
    await cleanup.post_checklist(services, row.id or 0)
    # The job row kept contact ids and message references only to resume; nothing of them is needed now.
    await run.checkpoint({"purged": purged, "redacted": run.progress.get("redacted", 0), "checklist": True})


async def _purge_local(services: Services, row: store.PrivacyRequest, run: JobRun) -> dict[str, int]:
    """One transaction: the intake feature's records, this feature's own copies, package files; then
    only the keyed hash, request ids, kinds, dates and who decided remain."""
    now = services.clock()
    messages: list[list[str]] = []
    files: list[str] = []
    async with unit_of_work(services.sessions) as session:
        # Read before purge_subject anonymises the alerts.
        messages.extend([channel, ts] for channel, ts in await intake.subject_messages(session, row.subject_hash))
        requests = await store.requests_for_subject(session, row.subject_hash)
        for other in requests:
            prepared = (other.result or {}).get("package") or {}
            if prepared.get("path") and (other.result or {}).get("release") == "pending":
                files.append(str(prepared["path"]))  # prepared but never released: no link names it
            if other.message_ts:
                messages.append([other.channel, other.message_ts, f"request:{other.id}"])
            messages.extend([other.channel, ts] for ts in other.pii_messages or [])
        # Events still inside deliveries not split yet must go too: split them here, in this transaction.
        await split_all_pending(session, hash_key=services.hash_key,
                                max_events=services.settings.max_events_per_delivery)
        forgotten = await forget_subject(session, row.subject_hash, email=row.subject_email, now=now,
                                         keep_job_id=run.id)
        purged = forgotten.counts
        # Packages prepared but never released have no link row; uploads to Slack are deleted below.
        purged["access_packages"] = purged.get("access_packages", 0) + len(files)
        purged["slack_uploads"] = await slack_files.expire_for_requests(session, forgotten.request_ids, now)
        await erasures.record_erasure(session, subject_hash=row.subject_hash, request_id=row.id or 0,
                                      received_at=row.received_at, erased_at=now, decided_by=row.approved_by,
                                      suppressed=bool(run.progress.get("suppressed")))
        await ledger.record(session, actor=BOT, action="request.local_purge", subject=f"request:{row.id}",
                            details={"subject": f"subject:{row.subject_hash[:16]}", **purged})
    for name in [*files, *forgotten.files]:
        await asyncio.to_thread(_unlink, Path(name))
    await _checkpoint(run, messages=messages)
    return purged


async def _redact_slack(services: Services, row: store.PrivacyRequest, messages: list[list[str]]) -> int:
    """Rewrite the bot's earlier messages about the subject: request messages are redrawn (the subject now
    shows as erased), anything else that carried personal values is replaced by a redaction notice."""
    count = 0
    for entry in messages:
        channel, ts = entry[0], entry[1]
        if len(entry) > 2 and entry[2].startswith("request:"):
            ok = await notify.refresh_message(services, int(entry[2].split(":")[1]), best_effort=True) is not None
        else:
            ok = await services.messenger.update(channel, ts, **blocks.redacted_notice(row.id), best_effort=True)
        count += ok
    return count


# ---- rectification ---------------------------------------------------------------------------------


def _value(contact: Any, field_name: str) -> Any:
    return contact.fields_all.get(field_name) if contact is not None else None


def _same(requested: str, actual: Any) -> bool:
    if requested == "":
        return actual in (None, "")
    return actual is not None and str(actual).strip().lower() == requested.strip().lower()


async def _execute_rectification(services: Services, run: JobRun, row: store.PrivacyRequest) -> None:
    info = info_from_row(row)
    changes: dict[str, str] = {str(k): str(v) for k, v in (row.changes or {}).items()}
    if not changes and "rows" not in run.progress:
        raise PermanentJobError("the request holds no changes to apply")
    contact_ids = await _contacts(services, run, row)
    new_email = changes.get("email")
    if new_email and "rows" not in run.progress:
        # The email-merge trap (mautic.md §2.6): a PATCH that gives a contact an address another contact
        # holds merges the two and deletes one. Refuse instead of losing a record.
        if len(contact_ids) > 1:
            raise PermanentJobError(f"{len(contact_ids)} contacts share the current address; changing the email "
                                    "on all of them would merge them into one. Merge or delete duplicates in "
                                    "Mautic first, then press Retry.")
        holders = [c.id for c in await services.mautic.find_contacts_by_email(new_email) if c.id not in contact_ids]
        if holders:
            raise PermanentJobError(f"the new address already belongs to contact #{holders[0]}; Mautic would merge "
                                    "the two contacts. Resolve the duplicate in Mautic first, then press Retry.")
    rows: list[dict[str, Any]] = list(run.progress.get("rows", []))
    done_ids = {r["id"] for r in rows}
    overwrite = any(v == "" for v in changes.values())  # only then may Mautic write blanks
    for cid in contact_ids:
        if cid in done_ids:
            continue
        before = await services.mautic.get_contact(cid)
        if before is None:
            rows.append({"id": cid, "changes": [], "missing": True})
            continue
        try:
            await services.mautic.patch_contact(cid, dict(changes), overwrite_with_blank=overwrite)
        except ContactMerged as merged:
            raise PermanentJobError(f"Mautic merged contact #{cid} into #{merged.survivor.id} while applying the "
                                    "change; check both records in Mautic.") from None
        after = await services.mautic.get_contact(cid)
        rows.append({"id": cid, "changes": [
            {"field": f, "before": _value(before, f), "after": _value(after, f), "applied": _same(v, _value(after, f))}
            for f, v in sorted(changes.items())]})
        await _checkpoint(run, rows=rows)
        async with unit_of_work(services.sessions) as session:
            await ledger.record(session, actor=BOT, action="mautic.contact_rectified", subject=info.ref,
                                details={"contact_id": cid, "fields": sorted(changes)})
    reply_ts = await notify.post_in_thread(
        services, info, blocks.rectification_reply(info, [r for r in rows if not r.get("missing")]), best_effort=True)
    not_applied = sum(1 for r in rows for c in r["changes"] if not c["applied"])
    async with unit_of_work(services.sessions) as session:
        if reply_ts:
            # Remember the reply that shows values, so a later erasure of this person can redact it.
            await store.set_fields(session, row.id or 0, {"pii_messages": [*(row.pii_messages or []), reply_ts]})
        await _complete(services, row, {"contacts": len(rows), "fields": sorted(changes),
                                        "not_applied": not_applied}, session=session)
    # The values were needed only to show them once; the job row should not keep them.
    await run.checkpoint({"rows": [{"id": r["id"]} for r in rows], "contacts": contact_ids})
    await notify.refresh_message(services, row.id or 0, best_effort=True)


# ---- opt-out of sale/sharing (CPRA) ----------------------------------------------------------------

OPT_OUT_TAG = "do-not-sell-share"
OPT_OUT_COMMENT = "CCPA opt-out of sale/sharing"
RESTRICT_TAG = "restricted"
RESTRICT_COMMENT = "Art. 18 restriction"


async def _execute_marking(services: Services, run: JobRun, row: store.PrivacyRequest, *, comment: str,
                           tag: str) -> None:
    """Opt-out and restriction: Do-Not-Contact for email (reason 3, manual) and a tag on every exact match.
    Both calls are idempotent in Mautic (a second DNC updates the record, a present tag is kept), so a
    resumed job simply repeats the contacts not yet checkpointed."""
    info = info_from_row(row)
    contact_ids = await _contacts(services, run, row)
    done: list[int] = [int(i) for i in run.progress.get("opted_out", [])]
    for cid in contact_ids:
        if cid in done:
            continue
        await services.mautic.add_dnc(cid, "email", reason=3, comments=comment)
        # Mautic's contact edit adds the listed tags and keeps the others (LeadModel::modifyTags).
        await services.mautic.patch_contact(cid, {"tags": [tag]}, overwrite_with_blank=False)
        done.append(cid)
        await _checkpoint(run, opted_out=done)
        async with unit_of_work(services.sessions) as session:
            await ledger.record(session, actor=BOT, action=f"mautic.contact_{info.kind.value}", subject=info.ref,
                                details={"contact_id": cid, "dnc": "email", "tag": tag})
    await notify.post_in_thread(services, info, blocks.marking_done_reply(info, done, tag), best_effort=True)
    async with unit_of_work(services.sessions) as session:
        # A restriction keeps the address until it is lifted: the lift must find nothing else but these ids.
        await _complete(services, row, {"contacts": len(done), "marked": done}, session=session)
    await notify.refresh_message(services, row.id or 0, best_effort=True)


# ---- objection to direct marketing (GDPR Art. 21(2)-(3)) ----------------------------------------------

OBJECTION_COMMENT = "Art. 21 objection"


async def _execute_objection(services: Services, run: JobRun, row: store.PrivacyRequest) -> None:
    """Do-Not-Contact for email (reason 3, manual) on every exact match, and out of every marketing segment of
    the policy file that the contact is in. Both calls are idempotent in Mautic (a second DNC keeps the record;
    removing a non-member changes nothing), so a resumed job repeats the contacts not yet checkpointed.

    The completed request itself is the record of the objection: its keyed subject hash, kind and completion
    time stay after the address is cleared (and after an erasure), and the intake rules read them to flag a
    later form submission that carries no new consent."""
    info = info_from_row(row)
    marketing = services.policy.marketing
    contact_ids = await _contacts(services, run, row)
    # A checkpoint after every Mautic call: a retry repeats neither the call nor its ledger entry.
    marked: list[int] = [int(i) for i in run.progress.get("objected", [])]
    removed: dict[str, list[int]] = {str(k): [int(i) for i in v] for k, v in run.progress.get("removed", {}).items()}
    finished: list[int] = [int(i) for i in run.progress.get("finished", [])]
    plans: dict[str, list[int]] = {str(k): [int(i) for i in v] for k, v in run.progress.get("plans", {}).items()}
    for cid in contact_ids:
        if cid in finished:
            continue
        if cid not in marked:
            await services.mautic.add_dnc(cid, "email", reason=3, comments=OBJECTION_COMMENT)
            marked.append(cid)
            await _checkpoint(run, objected=marked)
            async with unit_of_work(services.sessions) as session:
                await ledger.record(session, actor=BOT, action="mautic.contact_objection", subject=info.ref,
                                    details={"contact_id": cid, "dnc": "email", "dnc_reason": 3})
        if str(cid) not in plans:  # the segments to leave, fixed once: a retry removes the same ones again
            memberships = await services.mautic.get_segments(cid) if marketing else []
            plans[str(cid)] = sorted({sid for s in memberships if (sid := _to_id(s.get("id"))) is not None
                                      and marketing.covers(sid, str(s.get("alias") or ""))})
            await _checkpoint(run, plans=plans)
        for sid in plans[str(cid)]:
            if sid in removed.get(str(cid), []):
                continue
            await services.mautic.remove_from_segment(sid, cid)  # idempotent in Mautic as well
            removed[str(cid)] = sorted({*removed.get(str(cid), []), sid})
            await _checkpoint(run, removed=removed)
            async with unit_of_work(services.sessions) as session:
                await ledger.record(session, actor=BOT, action="mautic.segment_removed", subject=info.ref,
                                    details={"contact_id": cid, "segment_id": sid})
        finished.append(cid)
        await _checkpoint(run, finished=finished)
    done = [cid for cid in contact_ids if cid in finished]
    await notify.post_in_thread(services, info, blocks.objection_done_reply(info, done, removed, bool(marketing)),
                                best_effort=True)
    async with unit_of_work(services.sessions) as session:
        await _complete(services, row, {"contacts": len(done), "marked": done,
                                        "segments_removed": sum(len(v) for v in removed.values())}, session=session)
        await ledger.record(session, actor=BOT, action="request.objection_recorded", subject=info.ref,
                            details={"subject": f"subject:{row.subject_hash[:16]}"})
    await notify.refresh_message(services, row.id or 0, best_effort=True)


def _to_id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def lift(services: Services, run: JobRun) -> None:
    """Lift a restriction: remove the DNC and the tag it set, on the contacts it set them on."""
    row = await _row(services, int(run.payload["request_id"]))
    info = info_from_row(row)
    contact_ids = [int(i) for i in (row.result or {}).get("marked", [])]
    for cid in contact_ids:
        if await services.mautic.get_contact(cid) is None:
            continue  # gone since (erased or merged): nothing left to lift
        await services.mautic.remove_dnc(cid, "email")
        await services.mautic.patch_contact(cid, {"tags": [f"-{RESTRICT_TAG}"]}, overwrite_with_blank=False)
        async with unit_of_work(services.sessions) as session:
            await ledger.record(session, actor=BOT, action="mautic.contact_restriction_lifted", subject=info.ref,
                                details={"contact_id": cid})
    await notify.post_in_thread(services, info, blocks.lifted_reply(info, contact_ids), best_effort=True)
    await notify.refresh_message(services, row.id or 0, best_effort=True)


# ---- the daily sweep -------------------------------------------------------------------------------


async def daily(services: Services, run: JobRun) -> None:
    """Lapse stale approvals, re-announce due-soon and overdue requests once a day, expire package files
    (behind links, and prepared ones never released), delete expired packages uploaded to Slack and erased
    hashes past ERASED_HASH_RETENTION."""
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        approved = await store.requests_in_state(session, RequestState.APPROVED.value)
    for row in approved:
        if row.approved_at is not None and services.approvals.lapsed(row.approved_at, now):
            await lapse(services, row)
    await remind(services, now)
    await expire_files(services, now)
    await expire_prepared(services, now)
    await uploads.delete_due_uploads(services)
    await sweep_leftover_exports(services)
    await forget_old_erasures(services, now)


async def forget_old_erasures(services: Services, now: datetime) -> int:
    """ERASED_HASH_RETENTION: the keyed hashes of people erased longer ago than that are deleted."""
    cutoff = now - services.settings.erased_hash_retention
    async with unit_of_work(services.sessions) as session:
        count = await erasures.forget_erased_before(session, cutoff)
        if count:
            await ledger.record(session, actor=BOT, action="erasure.hashes_expired", at=now,
                                details={"count": count, "erased_before": cutoff.isoformat()})
    return count


async def remind(services: Services, now: datetime) -> int:
    from bot.requests.deadlines import Urgency, countdown, received_on

    today = received_on(now, services.settings.deadline_timezone)
    sent = 0
    async with unit_of_work(services.sessions) as session:
        rows = await store.open_requests(session)
    for row in rows:
        if (countdown(row.due_date, today).urgency is Urgency.ON_TIME or not row.message_ts
                or not info_from_row(row).awaiting_answer):  # a restriction in force, already answered
            continue
        async with unit_of_work(services.sessions) as session:
            claimed = await store.mark_reminded(session, row.id or 0, today)
        if not claimed:
            continue  # already re-announced today (another replica, or an earlier run)
        info = await notify.refresh_message(services, row.id or 0, best_effort=True) or info_from_row(row)
        await notify.post_in_thread(services, info, blocks.reminder_reply(info, today), best_effort=True)
        sent += 1
    return sent


async def expire_files(services: Services, now: datetime) -> int:
    async with unit_of_work(services.sessions) as session:
        links = await store.expired_links_with_files(session, now)
        for link in links:
            await store.forget_link_file(session, link.id or 0)
            # One entry per file: the compliance digest counts them (the bot's own retention).
            await ledger.record(session, actor=BOT, action=FILE_DELETED, subject=f"request:{link.request_id}",
                                details={"link": link.id}, at=now)
    for link in links:
        _unlink(Path(link.path))
    return len(links)


PACKAGE_EXPIRED = "expired"  # result["release"] of a prepared package deleted unreleased


async def expire_prepared(services: Services, now: datetime) -> int:
    """Delete prepared packages nobody released within EXPORT_LINK_TTL of their preparation.

    The same period a link lives: a sealed copy of someone's data waits no longer unreleased than it would
    wait undownloaded behind a link. The request keeps its answer-sent step (nothing went out: the thread
    says so, and a new request prepares a fresh package); one ledger entry per file, which the compliance
    digest counts with the other expired package files."""
    ttl = services.settings.export_link_ttl
    async with unit_of_work(services.sessions) as session:
        due = [row for row in await store.prepared_packages(session)
               if row.completed_at is not None and row.completed_at + ttl <= now]
    expired: list[store.PrivacyRequest] = []
    for row in due:
        async with unit_of_work(services.sessions) as session:
            # Re-read in the transaction: a release that went out meanwhile keeps its file.
            current = await store.get_request(session, row.id or 0)
            result = dict(current.result or {}) if current is not None else {}
            if result.get("release") != "pending":
                continue
            path = str((result.get("package") or {}).get("path", ""))
            package = {k: v for k, v in (result.get("package") or {}).items() if k != "path"}
            await store.set_fields(session, row.id or 0, {
                "result": {**result, "release": PACKAGE_EXPIRED, "package": package,
                           "expired_at": now.isoformat()}})
            await ledger.record(session, actor=BOT, action=FILE_DELETED, subject=f"request:{row.id}",
                                details={"prepared": True, "released": False,
                                         "export_link_ttl_days": ttl.total_seconds() / 86400}, at=now)
        await asyncio.to_thread(_unlink, Path(path))
        expired.append(row)
    for row in expired:
        info = await notify.refresh_message(services, row.id or 0, best_effort=True)
        if info is not None:
            await notify.post_in_thread(
                services, info, blocks.prepared_expired_reply(info, ttl.total_seconds() / 86400), best_effort=True)
    return len(expired)


# A package file untouched this long and neither behind a link nor prepared for release is a leftover: a
# build that crashed (.partial), or one sealed that no request or link names. Younger files may belong to a
# build running in another replica right now (the writer touches its file at every drained chunk).
LEFTOVER_AGE_SECONDS = 15 * 60
PACKAGE_SUFFIX = ".zip.sealed"


async def sweep_leftover_exports(services: Services) -> int:
    """Make EXPORT_DIR private (0700) and delete leftover package files; run at start and daily."""
    async with unit_of_work(services.sessions) as session:
        linked = {Path(path).name for path in await store.linked_package_paths(session)}
        # A prepared package waits for its release with no link yet: it is not a leftover (expire_prepared
        # deletes it once EXPORT_LINK_TTL has passed unreleased).
        linked |= {Path(str(row.result["package"]["path"])).name for row in await store.prepared_packages(session)}
    return await asyncio.to_thread(_sweep, Path(services.settings.export_dir), linked,
                                   time.time() - LEFTOVER_AGE_SECONDS)


def _sweep(directory: Path, linked: set[str], cutoff: float) -> int:
    private_directory(directory)
    swept = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            leftover = entry.name.endswith(PARTIAL_SUFFIX) or (
                entry.name.endswith(PACKAGE_SUFFIX) and entry.name not in linked)
            if leftover and entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)
                swept += 1
    if swept:
        log.info("export dir: removed %d leftover package file(s)", swept)
    return swept
